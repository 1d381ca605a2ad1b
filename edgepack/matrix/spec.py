"""The matrix file: models x devices x targets x precisions, gates and baseline tolerances (typed; unknown keys are
errors naming the field). Paths inside it (model folders, data files, the baseline) are relative to the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..config import DataSpec, Gates, Recipe, Strict, load_yaml_model


class MatrixModel(Strict):
    id: str  # a hub id or a model folder
    name: str | None = None  # the label in summaries (default: the id's last part)
    recipe: str | None = None
    task: str | None = None
    revision: str | None = None
    data: str | DataSpec | None = None  # a file, or a file inside a package (default: the recipe's data)
    limit: PositiveInt | None = None  # at most this many evaluation samples
    sequence_length: PositiveInt | None = None
    gates: Gates = Gates()  # over the matrix's gates for this model

    @property
    def label(self) -> str:
        return self.name or self.id.rstrip("/").rsplit("/", 1)[-1]


class Tolerances(Strict):
    """How much worse than the baseline a cell may get before it fails, even within the absolute gates."""

    accuracy_drop: float = Field(default=0.005, ge=0)  # in the task metric's units (0.005 = half a point)
    size_growth: float = Field(default=0.05, ge=0)  # a fraction: 0.05 = 5% larger
    latency_growth: float = Field(default=0.10, ge=0)  # a fraction of each device's estimate


class MatrixSpec(Strict):
    models: list[MatrixModel] = Field(min_length=1)
    devices: list[str] = Field(min_length=1)
    targets: list[str] = ["onnx"]
    precisions: list[str] = ["fp32", "int8-dynamic"]
    gates: Gates = Gates()
    tolerances: Tolerances = Tolerances()
    baseline: str | None = None  # a previous matrix.json or report.json
    runs: int = Field(default=50, ge=5)  # timed runs per artifact (host latency, measured once, cached)
    warmup: int = Field(default=5, ge=0)
    threads: PositiveInt | None = None

    # Names checked as a recipe checks them, so a typo fails here, with its field named, before any export.
    _targets = field_validator("targets")(Recipe._known_targets.__func__)
    _precisions = field_validator("precisions")(Recipe._known_precisions.__func__)
    _devices = field_validator("devices")(Recipe._known_devices.__func__)

    @model_validator(mode="after")
    def _distinct(self) -> "MatrixSpec":
        for what, names in (("models", [m.label for m in self.models]), ("devices", self.devices),
                            ("targets", self.targets), ("precisions", self.precisions)):
            seen = {n for n in names if names.count(n) > 1}
            if seen:
                raise ValueError(f"{what}: {sorted(seen)[0]!r} is listed twice (models need distinct names)")
        return self


def load(path: Path) -> tuple[MatrixSpec, str]:
    """The file's spec and the sha256 of its text (jobs of one matrix carry it, so `merge` can tell matrices apart)."""
    spec = load_yaml_model(Path(path), MatrixSpec)
    return spec, hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolve_path(value: str, folder: Path) -> str:
    """A relative path in the file means one beside the file; a hub id (`org/name`) that is no folder stays as is."""
    candidate = folder / value
    return str(candidate) if not Path(value).is_absolute() and (candidate.exists() or value.startswith(".")) \
        else value
