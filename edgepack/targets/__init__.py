"""Targets export the source model to a file format and build that format's precisions.

One file per target, registered with `@TARGETS.register(name)`; heavy toolchains are imported inside methods.
"""

import contextlib
import logging
import warnings


@contextlib.contextmanager
def quiet_toolchain():
    """Exporters and quantizers warn at length about things edgepack checks itself; keep the terminal readable."""
    loggers = [logging.getLogger(name) for name in ("", "optimum", "onnxruntime")]
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if hf_logging is not None:
            hf_logging.set_verbosity(hf_level)
