"""Targets export the source model to a file format and build that format's precisions.

One file per target, registered with `@TARGETS.register(name)`; heavy toolchains are imported inside methods.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from dataclasses import dataclass, field

from ..errors import MissingExtra


@dataclass
class ExportSettings:
    """What every target's export may need from the plan."""

    sequence_length: int
    buckets: list[int]  # fixed-shape targets: one entry point per sequence length
    opset: int | None = None
    calibration: list = field(default_factory=list)  # samples (texts, image paths) static quantization calibrates on
    calibration_origin: str = ""


class Target:
    """What the pipeline asks of every target; each target file subclasses it and registers with
    `@TARGETS.register(name)`. The defaults suit a target with no optional toolchain that runs anywhere."""

    precisions: tuple[str, ...] = ()
    suffix = ""
    runtime = ""

    @staticmethod
    def require() -> None:
        """Import the target's optional toolchain, or raise MissingExtra naming the extra."""

    @staticmethod
    def unsupported(source, task_name: str) -> str | None:
        """Why this model cannot go to this target, known before exporting; None when it may."""
        return None

    @staticmethod
    def runs_here() -> str | None:
        """Why artifacts of this target cannot execute on this host; None when they can."""
        return None

    def deployment(self, precision: str) -> dict:
        """What an app's build must know beyond inputs and outputs (e.g. a minimum OS), for the manifest."""
        return {}


def require(what: str, extra: str, *modules: str) -> None:
    """Import the toolchain a target needs, or say which extra installs it."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(f"{what} ({exc.name or module})", extra) from exc  # the module really missing


@contextlib.contextmanager
def quiet_toolchain():
    """Exporters and quantizers warn at length about things edgepack checks itself; keep the terminal readable."""
    loggers = [logging.getLogger(name) for name in ("", "optimum", "onnxruntime", "coremltools",
                                                        "absl", "jax", "torch._export", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a core dependency
        hf_logging = None
    try:
        # Converters and quantizers also print progress bars and summaries of their own; the report has the numbers.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if hf_logging is not None:
            hf_logging.set_verbosity(hf_level)
