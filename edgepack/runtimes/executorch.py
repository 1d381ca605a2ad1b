"""ExecuTorch's Python runtime (executorch.runtime) on the CPU, XNNPACK's thread pool at a fixed size. A file with one
method per sequence-length bucket (`seq_16`, ...) runs each input on the smallest that fits, padded with 0 and
attention mask 0, as an app would."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..buckets import bucket_lengths, pad_to
from ..errors import ExportError, MissingExtra, UsageError
from ..registry import RUNTIMES

_open_sessions = 0


def set_threads(threads: int) -> None:
    """XNNPACK's pool is process-wide and must be sized before any method is loaded: resizing it under a loaded
    method and running that method crashes executorch 1.5.1 (SIGFPE), so a change with sessions open is refused."""
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() == threads:
        return
    if _open_sessions:
        raise UsageError("ExecuTorch's thread pool is process-wide: one thread count per process",
                         "time each thread count in its own process")
    portable_lib._unsafe_reset_threadpool(int(threads))


@RUNTIMES.register("executorch")
class ExecuTorchSession:
    formats = (".pte",)

    def __init__(self, path: str | Path, threads: int):
        global _open_sessions
        try:
            import executorch.kernels.quantized  # noqa: F401 - registers quantized_decomposed kernels
            from executorch.runtime import Runtime, Verification
        except ImportError as exc:
            raise MissingExtra("running .pte files (executorch)", "executorch") from exc
        from ..targets.executorch import missing_kernels, read_pte

        info = read_pte(Path(path))
        missing = missing_kernels(info)
        if missing:  # loading such a method would end this process without an error
            raise ExportError(f"{path}: this ExecuTorch runtime lacks {missing}")
        set_threads(threads)
        self.threads = threads
        self.program = Runtime.get().load_program(Path(path), verification=Verification.Minimal)
        self.input_names = str(info["constants"].get("edgepack_inputs", "input_ids,attention_mask")).split(",")
        self.output_names = [str(info["constants"].get("edgepack_outputs", "output"))]
        self.methods = {name: self.program.load_method(name) for name in info["methods"]}
        self.buckets = bucket_lengths(self.methods)
        _open_sessions += 1

    @staticmethod
    def version() -> str:
        import importlib.metadata

        return importlib.metadata.version("executorch")

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..targets.executorch import as_tensor

        if self.buckets:
            length = next(iter(feed.values())).shape[1]
            fits = [n for n in self.buckets if n >= length]
            if not fits:
                raise UsageError(f"input of {length} tokens is longer than the largest bucket ({max(self.buckets)})",
                                 "truncate the input, or rebuild with a larger sequence length")
            name, padded = self.buckets[fits[0]], pad_to(feed, fits[0], self.input_names)
        else:
            name, padded = next(iter(self.methods)), {k: feed[k] for k in self.input_names}
        outputs = self.methods[name].execute([as_tensor(padded[k]) for k in self.input_names])
        return {self.output_names[0]: outputs[0].numpy()}

    def __del__(self):
        global _open_sessions
        if getattr(self, "methods", None) is not None:
            self.methods = None
            _open_sessions -= 1
