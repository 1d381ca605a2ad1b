"""manifest.json: what was shipped (every file's sha256 and size) and what made it (source, revision, versions)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from .licenses import commercial_use

_VERSIONED = ("edgepack", "torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "numpy")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str | None]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def write(folder: Path, source, task_name: str, artifacts: list[dict], extra: dict) -> dict:
    """Hash every file in `folder` (but the manifest itself) and write manifest.json."""
    files = [{"path": p.relative_to(folder).as_posix(), "sha256": sha256(p), "size_bytes": p.stat().st_size}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"]
    manifest = {
        "model": source.model_id, "revision": source.revision, "origin": source.origin,
        "license": source.license, "commercial_use": commercial_use(source.license), "task": task_name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
        "artifacts": artifacts, "files": files, **extra,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
