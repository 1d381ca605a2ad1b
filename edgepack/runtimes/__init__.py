"""Runtimes load an artifact file and run it. One file per runtime, registered with `@RUNTIMES.register(name)`."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..registry import RUNTIMES


def runtime_for(path: str | Path) -> str:
    """The runtime that executes a file, chosen by its suffix."""
    suffix = Path(path).suffix
    for name in RUNTIMES.names():
        if suffix in RUNTIMES.get(name).formats:
            return name
    raise UsageError(f"no runtime runs {suffix!r} files", f"supported: {', '.join(RUNTIMES.names())}")
