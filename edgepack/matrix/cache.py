"""The content-addressed artifact cache: one entry per exported, checked file, keyed by everything that changes it.

Only artifacts built and checked are stored (a failed export is tried again next run). Layout:
`$EDGEPACK_CACHE/artifacts/<key>/` holds the file (or Core ML folder) and `entry.json` (what `pack` found
on it: accuracy, host latency, checks, the manifest line, and the key's inputs, readable). An entry is written
under a temp name and renamed, so an interrupted run leaves none half-written; its file's sha256 is verified on every
read, and a mismatch discards the entry (it is rebuilt, never trusted).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

from ..manifest import sha256, versions
from ..memo import root

ENTRY = "entry.json"


def key_of(inputs: dict) -> str:
    """The key of an artifact made from `inputs` (source identity, task, target, precision, settings, data, versions):
    any change to one of them is another key."""
    material = {**inputs, "versions": versions()}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:32]


class Cache:
    def __init__(self, base: Path | None = None):
        self.base = Path(base or root()) / "artifacts"
        self.discarded: list[str] = []  # what was found corrupt this run, said in the outputs

    def get(self, key: str) -> tuple[dict, Path | None] | None:
        """The entry and its file, or None when absent; a corrupt entry (file changed, entry unreadable) is removed
        and reported as `self.discarded`, then missed."""
        folder = self.base / key
        try:
            entry = json.loads((folder / ENTRY).read_text())
        except (OSError, ValueError):
            if folder.exists():
                self._discard(folder, "its entry.json is unreadable")
            return None
        path = folder / str(entry.get("file"))
        if not path.exists() or sha256(path) != entry.get("sha256"):
            self._discard(folder, "its file does not match the sha256 recorded")
            return None
        return entry, path

    def _discard(self, folder: Path, why: str) -> None:
        self.discarded.append(f"cache entry {folder.name} discarded and rebuilt: {why}")
        shutil.rmtree(folder, ignore_errors=True)

    def put(self, key: str, entry: dict, file: Path) -> tuple[dict, Path]:
        """Store `file` (copied) with `entry`; temp name then rename, so readers see all of it or nothing. Returns
        the stored entry and file, as `get` would."""
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / f".{key}.partial-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            dest = tmp / file.name
            if file.is_dir():  # a Core ML .mlpackage
                shutil.copytree(file, dest)
            else:
                shutil.copy2(file, dest)
            entry = {**entry, "file": file.name, "sha256": sha256(dest)}
            (tmp / ENTRY).write_text(json.dumps(entry, indent=1, default=str) + "\n")
            final = self.base / key
            if not final.exists():  # else a concurrent run stored it first: same key, same content
                tmp.rename(final)
            return entry, final / file.name
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
