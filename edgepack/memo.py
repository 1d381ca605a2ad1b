"""edgepack's cache folder, and small answers remembered in it across runs (a preflight verdict, a graph's op costs),
each a pure function of what its key names: a changed input or tool version is another key, never a stale answer."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable


def root() -> Path:
    """$EDGEPACK_CACHE, else ~/.cache/edgepack."""
    return Path(os.environ.get("EDGEPACK_CACHE") or Path.home() / ".cache" / "edgepack")


def remembered(kind: str, key: dict, compute: Callable[[], object]):
    """`compute()`'s JSON-able value for `key`, from `$EDGEPACK_CACHE/memo/<kind>/` when an earlier run stored it.
    A value that cannot be read is computed again; a cache that cannot be written only costs the next run time."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = root() / "memo" / kind / f"{digest}.json"
    try:
        stored = json.loads(path.read_text())
        if stored.get("key") == json.loads(json.dumps(key, sort_keys=True, default=str)):
            return stored["value"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # temp name then rename: never half-written
        tmp.write_text(json.dumps({"key": key, "value": value}, default=str))
        tmp.replace(path)
    except OSError:
        pass
    return value
