"""Library entry points (no Click, no printing): pack(), inspect(). The CLI is a thin layer over these."""

from __future__ import annotations

import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, data as data_mod, devices as devices_mod
from .config import DataSpec, Gates, Recipe, list_names, load_named
from .errors import EdgepackError, UsageError
from .gates import Check, device_checks, gate_checks
from .manifest import sha256
from .manifest import write as write_manifest
from .progress import Progress
from .registry import TARGETS, TASKS
from .report import ArtifactResult, Report, to_markdown
from .source import resolve


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
    limit: int | None = None  # at most this many evaluation samples (a seeded sample), over the recipe's
    sequence_length: int | None = None
    gates: Gates = field(default_factory=Gates)
    opset: int | None = None
    threads: int | None = None
    warmup: int = 10
    runs: int = 100
    force: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False


def load_recipe(name: str | None, task: str | None) -> Recipe | None:
    """The named recipe, or the task's default recipe, or None."""
    if name is not None:
        return load_named("recipes", name, Recipe)
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


@dataclass
class Plan:
    """Everything `pack` will do, resolved and validated before any heavy work or any write."""

    source: object
    task: object
    recipe: Recipe | None
    targets: list
    precisions: list[str]
    dataset: data_mod.Dataset
    sequence_length: int
    gates: Gates
    profiles: list
    threads: int


def plan(model: str, options: PackOptions) -> Plan:
    """Resolve the model, recipe, task, devices, targets and data; raise a UsageError for anything wrong."""
    _check_out(Path(options.out), options.force)
    source = resolve(model, options.revision, allow_pickle=options.allow_pickle,
                     trust_remote_code=options.trust_remote_code)
    recipe = load_recipe(options.recipe, options.task)
    task_name = options.task or (recipe.task if options.recipe else None)
    if task_name is None:
        from .tasks import detect_task

        task_name = detect_task(source)
        recipe = recipe or load_recipe(None, task_name)
    if recipe is not None and recipe.task != task_name:
        raise UsageError(f"recipe {recipe.name!r} is for {recipe.task}, not {task_name}", "choose a matching recipe")
    task = TASKS.get(task_name)(source)
    profiles = [devices_mod.load_profile(d) for d in (options.devices or (recipe.devices if recipe else []))]
    targets = [TARGETS.get(t) for t in options.targets or (recipe.targets if recipe else ["onnx"])]
    precisions = options.precisions or (recipe.precisions if recipe else ["fp32", "fp16", "int8-dynamic"])
    for target in targets:
        bad = [p for p in precisions if p not in target.precisions]
        if bad:
            raise UsageError(f"target {target.name!r} has no precision {bad[0]!r}",
                             f"choose from: {', '.join(target.precisions)}")
    spec = options.data or (recipe.data if recipe else None)
    if spec is None:
        raise UsageError("no evaluation data", "pass --data FILE (CSV or JSONL with a text column)")
    if options.limit is not None:
        spec = spec.model_copy(update={"limit": options.limit})
    return Plan(source=source, task=task, recipe=recipe, targets=targets, precisions=precisions,
                dataset=data_mod.load(spec),
                sequence_length=options.sequence_length or (recipe.sequence_length if recipe else 128),
                gates=(recipe.gates if recipe else Gates()).merged(options.gates), profiles=profiles,
                threads=options.threads or min([p.default_threads for p in profiles] + [os.cpu_count() or 1]))


def pack(model: str, options: PackOptions, progress: Progress | None = None) -> Report:
    """Export, compress and check `model`; write artifacts, manifest and report to `options.out`."""
    progress = progress or Progress()
    progress.stage(f"Resolving {model}")
    the_plan = plan(model, options)

    # Build in a sibling temp folder, then rename: an interrupted or failed run leaves no partial output.
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        report = _build(the_plan, options, tmp, progress)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _build(p: Plan, options: PackOptions, tmp: Path, progress: Progress) -> Report:
    work = tmp / ".work"
    work.mkdir()
    progress.stage(f"Running the source model on {len(p.dataset.texts)} samples (PyTorch fp32)")
    reference = p.task.reference(p.dataset.texts, p.sequence_length)
    timing_inputs = p.task.latency_inputs(p.dataset.texts, p.sequence_length)

    results: list[ArtifactResult] = []
    manifest_artifacts: list[dict] = []
    for target_cls in p.targets:
        target = target_cls(work)
        progress.stage(f"Exporting to {target_cls.name} with optimum")
        exported = target.export(p.source, p.task, options.opset)
        _copy_tokenizer(exported, tmp / "tokenizer")
        (tmp / target_cls.name).mkdir()
        for precision in p.precisions:
            result = ArtifactResult(target_cls.name, precision, f"{target_cls.name}/model-{precision}{target_cls.suffix}")
            results.append(result)
            io = _check_artifact(p, options, target, exported, result, tmp, reference, timing_inputs, progress)
            if io is not None:
                manifest_artifacts.append({"target": target_cls.name, "precision": precision, "path": result.path,
                                           "runtime": target_cls.runtime, **io,
                                           "output_meaning": p.task.describe_output()})
    shutil.rmtree(work)

    report = Report(
        model=p.source.model_id, revision=p.source.revision, task=p.task.name, license=p.source.license,
        artifacts=results, recipe=p.recipe.name if p.recipe else None, sequence_length=p.sequence_length,
        data={"origin": p.dataset.origin, "samples": len(p.dataset.texts), "labels": p.dataset.labels is not None,
              "text_column": p.dataset.text_column, "label_column": p.dataset.label_column},
        devices=[d.name for d in p.profiles], gates=p.gates.model_dump(),
        host={"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": p.threads, "runs": options.runs,
              "warmup": options.warmup},
        notes=[f"source: {p.source.origin} ({p.source.path.name if p.source.origin == 'local' else p.source.revision})"],
        edgepack_version=__version__)
    (tmp / "report.json").write_text(report.to_json())
    (tmp / "report.md").write_text(to_markdown(report))
    write_manifest(tmp, p.source, p.task.name, manifest_artifacts,
                   {"sequence_length": p.sequence_length, "tokenizer": "tokenizer/", "passed": report.passed})
    return report


def _check_artifact(p: Plan, options: PackOptions, target, exported: Path, result: ArtifactResult, tmp: Path,
                    reference, timing_inputs: dict, progress: Progress) -> dict | None:
    """Build one artifact and run every check on the file itself; returns its inputs/outputs, or None if it failed
    (then it is reported, not shipped, and the other artifacts go on)."""
    from .bench import accuracy, latency

    path, label = tmp / result.path, f"{result.target}/{result.precision}"
    progress.stage(f"{label}: building")
    try:
        result.settings = target.build(result.precision, exported, path)
        result.checks.append(Check("format check", True, target.check(path)))
        with progress.bar(len(p.dataset.texts), f"{label}: accuracy") as step:
            outputs = accuracy.artifact_outputs(path, p.task, p.dataset.texts, p.sequence_length, p.threads, step)
    except EdgepackError:
        raise
    except Exception as exc:  # noqa: BLE001 - any toolchain failure becomes a failed check, in one line
        path.unlink(missing_ok=True)
        result.path = None
        result.checks.append(Check("build and run", False, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        return None
    acc = p.task.compare(reference, outputs, p.dataset.labels)
    result.accuracy = {"metric": acc.metric, "value": acc.value, "drop": acc.drop, "details": acc.details}

    progress.stage(f"{label}: timing ({options.runs} runs, {p.threads} threads)")
    host = latency.measure(path, timing_inputs, p.threads, options.warmup, options.runs)
    result.latency_ms["host"] = {k: host[k] for k in ("p50", "p90", "threads", "runs", "warmup")}
    result.memory_mb = host["memory_mb"]
    result.sha256, result.size_bytes = sha256(path), path.stat().st_size
    size_mb = result.size_bytes / 1e6
    result.checks += gate_checks(p.gates, acc.drop, host["p50"], size_mb, host["memory_mb"])

    io = target.inputs_outputs(path)
    if p.profiles:
        names = {i["name"] for i in io["inputs"]}
        costs = devices_mod.count_onnx_costs(path, {k: v for k, v in timing_inputs.items() if k in names})
    for profile in p.profiles:
        est = devices_mod.estimate_latency(costs, profile)
        fit = devices_mod.fits(profile, result.size_bytes, int(host["peak_rss_mb"] * 1e6))
        checks = device_checks(profile.name, est.estimate_ms, size_mb, host["memory_mb"], profile.budgets, fit)
        result.checks += checks
        result.latency_ms["devices"][profile.name] = {
            "estimate": est.estimate_ms, "low": est.low_ms, "high": est.high_ms, "threads": est.threads,
            "budget": profile.budgets.max_latency_ms, "passed": all(c.passed for c in checks),
            "by_class": est.by_class, "note": est.note}
    return io


def _copy_tokenizer(exported: Path, dest: Path) -> None:
    from .targets.onnx import TOKENIZER_FILES

    if dest.exists():
        return
    dest.mkdir()
    for name in TOKENIZER_FILES:
        if (exported / name).is_file():
            shutil.copyfile(exported / name, dest / name)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---- inspect ------------------------------------------------------------------------------------------------------

_BYTES_PER_PRECISION = {"fp32": 4.0, "fp16": 2.0, "int8-dynamic": 1.0}


def _count_parameters(folder: Path, weights: list[str]) -> int | None:
    """From the safetensors headers alone: no weights are loaded, no pickle is touched."""
    import json
    import struct

    total = 0
    for name in weights:
        if not name.endswith(".safetensors"):
            return None
        with open(folder / name, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for key, tensor in header.items():
            if key != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
    return total


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

    source = resolve(model, revision, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    task_name = task or detect_task(source)
    TASKS.get(task_name)
    params = _count_parameters(source.path, source.weights)
    targets = {name: list(TARGETS.get(name).precisions) for name in TARGETS.names()}
    fit = {}
    for name in devices if devices is not None else devices_mod.list_profiles():
        profile = devices_mod.load_profile(name)
        fit[name] = {precision: devices_mod.fits(profile, int(params * per), None) if params else None
                     for precision, per in _BYTES_PER_PRECISION.items()}
    return {"model": source.model_id, "revision": source.revision, "origin": source.origin, "task": task_name,
            "architectures": source.config.get("architectures"), "model_type": source.config.get("model_type"),
            "parameters": params, "size_class": _size_class(params), "license": source.license,
            "commercial_use": commercial_use(source.license), "weights": source.weights, "targets": targets,
            "devices": fit}
