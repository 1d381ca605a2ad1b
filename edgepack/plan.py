"""What a `pack` run will do, resolved and validated before any heavy work or any write: `PackOptions` (every option
the CLI and the API take, one field each) -> `plan()` -> `Plan`. Later stages read options from the plan only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import data as data_mod, devices as devices_mod
from .bench.latency import usable_cores
from .config import DataSpec, Gates, Recipe, data_dir, list_names, load_named
from .errors import UsageError
from .estimate.host import load_profile
from .registry import TARGETS, TASKS
from .source import Source, resolve
from .tasks.base import Task


@dataclass
class PackOptions:
    """Everything `pack` needs besides the model; the CLI's flags map one to one onto these fields."""

    out: Path
    devices: list[str] = field(default_factory=list)
    recipe: str | None = None
    task: str | None = None
    revision: str | None = None
    targets: list[str] | None = None
    precisions: list[str] | None = None
    data: DataSpec | None = None
    # Overrides applied to whichever data is used (--data or the recipe's):
    text_column: str | None = None
    label_column: str | None = None
    data_encoding: str | None = None
    limit: int | None = None  # at most this many evaluation samples (a seeded sample)
    sequence_length: int | None = None
    context_length: int | None = None  # text-generation: the KV cache's size, memory and RAM checked at it
    gates: Gates = field(default_factory=Gates)
    opset: int | None = None
    threads: int | None = None
    warmup: int = 10
    runs: int = 100
    force: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False
    # Accuracy-aware compression (edgepack/compress): search int8-static for --max-accuracy-drop within a budget,
    # and distil a smaller student first (`layers=3[,steps=..,minutes=..]`).
    search: bool = False
    search_budget_s: float = 600.0
    distill: str | None = None


def load_recipe(name: str | None, task: str | None) -> Recipe | None:
    """The named recipe, or the task's default recipe, or None."""
    if name is not None:
        recipe = load_named("recipes", name, Recipe)
        data, folder = recipe.data, Path(name).parent
        if data and data.package is None and not Path(data.path).is_absolute():
            # A recipe file's data path means the file beside it, wherever edgepack is run from (a shipped one's:
            # the file in the recipes folder).
            folder = folder if Path(name).is_file() else data_dir("recipes")
            recipe = recipe.model_copy(update={"data": data.model_copy(update={"path": str(folder / data.path)})})
        return recipe
    for candidate in list_names("recipes"):
        recipe = load_named("recipes", candidate, Recipe)
        if recipe.task == task and recipe.default_for_task:
            return load_recipe(candidate, None)  # by name: its data path resolved as above
    return None


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise UsageError(f"output folder {str(out)!r} already exists", "pass --force to replace it, or choose --out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{str(out)!r} exists and is not a folder", "choose another --out")
    parent = next(p for p in Path(out).absolute().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create {str(out)!r}: {str(parent)!r} is not a writable folder", "choose another --out")


def _check_out_spares(out: Path, *inputs: Path) -> None:
    """--force replaces --out wholesale: refuse when that would delete the model or the data this run reads."""
    out = Path(out).resolve()
    for path in map(Path.resolve, inputs):
        if path == out or out in path.parents:
            raise UsageError(f"replacing --out {str(out)!r} would delete {str(path)!r}, which this run reads",
                             "choose another --out")


@dataclass
class Plan:
    """Everything `pack` will do, resolved and validated before any heavy work or any write."""

    source: Source
    task: Task
    recipe: Recipe | None
    targets: list[type]
    precisions: dict[str, list[str]]  # per target: the requested precisions it builds
    requested_precisions: list[str]
    dataset: data_mod.Dataset
    sequence_length: int
    gates: Gates
    profiles: list[devices_mod.DeviceProfile]
    threads: int
    distill: object = None  # a compress.distill.DistillSpec, or None
    workload: dict | None = None  # token lengths of the evaluation data (Task.workload_lengths); None for images
    context_length: int | None = None  # text-generation: prompt + generated tokens the KV cache is sized for
    options: PackOptions = field(default_factory=lambda: PackOptions(out=Path(".")))  # as given, for what is not
    # resolved above (runs, warm-up, search budget, data overrides)


def plan(model: str, options: PackOptions) -> Plan:
    """Resolve the model, recipe, task, devices, targets and data; raise a UsageError for anything wrong.
    Cheap checks come first, so that a typo does not cost a model download."""
    _check_out(Path(options.out), options.force)
    distill_spec = None
    if options.distill is not None:
        from .compress.distill import parse_spec

        distill_spec = parse_spec(options.distill)
    recipe = load_recipe(options.recipe, options.task) if options.recipe else None
    if options.task:
        TASKS.get(options.task)
    profiles = [load_profile(d) for d in options.devices or (recipe.devices if recipe else [])]
    targets, precisions = _targets(options, recipe)
    for target in targets:  # a missing optional toolchain is a usage error, before any download
        target.require()
    dataset = _load_data(options.data, options) if options.data else None

    source = resolve(model, options.revision, allow_pickle=options.allow_pickle,
                     trust_remote_code=options.trust_remote_code)
    task_name = options.task or (recipe.task if recipe else None)
    if task_name is None:
        from .tasks import detect_task

        task_name = detect_task(source)
    if recipe is None:  # the task's default recipe supplies what the options leave open
        recipe = load_recipe(None, task_name)
        targets, precisions = _targets(options, recipe)
        for target in targets:
            target.require()
    if options.recipe and recipe.task != task_name:
        raise UsageError(f"recipe {recipe.name!r} is for {recipe.task}, not {task_name}", "choose a matching recipe")
    task = TASKS.get(task_name)(source)
    for target in targets:  # precisions a target has but not for this task (ONNX int8-weight for CNNs)
        built = [x for x in target.precisions if task_name not in target.not_for_tasks.get(x, ())]
        precisions[target.name] = [x for x in precisions[target.name] if x in built]
        if not precisions[target.name]:
            raise UsageError(f"target {target.name!r} builds none of the precisions asked for {task_name} models",
                             f"choose from: {', '.join(built)}")
    teacher_layers = source.config.get("num_hidden_layers")
    if distill_spec is not None and isinstance(teacher_layers, int):  # before the source model runs, not after
        from .compress.distill import pick_layers

        pick_layers(teacher_layers, distill_spec.layers)
    for target in targets:
        reason = target.unsupported(source, task_name)
        if reason:
            raise UsageError(f"cannot export {model!r} to {target.name}: {reason}", "try another --task or target")
    if not options.devices and not options.recipe and recipe:
        profiles = [load_profile(d) for d in recipe.devices]
    gates = (recipe.gates if recipe else Gates()).merged(options.gates)
    unknown = sorted((set(gates.min_accuracy) | set(gates.max_accuracy)) - set(task.accuracy_details))
    if unknown:
        raise UsageError(f"gate {unknown[0]}: {task.name} measures no {unknown[0]!r}",
                         f"choose from: {', '.join(task.accuracy_details)}")
    if dataset is None:
        if recipe is None or recipe.data is None:
            raise UsageError("no evaluation data", "pass --data FILE (CSV or JSONL with a text column)")
        dataset = _load_data(recipe.data, options)
    got = "image" if dataset.text_column == "image" else "text"
    if got != task.data_kind:
        raise UsageError(f"{task.name} evaluates on {task.data_kind} data, but {dataset.origin} holds {got}",
                         "pass --data " + ("a folder of images (one subfolder per class)" if task.data_kind == "image"
                                           else "a CSV or JSONL file with a text column"))
    if options.search and gates.max_accuracy_drop is None:
        raise UsageError("--search needs an accuracy limit", "pass --max-accuracy-drop X")
    if options.search and not any(x in t.tunable for t in targets for x in precisions[t.name]):
        raise UsageError("--search tunes int8-static, which is not among the precisions", "add --precision int8-static")
    seq_len = options.sequence_length or (recipe.sequence_length if recipe else 128)
    if seq_len > task.max_length:
        raise UsageError(f"sequence length {seq_len} exceeds the model's maximum of {task.max_length} tokens",
                         f"pass --sequence-length {task.max_length} or less")
    context = options.context_length or (recipe.context_length if recipe else None)
    if context and hasattr(task, "check_context"):  # text-generation: the KV cache's size
        task.check_context(max(context, seq_len))
    _check_out_spares(options.out, source.path, data_mod.locate(options.data or recipe.data))
    return Plan(source=source, task=task, recipe=recipe, targets=targets, precisions=precisions,
                requested_precisions=list(dict.fromkeys(x for ps in precisions.values() for x in ps)), dataset=dataset,
                sequence_length=seq_len, gates=gates, profiles=profiles,
                threads=options.threads or min([p.default_threads for p in profiles] + [usable_cores()]),
                distill=distill_spec, options=options, workload=task.workload_lengths(dataset.texts, seq_len),
                context_length=context)


def _targets(options: PackOptions, recipe: Recipe | None) -> tuple[list, dict[str, list[str]]]:
    """The targets, and per target the requested precisions it builds. Each target builds the subset it supports
    (Core ML has no dynamic int8; ONNX no palettization); a precision no requested target builds is an error."""
    targets = [TARGETS.get(t) for t in options.targets or (recipe.targets if recipe else ["onnx"])]
    precisions = options.precisions or (recipe.precisions if recipe else ["fp32", "fp16", "int8-dynamic"])
    for precision in options.precisions or ():  # asked for by name: some target must build it
        if not any(precision in target.precisions for target in targets):
            offered = sorted({p for target in targets for p in target.precisions})
            names = ", ".join(t.name for t in targets)
            raise UsageError(f"no requested target ({names}) has precision {precision!r}",
                             f"choose from: {', '.join(offered)}")
    for target in targets:  # the recipe's defaults: each target builds those it has, but at least one
        if not any(p in target.precisions for p in precisions):
            raise UsageError(f"target {target.name!r} offers none of the precisions {', '.join(precisions)}",
                             f"pass --precision, one of: {', '.join(target.precisions)}")
    return targets, {t.name: [p for p in precisions if p in t.precisions] for t in targets}


def _load_data(spec: DataSpec, options: PackOptions) -> data_mod.Dataset:
    overrides = {"text_column": options.text_column, "label_column": options.label_column,
                 "encoding": options.data_encoding, "limit": options.limit}
    return data_mod.load(spec.model_copy(update={k: v for k, v in overrides.items() if v is not None}))
