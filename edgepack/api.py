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
from .report import ArtifactResult, Report
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


def pack(model: str, options: PackOptions, progress: Progress | None = None) -> Report:
    progress = progress or Progress()
    out = Path(options.out)
    _check_out(out, options.force)

    # Validate every input before any heavy work or any write.
    progress.stage(f"Resolving {model}")
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
    target_names = options.targets or (recipe.targets if recipe else ["onnx"])
    precisions = options.precisions or (recipe.precisions if recipe else ["fp32", "fp16", "int8-dynamic"])
    targets = [TARGETS.get(t) for t in target_names]
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
    dataset = data_mod.load(spec)
    seq_len = options.sequence_length or (recipe.sequence_length if recipe else 128)
    gates = (recipe.gates if recipe else Gates()).merged(options.gates)
    threads = options.threads or min([p.default_threads for p in profiles] + [os.cpu_count() or 1])

    # Build in a sibling temp folder, then rename: an interrupted or failed run leaves no partial output.
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.mkdir()
    try:
        report = _build(source, task, recipe, targets, precisions, dataset, seq_len, gates, profiles, threads,
                        options, tmp, progress)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _build(source, task, recipe, targets, precisions, dataset, seq_len, gates, profiles, threads, options, tmp,
           progress) -> Report:
    from .bench import accuracy, latency

    work = tmp / ".work"
    work.mkdir()
    progress.stage(f"Running the source model on {len(dataset.texts)} samples (PyTorch fp32)")
    reference = task.reference(dataset.texts, seq_len)
    timing_inputs = task.latency_inputs(dataset.texts, seq_len)

    results: list[ArtifactResult] = []
    manifest_artifacts: list[dict] = []
    for target_cls in targets:
        target = target_cls(work)
        progress.stage(f"Exporting to {target_cls.name} with optimum")
        exported = target.export(source, task, options.opset)
        _copy_tokenizer(exported, tmp / "tokenizer")
        (tmp / target_cls.name).mkdir()
        for precision in precisions:
            rel = f"{target_cls.name}/model-{precision}{target_cls.suffix}"
            result = ArtifactResult(target_cls.name, precision, rel)
            results.append(result)
            progress.stage(f"{target_cls.name}/{precision}: building")
            try:
                result.settings = target.build(precision, exported, tmp / rel)
                result.checks.append(Check("format check", True, target.check(tmp / rel)))
                with progress.bar(len(dataset.texts), f"{target_cls.name}/{precision}: accuracy") as step:
                    outputs = accuracy.artifact_outputs(tmp / rel, task, dataset.texts, seq_len, threads, step)
            except EdgepackError:
                raise
            except Exception as exc:  # a failed artifact is reported, not shipped; the other artifacts go on
                (tmp / rel).unlink(missing_ok=True)
                result.path = None
                result.checks.append(Check("build and run", False, f"{type(exc).__name__}: {exc}".splitlines()[0]))
                continue
            acc = task.compare(reference, outputs, dataset.labels)
            result.accuracy = {"metric": acc.metric, "value": acc.value, "drop": acc.drop, "details": acc.details}
            progress.stage(f"{target_cls.name}/{precision}: timing ({options.runs} runs, {threads} threads)")
            host = latency.measure(tmp / rel, timing_inputs, threads, options.warmup, options.runs)
            result.latency_ms["host"] = {k: host[k] for k in ("p50", "p90", "threads", "runs", "warmup")}
            result.memory_mb = host["memory_mb"]
            result.sha256, result.size_bytes = sha256(tmp / rel), (tmp / rel).stat().st_size
            size_mb = result.size_bytes / 1e6
            result.checks += gate_checks(gates, acc.drop, host["p50"], size_mb, host["memory_mb"])
            io = target.inputs_outputs(tmp / rel)
            if profiles:
                names = {i["name"] for i in io["inputs"]}
                costs = devices_mod.count_onnx_costs(tmp / rel, {k: v for k, v in timing_inputs.items() if k in names})
            for profile in profiles:
                est = devices_mod.estimate_latency(costs, profile)
                budget = profile.budgets.max_latency_ms
                fit = devices_mod.fits(profile, result.size_bytes, int(host["peak_rss_mb"] * 1e6))
                checks = device_checks(profile.name, est.estimate_ms, size_mb, host["memory_mb"], profile.budgets, fit)
                result.checks += checks
                result.latency_ms["devices"][profile.name] = {
                    "estimate": est.estimate_ms, "low": est.low_ms, "high": est.high_ms, "threads": est.threads,
                    "budget": budget, "passed": all(c.passed for c in checks), "by_class": est.by_class,
                    "note": est.note}
            manifest_artifacts.append({"target": target_cls.name, "precision": precision, "path": rel,
                                       "runtime": target_cls.runtime, **io,
                                       "output_meaning": task.describe_output()})
    shutil.rmtree(work)

    report = Report(
        model=source.model_id, revision=source.revision, task=task.name, license=source.license, artifacts=results,
        recipe=recipe.name if recipe else None, sequence_length=seq_len,
        data={"origin": dataset.origin, "samples": len(dataset.texts), "labels": dataset.labels is not None,
              "text_column": dataset.text_column, "label_column": dataset.label_column},
        devices=[p.name for p in profiles], gates=gates.model_dump(),
        host={"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": threads, "runs": options.runs,
              "warmup": options.warmup},
        notes=[f"source: {source.origin} ({source.path.name if source.origin == 'local' else source.revision})"],
        edgepack_version=__version__)
    (tmp / "report.json").write_text(report.to_json())
    from .report import to_markdown

    (tmp / "report.md").write_text(to_markdown(report))
    write_manifest(tmp, source, task.name, manifest_artifacts,
                   {"sequence_length": seq_len, "tokenizer": "tokenizer/", "passed": report.passed})
    return report


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
