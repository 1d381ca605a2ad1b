"""edgepack: compress, export and check pretrained models for edge devices.

Importing this package loads no torch, onnx or onnxruntime; the stages import them when they run.
"""

from .version import __version__

__all__ = ["__version__", "pack", "inspect", "PackOptions"]


def __getattr__(name):
    # The API is imported on first use so that `import edgepack` and `edgepack --help` stay fast.
    if name in {"pack", "inspect", "PackOptions"}:
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
