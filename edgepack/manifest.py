"""manifest.json: what was shipped (every file's sha256 and size) and what made it (source, revision, versions)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from .licenses import commercial_use

_VERSIONED = ("edgepack", "torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "numpy",
              "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "coremltools")


def sha256(path: Path) -> str:
    """Of a file; of a folder artifact (a Core ML .mlpackage), over its files' relative paths and contents."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [(p.relative_to(path).as_posix(), p) for p in sorted(path.rglob("*")) if p.is_file()] \
        if path.is_dir() else [(None, path)]
    for name, file in files:
        if name is not None:  # a plain file's hash stays what sha256sum prints
            digest.update(name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def remove(path: Path) -> None:
    """Delete a file or folder artifact, if there."""
    path = Path(path)
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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
