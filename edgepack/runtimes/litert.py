"""LiteRT (ai-edge-litert's Interpreter, the maintained successor of tflite-runtime) on the CPU, XNNPACK delegate on,
with a fixed thread count. A file with one signature per sequence-length bucket (`seq_16`, `seq_32`, ...) runs each
input on the smallest bucket that fits, padded with 0 and attention mask 0, as an app on the device would."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..buckets import bucket_lengths, pad_to
from ..errors import MissingExtra, UsageError
from ..registry import RUNTIMES



def _to_tensor(value: np.ndarray, detail: dict) -> np.ndarray:
    """Cast to the input's dtype; a quantized input (full-integer models) takes float data as the app would
    quantize it: round(x / scale) + zero point, saturated."""
    dtype, (scale, zero_point) = np.dtype(detail["dtype"]), detail["quantization"]
    if scale and value.dtype.kind == "f" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale) + zero_point, info.min, info.max).astype(dtype)
    return value.astype(dtype, copy=False)


def _from_tensor(value: np.ndarray, detail: dict) -> np.ndarray:
    """Quantized outputs back to float: (q - zero point) * scale."""
    scale, zero_point = detail["quantization"]
    if scale and value.dtype.kind in "iu":
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return value


@RUNTIMES.register("litert")
class LiteRtSession:
    formats = (".tflite",)

    def __init__(self, path: str | Path, threads: int):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise MissingExtra("running .tflite files (ai-edge-litert)", "tflite") from exc
        self.threads = threads
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.signature_list = self.interpreter.get_signature_list()
        self.buckets = bucket_lengths(self.signature_list)  # length -> signature name; empty for other models
        self._runners: dict[str, object] = {}
        self.input_names = list(self.signature_list[next(iter(self.signature_list))]["inputs"])
        self.output_names = list(self.signature_list[next(iter(self.signature_list))]["outputs"])

    @staticmethod
    def version() -> str:
        import importlib.metadata

        return importlib.metadata.version("ai-edge-litert")

    def _runner(self, name: str):
        if name not in self._runners:
            self._runners[name] = self.interpreter.get_signature_runner(name)
        return self._runners[name]

    def signature_for(self, feed: dict[str, np.ndarray]) -> tuple[str, int | None]:
        """The signature that runs `feed` and the length to pad it to."""
        if not self.buckets:
            return next(iter(self.signature_list)), None
        length = next(iter(feed.values())).shape[1]
        for bucket, name in self.buckets.items():
            if length <= bucket:
                return name, bucket
        raise UsageError(f"input of {length} tokens is longer than the largest bucket ({max(self.buckets)})",
                         "truncate the input, or rebuild with a larger sequence length")

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        name, length = self.signature_for({k: v for k, v in feed.items() if k in self.input_names})
        runner = self._runner(name)
        details = runner.get_input_details()
        padded = pad_to(feed, length, self.input_names)
        inputs = {k: _to_tensor(v, details[k]) for k, v in padded.items()}
        outputs = runner.get_output_details()
        return {k: _from_tensor(np.asarray(v), outputs[k]) for k, v in runner(**inputs).items()}
