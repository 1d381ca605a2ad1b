"""onnxruntime on the CPU, with a fixed thread count, as the app would run it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import RUNTIMES


@RUNTIMES.register("onnxruntime")
class OnnxRuntimeSession:
    formats = (".onnx",)

    def __init__(self, path: str | Path, threads: int, spin: bool = True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if not spin:  # idle worker threads sleep: sessions timed in turn in one process must not slow each other
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name: i.type for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    @staticmethod
    def version() -> str:
        import onnxruntime

        return onnxruntime.__version__

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        dtypes = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
                  "tensor(float16)": np.float16}
        if "token_type_ids" in self._inputs and "token_type_ids" not in feed:  # tokenizers that emit none mean 0
            feed = {**feed, "token_type_ids": np.zeros_like(feed["input_ids"])}
        inputs = {name: np.asarray(feed[name], dtype=dtypes.get(kind)) for name, kind in self._inputs.items()}
        return dict(zip(self.output_names, self.session.run(None, inputs)))
