"""Core ML on the CPU (macOS only: Core ML does not exist elsewhere). Inputs are padded to the package's fixed
sequence length, attention mask 0 on the padding."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import MissingExtra, UsageError
from ..registry import RUNTIMES


@RUNTIMES.register("coreml")
class CoreMlSession:
    formats = (".mlpackage",)

    def __init__(self, path: str | Path, threads: int):
        if sys.platform != "darwin":
            raise UsageError(f"cannot run {Path(path).name}: Core ML models execute only on macOS and iOS",
                             f"this host is {sys.platform}; edgepack ran the checks that need no Core ML")
        try:
            import coremltools as ct
        except ImportError as exc:
            raise MissingExtra("running .mlpackage files (coremltools)", "coreml") from exc
        # Core ML picks its own thread count; CPU_ONLY keeps the numbers comparable with the other runtimes.
        self.threads = threads
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        spec = self.model.get_spec()
        self.shapes = {f.name: [int(n) for n in f.type.multiArrayType.shape] for f in spec.description.input}
        self.input_names = list(self.shapes)
        self.output_names = [f.name for f in spec.description.output]

    @staticmethod
    def version() -> str:
        import coremltools

        return coremltools.__version__

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {}
        for name, shape in self.shapes.items():
            value = np.asarray(feed[name])
            if value.ndim == 2 and value.shape[1] < shape[1]:  # token inputs: pad to the fixed length
                value = np.pad(value, ((0, 0), (0, shape[1] - value.shape[1])))
            inputs[name] = value.astype(np.int32 if value.dtype.kind in "iu" else np.float32)
        return {k: np.asarray(v) for k, v in self.model.predict(inputs).items()}
