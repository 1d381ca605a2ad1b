"""Count one run's op costs of a model file, whatever its format: each `count_*.py` module beside this one handles
one file suffix and names the runtime family whose published rows calibrate it; a new format is a new module.

Each counter module defines SUFFIX (".onnx"), RUNTIME (the runtime family of the fit, e.g. "xnnpack"),
`count(path, inputs, signature) -> list[OpCost]` and `input_specs(path, sequence_length, signature)` -> [(name,
shape, numpy dtype)] of one run (dynamic batch 1, other dynamic axes the sequence length).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from pathlib import Path

import numpy as np

from .opcost import OpCost


@lru_cache(maxsize=1)
def _counters() -> dict:
    """{suffix: counter module}: every `count_*` module of this package (counting imports its toolchain anyway)."""
    modules = [importlib.import_module(f"{__package__}.{info.name}")
               for info in pkgutil.iter_modules([str(Path(__file__).parent)]) if info.name.startswith("count_")]
    return {module.SUFFIX: module for module in modules}


def suffixes() -> list[str]:
    return sorted(_counters())


def _counter(path: str | Path):
    suffix = Path(path).suffix
    if suffix not in _counters():
        raise NotImplementedError(f"cannot estimate {suffix or 'extension-less'} files "
                                  f"(counted: {', '.join(suffixes())})")
    return _counters()[suffix]


def runtime_family(path: str | Path) -> str:
    """The runtime family whose published rows calibrate estimates of this file ("onnxruntime", "xnnpack")."""
    return _counter(path).RUNTIME


def count_costs(path: str | Path, inputs: dict, signature: str | None = None) -> list[OpCost]:
    """Cost one run of the model file at `path` on `inputs`. `signature` picks one entry point of a multi-signature
    file (TFLite sequence buckets). A format without a counter raises NotImplementedError."""
    return _counter(path).count(path, inputs, signature)


def remembered_costs(path: str | Path, sha256: str | None, inputs: dict, signature: str | None = None) -> list[OpCost]:
    """count_costs, remembered across runs for a file of this sha256 and these inputs (a cached artifact is counted
    once); the counters' own source is part of the key, so a changed counter counts again."""
    if sha256 is None:
        return count_costs(path, inputs, signature)
    import hashlib
    from dataclasses import asdict

    from ..memo import remembered

    arrays = hashlib.sha256()
    for name in sorted(inputs):
        value = np.ascontiguousarray(inputs[name])
        arrays.update(f"{name}{value.shape}{value.dtype}".encode() + value.tobytes())
    key = {"sha256": sha256, "inputs": arrays.hexdigest(), "signature": signature, "counters": _counters_digest()}
    counted = remembered("op-costs", key, lambda: [asdict(c) for c in count_costs(path, inputs, signature)])
    return [OpCost(**c) for c in counted]


@lru_cache(maxsize=1)
def _counters_digest() -> str:
    import hashlib

    here = Path(__file__).parent
    files = sorted(here.glob("count*.py")) + [here / "opcost.py"]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


def input_specs(path: str | Path, sequence_length: int, signature: str | None = None) -> list[tuple]:
    """[(name, shape, dtype)] of the file's inputs for one run at `sequence_length`; a usage error for a file that
    cannot be read or a format without a counter."""
    from ..errors import UsageError

    try:
        counter = _counter(path)
    except NotImplementedError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return counter.input_specs(Path(path), sequence_length, signature)
