"""Library entry points (no Click, no printing): pack(), inspect(). The CLI is a thin layer over these."""

from __future__ import annotations

import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import data as data_mod, devices as devices_mod
from .version import __version__
from .estimate.host import load_profile
from .bench import latency
from .bench.latency import cpu_name, usable_cores
from .bench.relative import compare_with_fp32
from .config import DataSpec, Gates, Recipe, list_names, load_named
from .errors import ExportError, UsageError, one_line
from .gates import Check, device_checks, gate_checks, unmeasured
from .manifest import remove, sha256, size_of
from .manifest import write as write_manifest
from .progress import Progress
from .estimate.count import count_costs, runtime_family
from .registry import TARGETS, TASKS
from .report import ArtifactResult, Report, to_markdown
from .source import Source, count_parameters, resolve
from .buckets import sequence_buckets
from .targets import ExportSettings
from .tasks.base import Task


CALIBRATED = ("int8-static",)  # precisions whose target needs calibration text


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
        if data and data.package is None and not Path(data.path).is_absolute() and Path(name).is_file():
            # A recipe file's data path means the file beside it, wherever edgepack is run from.
            recipe = recipe.model_copy(update={"data": data.model_copy(update={"path": str(folder / data.path)})})
        return recipe
    for candidate in list_names("recipes"):
        recipe = load_named("recipes", candidate, Recipe)
        if recipe.task == task and recipe.default_for_task:
            return recipe
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
    unknown = sorted(set(gates.min_accuracy) - set(task.accuracy_details))
    if unknown:
        raise UsageError(f"gate min_accuracy.{unknown[0]}: {task.name} measures no {unknown[0]!r}",
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
    if options.search and not any("int8-static" in ps for ps in precisions.values()):
        raise UsageError("--search tunes int8-static, which is not among the precisions", "add --precision int8-static")
    seq_len = options.sequence_length or (recipe.sequence_length if recipe else 128)
    if seq_len > task.max_length:
        raise UsageError(f"sequence length {seq_len} exceeds the model's maximum of {task.max_length} tokens",
                         f"pass --sequence-length {task.max_length} or less")
    _check_out_spares(options.out, source.path, data_mod.locate(options.data or recipe.data))
    return Plan(source=source, task=task, recipe=recipe, targets=targets, precisions=precisions,
                requested_precisions=list(dict.fromkeys(x for ps in precisions.values() for x in ps)), dataset=dataset,
                sequence_length=seq_len, gates=gates, profiles=profiles,
                threads=options.threads or min([p.default_threads for p in profiles] + [usable_cores()]),
                distill=distill_spec)


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


def pack(model: str, options: PackOptions, progress: Progress | None = None) -> Report:
    """Export, compress and check `model`; write artifacts, manifest and report to `options.out`."""
    progress = progress or Progress()
    progress.stage(f"Resolving {model}")
    the_plan = plan(model, options)

    # Build in a sibling temp folder, then rename: an interrupted or failed run leaves no partial output, and
    # --force swaps the old folder out only once the new one is complete.
    out = Path(options.out).absolute()
    missing = [p for p in [out.parent, *out.parent.parents] if not p.exists()]  # innermost first
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    old = out.parent / f".{out.name}.replaced-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        report = _build(the_plan, options, tmp, progress)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    finally:
        if old.exists() and not out.exists():
            old.rename(out)  # interrupted between the two renames: the old output comes back
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        for folder in missing:  # folders made for --out, if still empty (another run may be writing there)
            try:
                folder.rmdir()
            except OSError:
                break
    return report


def _build(p: Plan, options: PackOptions, tmp: Path, progress: Progress) -> Report:
    work = tmp / ".work"
    work.mkdir()
    progress.stage(f"Running the source model on {len(p.dataset.texts)} samples (PyTorch fp32)")
    reference = p.task.reference(p.dataset.texts, p.sequence_length)
    timing_inputs = p.task.latency_inputs(p.dataset.texts, p.sequence_length)
    (tmp / "tokenizer").mkdir()
    p.task.save_preprocessor(tmp / "tokenizer")

    calibration = None
    if any(precision in CALIBRATED for precision in p.requested_precisions):
        from .compress.corpus import training_texts

        calibration = training_texts(p, options)  # (samples, where they come from): not the evaluation samples
    samples, origin = calibration or ([], "")
    settings = ExportSettings(
        sequence_length=p.sequence_length, opset=options.opset,
        buckets=sequence_buckets(p.recipe.sequence_buckets if p.recipe else [], p.sequence_length),
        calibration=list(samples), calibration_origin=origin)
    results: list[ArtifactResult] = []
    manifest_artifacts: list[dict] = []
    notes: list[str] = []
    models, distillation = [(None, p.task)], None
    if p.distill is not None:  # the student is packed beside the teacher, both compared with the teacher's outputs
        from .compress.distill import distill_for_pack

        student, distillation = distill_for_pack(p, options, work / "student-model", progress)
        models = [("teacher", p.task), ("student", student)]
    for role, task in models:
        for target_cls in p.targets:
            (work / (role or "")).mkdir(exist_ok=True)
            target = target_cls(work / (role or ""))
            skipped = [x for x in p.requested_precisions if x not in p.precisions[target_cls.name]]
            if skipped and role != "student":
                notes.append(f"{target_cls.name}: no {', '.join(skipped)} (the target offers "
                             f"{', '.join(target_cls.precisions)})")
            progress.stage(f"Exporting {role + ' ' if role else ''}to {target_cls.name}")
            try:
                exported = target.export(task.source, task, settings)
            except ExportError as exc:  # reported for each of the target's artifacts; other targets go on
                results += [ArtifactResult(target_cls.name, precision, None, checks=[Check("export", False, str(exc))],
                                           role=role)
                            for precision in p.precisions[target_cls.name]]
                continue
            (tmp / target_cls.name).mkdir(exist_ok=True)
            for precision in p.precisions[target_cls.name]:
                file = f"{target_cls.name}/{role + '-' if role else ''}model-{precision}{target_cls.suffix}"
                result = ArtifactResult(target_cls.name, precision, file, role=role)
                results.append(result)
                try:
                    _check_artifact(p, options, target, exported, result, tmp, reference, timing_inputs, progress)
                except _ArtifactFailed as failed:  # reported, not shipped; the other artifacts go on
                    remove(tmp / result.path)
                    result.path, result.sha256, result.size_bytes = None, None, None
                    result.checks.append(Check(failed.stage, False, one_line(failed.__cause__)))
                    continue
                manifest_artifacts.append({"target": target_cls.name, "precision": precision, "path": result.path,
                                           **({"model": role} if role else {}),
                                           "runtime": target_cls.runtime, **target.inputs_outputs(tmp / result.path),
                                           "output_meaning": task.describe_output(), **result.deployment})
    shutil.rmtree(work)
    if origin or distillation:
        from .compress.corpus import tuned_on_evaluation

        notes += tuned_on_evaluation("int8-static calibrated", origin)
        notes += tuned_on_evaluation("the student was distilled", (distillation or {}).get("training_texts", ""))

    def retime(result: ArtifactResult) -> float:
        progress.stage(f"{result.target}/{result.precision}: timing again, in turn, to confirm a slowdown vs fp32")
        return latency.measure(tmp / result.path, timing_inputs, p.threads, options.warmup, options.runs)["p50"]

    notes += compare_with_fp32(results, retime)

    report = Report(
        model=p.source.model_id, revision=p.source.revision, task=p.task.name, license=p.source.license,
        artifacts=results, recipe=p.recipe.name if p.recipe else None, sequence_length=p.sequence_length,
        data={"origin": p.dataset.origin, "samples": len(p.dataset.texts), "labels": p.dataset.labels is not None,
              "text_column": p.dataset.text_column, "label_column": p.dataset.label_column},
        devices=[d.name for d in p.profiles], gates=p.gates.model_dump(),
        host={"cpu": cpu_name(), "cores": usable_cores(), "threads": p.threads, "runs": options.runs,
              "warmup": options.warmup},
        notes=[f"source: {p.source.origin} ({p.source.path.name if p.source.origin == 'local' else p.source.revision})",
               *notes],
        edgepack_version=__version__, distillation=distillation)
    (tmp / "report.json").write_text(report.to_json())
    (tmp / "report.md").write_text(to_markdown(report))
    write_manifest(tmp, p.source, p.task.name, manifest_artifacts,
                   {"sequence_length": p.sequence_length, "tokenizer": "tokenizer/", "passed": report.passed})
    return report


class _ArtifactFailed(Exception):
    def __init__(self, stage: str):
        super().__init__(stage)
        self.stage = stage


def _check_artifact(p: Plan, options: PackOptions, target, exported: Path, result: ArtifactResult, tmp: Path,
                    reference, timing_inputs: dict, progress: Progress) -> None:
    """Build one artifact and run every check on the file itself, filling `result`. Any failure is raised as
    _ArtifactFailed naming the stage, with the toolchain's exception as its cause."""
    from .bench import accuracy

    path, label = tmp / result.path, f"{result.target}/{result.precision}"
    stage = "build"
    try:
        progress.stage(f"{label}: building")
        if options.search and result.precision == "int8-static":  # the accuracy-aware search builds it
            from .compress.search import search_static

            result.settings = search_static(p, options, target, exported, path, reference, timing_inputs, progress)
        else:
            result.settings = target.build(result.precision, exported, path)
        found = target.check(path)  # one detail line, or (check name, detail) pairs; failures raise
        result.checks += [Check(name, True, detail)
                          for name, detail in ([("format check", found)] if isinstance(found, str) else found)]
        result.sha256, result.size_bytes = sha256(path), size_of(path)
        size_mb = result.size_bytes / 1e6
        result.deployment = target.deployment(result.precision)

        why_not = target.runs_here()
        if why_not:  # e.g. Core ML on Linux: the checks above ran; say plainly what did not
            result.not_run = f"{why_not}; checked on {platform.system()} {platform.machine()}"
            result.notes.append(f"not run here: {why_not}; accuracy, latency and memory are not measured, so "
                                "their gates and the device budgets on them are not applied (those on size are)")
            result.checks += gate_checks(p.gates, None, None, size_mb, None)
            for profile in p.profiles:  # the file's size is known: each device's size budget and storage apply
                result.checks += device_checks(profile.name, None, size_mb, None, profile.budgets,
                                               devices_mod.fits(profile, result.size_bytes, None))
            return

        stage = "accuracy run"
        with progress.bar(len(p.dataset.texts), f"{label}: accuracy") as step:
            outputs = accuracy.artifact_outputs(path, p.task, p.dataset.texts, p.sequence_length, p.threads, step)
        acc = p.task.compare(reference, outputs, p.dataset.labels)
        result.accuracy = {"metric": acc.metric, "value": acc.value, "drop": acc.drop, "details": acc.details}

        stage = "latency run"
        progress.stage(f"{label}: timing ({options.runs} runs, {p.threads} threads)")
        host = latency.measure(path, timing_inputs, p.threads, options.warmup, options.runs)
        result.latency_ms["host"] = {k: host[k] for k in ("p50", "p90", "threads", "runs", "warmup")}
        result.memory_mb = host["memory_mb"]
        result.checks += gate_checks(p.gates, acc, host["p50"], size_mb, host["memory_mb"])
        result.notes += unmeasured(p.gates, acc)

        stage = "device estimate"
        from .estimate.host import host_check  # the host as a profile: estimate vs this very measurement
        from .estimate.predict import estimate_latency

        costs = None
        names = {i["name"] for i in target.inputs_outputs(path)["inputs"]}
        try:
            runtime = runtime_family(path)
            costs = count_costs(path, {k: v for k, v in timing_inputs.items() if k in names})
        except NotImplementedError as exc:
            result.notes.append(f"no latency estimate: {exc}; the devices' latency budgets are not applied")
        if costs is not None:
            result.latency_ms["host"]["estimate"] = host_check(costs, host["p50"], host["threads"], runtime)
        for profile in p.profiles:
            est = estimate_latency(costs, profile, runtime=runtime) if costs is not None else None
            fit = devices_mod.fits(profile, result.size_bytes, int(host["memory_mb"] * 1e6))
            checks = device_checks(profile.name, est.estimate_ms if est else None, size_mb, host["memory_mb"],
                                   profile.budgets, fit)
            result.checks += checks
            result.latency_ms["devices"][profile.name] = {
                "estimate": est.estimate_ms, "low": est.low_ms, "high": est.high_ms, "threads": est.threads,
                "budget": profile.budgets.max_latency_ms, "passed": all(c.passed for c in checks),
                "by_class": est.by_class, "note": est.note} if est else {
                "estimate": None, "budget": profile.budgets.max_latency_ms, "passed": all(c.passed for c in checks),
                "note": "no cost model for this format"}
    except Exception as exc:  # noqa: BLE001 - any toolchain failure fails this artifact only
        raise _ArtifactFailed(stage) from exc


# ---- inspect ------------------------------------------------------------------------------------------------------

_BYTES_PER_PRECISION = {"fp32": 4.0, "fp16": 2.0, "int8-dynamic": 1.0, "int8-static": 1.0, "int4-weight": 0.5}


def _size_class(params: int | None) -> str:
    if params is None:
        return "unknown"
    for limit, label in ((10e6, "tiny (<10M)"), (100e6, "small (<100M)"), (1e9, "medium (<1B)"),
                         (10e9, "large (<10B)")):
        if params < limit:
            return label
    return "huge (>=10B)"


def inspect(model: str, devices: list[str] | None = None, revision: str | None = None, task: str | None = None,
            allow_pickle: bool = False, trust_remote_code: bool = False) -> dict:
    from .licenses import commercial_use
    from .tasks import detect_task

    # Profiles first: a typo in --device is an instant error, not one after the model is resolved.
    profiles = {name: load_profile(name)
                for name in (devices if devices is not None else devices_mod.list_profiles())}
    source = resolve(model, revision, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    task_name = task or detect_task(source)
    TASKS.get(task_name)
    params = count_parameters(source)
    targets = {}
    for name in TARGETS.names():
        target = TARGETS.get(name)
        try:
            target.require()
            reason = target.unsupported(source, task_name)
        except UsageError as exc:  # a missing extra: say which
            reason = str(exc)
        targets[name] = {"precisions": list(target.precisions), "supported": reason is None, "reason": reason}
    fit = {}
    for name, profile in profiles.items():
        fit[name] = {precision: devices_mod.fits(profile, int(params * per), None) if params else None
                     for precision, per in _BYTES_PER_PRECISION.items()}
    return {"model": source.model_id, "revision": source.revision, "origin": source.origin, "task": task_name,
            "architectures": source.config.get("architectures"), "model_type": source.config.get("model_type"),
            "parameters": params, "size_class": _size_class(params), "license": source.license,
            "commercial_use": commercial_use(source.license), "weights": source.weights, "targets": targets,
            "devices": fit}
