"""Targets export the source model to a file format and build that format's precisions.

One file per target, registered with `@TARGETS.register(name)`; heavy toolchains are imported inside methods.
"""

import contextlib
import logging
import warnings


@contextlib.contextmanager
def quiet_toolchain():
    """Exporters and quantizers warn at length about things edgepack checks itself; keep the terminal readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
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
        root.setLevel(level)
        if hf_logging is not None:
            hf_logging.set_verbosity(hf_level)
