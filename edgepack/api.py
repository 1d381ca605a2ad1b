"""Library entry points (no Click, no printing): pack(), inspect(). The CLI is a thin layer over these."""

from __future__ import annotations

import platform
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from . import devices as devices_mod
from .version import __version__
from .estimate.host import load_profile
from .bench import latency
from .bench.latency import cpu_name, usable_cores
from .bench.relative import compare_with_fp32
from .errors import ExportError, UsageError, one_line
from .gates import Check, device_checks, gate_checks, unmeasured
from .manifest import remove, sha256, size_of
from .manifest import write as write_manifest
from .progress import Progress
from .estimate.count import remembered_costs, runtime_family
from .plan import PackOptions, Plan, plan
from .precisions import calibrated, known as known_precisions
from .registry import TARGETS, TASKS
from .report import ArtifactResult, DeviceLatency, HostLatency, Report, write_all
from .source import count_parameters, resolve
from .buckets import bucket_lengths, sequence_buckets
from .targets import ExportSettings


def pack(model: str, options: PackOptions, progress: Progress | None = None) -> Report:
    """Export, compress and check `model`; write artifacts, manifest and report to `options.out`."""
    progress = progress or Progress()
    progress.stage(f"Resolving {model}")
    the_plan = plan(model, options)

    with building(Path(options.out)) as tmp:
        return _build(the_plan, tmp, progress)


@contextmanager
def building(out: Path):
    """Yields a sibling temp folder that becomes `out` when the block ends without error: an interrupted or failed
    run leaves no partial output, and --force swaps the old folder out only once the new one is complete."""
    out = Path(out).absolute()
    missing = [p for p in [out.parent, *out.parent.parents] if not p.exists()]  # innermost first
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    old = out.parent / f".{out.name}.replaced-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        yield tmp
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


def _build(p: Plan, tmp: Path, progress: Progress) -> Report:
    options = p.options
    work = tmp / ".work"
    work.mkdir()
    progress.stage(f"Running the source model on {len(p.dataset.texts)} samples (PyTorch fp32)")
    reference = p.task.reference(p.dataset.texts, p.sequence_length)
    timing_inputs = p.task.latency_inputs(p.dataset.texts, p.sequence_length)
    (tmp / "tokenizer").mkdir()
    p.task.save_preprocessor(tmp / "tokenizer")

    calibration = None
    if any(calibrated(precision) for precision in p.requested_precisions):
        from .compress.corpus import training_texts

        calibration = training_texts(p)  # (samples, where they come from): not the evaluation samples
    samples, origin = calibration or ([], "")
    settings = ExportSettings(
        sequence_length=p.sequence_length, opset=options.opset,
        buckets=sequence_buckets(p.recipe.sequence_buckets if p.recipe else [], p.sequence_length),
        calibration=list(samples), calibration_origin=origin,
        weight_only=p.recipe.weight_only.model_dump() if p.recipe and p.recipe.weight_only else {})
    results: list[ArtifactResult] = []
    manifest_artifacts: list[dict] = []
    notes: list[str] = []
    models, distillation = [(None, p.task)], None
    if p.distill is not None:  # the student is packed beside the teacher, both compared with the teacher's outputs
        from .compress.distill import distill_for_pack

        student, distillation = distill_for_pack(p, work / "student-model", progress)
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
                    _check_artifact(p, target, exported, result, tmp, reference, timing_inputs, progress)
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

    report = make_report(p, results, notes, distillation)
    write_folder(p, tmp, report, manifest_artifacts)
    return report


def make_report(p: Plan, results: list[ArtifactResult], notes: list[str], distillation: dict | None = None) -> Report:
    options = p.options
    return Report(
        model=p.source.model_id, revision=p.source.revision, task=p.task.name, license=p.source.license,
        artifacts=results, recipe=p.recipe.name if p.recipe else None, sequence_length=p.sequence_length,
        data={"origin": p.dataset.origin, "samples": len(p.dataset.texts), "labels": p.dataset.labels is not None,
              "text_column": p.dataset.text_column, "label_column": p.dataset.label_column},
        devices=[d.name for d in p.profiles], gates=p.gates.model_dump(),
        host={"cpu": cpu_name(), "cores": usable_cores(), "threads": p.threads, "runs": options.runs,
              "warmup": options.warmup},
        notes=[f"source: {p.source.origin} ({p.source.path.name if p.source.origin == 'local' else p.source.revision})",
               *notes],
        edgepack_version=__version__, distillation=distillation, workload=p.workload)


def write_folder(p: Plan, folder: Path, report: Report, manifest_artifacts: list[dict]) -> None:
    """report.json/.md/.html and manifest.json (hashing every file already in `folder`)."""
    write_all(report, folder)
    write_manifest(folder, p.source, p.task.name, manifest_artifacts,
                   {"sequence_length": p.sequence_length, "tokenizer": "tokenizer/", "passed": report.passed})


def _gate_length(p: Plan, io: dict) -> int:
    """The sequence length the device latency is gated at: the evaluation data's p90 token length (what most of the
    workload needs), rounded up to the bucket a fixed-shape file would run it on; the run's maximum without text."""
    if p.workload is None:
        return p.sequence_length
    length = max(1, min(p.workload["p90"], p.sequence_length))
    buckets = bucket_lengths(io.get("signatures", {}))
    return next((b for b in buckets if b >= length), length)


class _ArtifactFailed(Exception):
    def __init__(self, stage: str):
        super().__init__(stage)
        self.stage = stage


def _check_artifact(p: Plan, target, exported, result: ArtifactResult, tmp: Path, reference, timing_inputs: dict,
                    progress: Progress) -> None:
    """Build one artifact and run every check on the file itself, filling `result`. Any failure is raised as
    _ArtifactFailed naming the stage, with the toolchain's exception as its cause."""
    from .bench import accuracy

    path, label = tmp / result.path, f"{result.target}/{result.precision}"
    stage = "build"
    try:
        progress.stage(f"{label}: building")
        if p.options.search and result.precision in target.tunable:  # the accuracy-aware search builds it
            from .search import search_static

            result.settings = search_static(p, target, exported, result.precision, path, reference, timing_inputs,
                                            progress)
        else:
            result.settings = target.build(result.precision, exported, path)
        found = target.check(path, exported)  # one detail line, or (check name, detail) pairs; failures raise
        result.checks += [Check(name, True, detail)
                          for name, detail in ([("format check", found)] if isinstance(found, str) else found)]
        result.notes += [detail.removeprefix("warning: ") for c in result.checks
                         if (detail := c.detail).startswith("warning: ")]
        result.sha256, result.size_bytes = sha256(path), size_of(path)
        result.deployment = target.deployment(result.precision, exported)

        why_not = target.runs_here()
        if why_not:  # e.g. Core ML on Linux: the checks above ran; say plainly what did not
            result.not_run = f"{why_not}; checked on {platform.system()} {platform.machine()}"
            result.notes.append(f"not run here: {why_not}; accuracy, latency and memory are not measured, so "
                                "their gates and the device budgets on them are not applied (those on size are)")
            apply_gates(p, result, path, {}, timing_inputs, None)
            return

        if getattr(p.task, "generative", False):  # text-generation: fidelity, tokens/s, LLM estimates
            from .lm_checks import check_generation

            for stage in check_generation(p, path, result, reference, timing_inputs, progress):
                pass  # each stage names itself as it starts, for the failure check below
            return

        stage = "accuracy run"
        with progress.bar(len(p.dataset.texts), f"{label}: accuracy") as step:
            outputs = accuracy.artifact_outputs(path, p.task, p.dataset.texts, p.sequence_length, p.threads, step)
        acc = p.task.compare(reference, outputs, p.dataset.labels)
        result.accuracy = acc

        stage = "latency run"
        progress.stage(f"{label}: timing ({p.options.runs} runs, {p.threads} threads)")
        host = latency.measure(path, timing_inputs, p.threads, p.options.warmup, p.options.runs)
        result.latency_ms.host = HostLatency(**{k: host[k] for k in ("p50", "p90", "threads", "runs", "warmup")},
                                             histogram=host.get("histogram"))
        result.memory_mb = host["memory_mb"]

        stage = "device estimate"
        apply_gates(p, result, path, target.inputs_outputs(path), timing_inputs, host)
    except Exception as exc:  # noqa: BLE001 - any toolchain failure fails this artifact only
        raise _ArtifactFailed(stage) from exc


def apply_gates(p: Plan, result: ArtifactResult, path: Path, io: dict, timing_inputs: dict, host: dict | None) -> None:
    """The gates and each device's estimate and budgets on a built, measured file, into `result`; `host` None for a
    file that cannot run here (only its size is gated). `matrix` re-runs this on cached artifacts."""
    size_mb = result.size_bytes / 1e6
    if host is None:
        result.checks += gate_checks(p.gates, None, None, size_mb, None)
        for profile in p.profiles:  # the file's size is known: each device's size budget and storage apply
            result.checks += device_checks(profile.name, None, size_mb, None, profile.budgets,
                                           devices_mod.fits(profile, result.size_bytes, None))
        return
    result.checks += gate_checks(p.gates, result.accuracy, host["p50"], size_mb, host["memory_mb"])
    result.notes += unmeasured(p.gates, result.accuracy)
    estimate_devices(p, path, io, timing_inputs, host, result)


def estimate_devices(p: Plan, path: Path, io: dict, timing_inputs: dict, host: dict, result: ArtifactResult) -> None:
    """Each profile's calibrated estimate of the file at `path` and its budget checks, into `result` (latency,
    checks, notes); `host` is the file's host measurement (p50, threads, memory_mb)."""
    from .estimate.host import host_check  # the host as a profile: estimate vs this very measurement
    from .estimate.predict import estimate_latency

    names = {i["name"] for i in io["inputs"]}
    gate_length = _gate_length(p, io)
    costs = at_max = None
    try:
        runtime = runtime_family(path)
        at_max = remembered_costs(path, result.sha256, {k: v for k, v in timing_inputs.items() if k in names})
        costs = at_max if gate_length == p.sequence_length else remembered_costs(
            path, result.sha256,
            {k: v for k, v in p.task.latency_inputs(p.dataset.texts, gate_length).items() if k in names})
    except NotImplementedError as exc:
        result.notes.append(f"no latency estimate: {exc}; the devices' latency budgets are not applied")
    if at_max is not None:
        result.latency_ms.host.estimate = host_check(at_max, host["p50"], host["threads"], runtime)
    size_mb = result.size_bytes / 1e6
    for profile in p.profiles:
        est = estimate_latency(costs, profile, runtime=runtime) if costs is not None else None
        fit = devices_mod.fits(profile, result.size_bytes, int(host["memory_mb"] * 1e6))
        checks = device_checks(profile.name, est.estimate_ms if est else None, size_mb, host["memory_mb"],
                               profile.budgets, fit)
        result.checks += checks
        passed, budget = all(c.passed for c in checks), profile.budgets.max_latency_ms
        result.latency_ms.devices[profile.name] = DeviceLatency(
            est.estimate_ms, budget, passed, est.low_ms, est.high_ms, est.threads, est.by_class, est.note,
            length=gate_length, at_max_length=(est.estimate_ms if costs is at_max else
                                               estimate_latency(at_max, profile, runtime=runtime).estimate_ms)) \
            if est else DeviceLatency(None, budget, passed, note="no cost model for this format")


# ---- inspect ------------------------------------------------------------------------------------------------------

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
    from .catalog import applicable_tasks, fitting_recipes
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
        fit[name] = {name_: devices_mod.fits(profile, int(params * p.weight_bytes), None) if params else None
                     for name_, p in known_precisions().items()}
    return {"model": source.model_id, "revision": source.revision, "origin": source.origin, "task": task_name,
            "architectures": source.config.get("architectures"), "model_type": source.config.get("model_type"),
            "applicable_tasks": applicable_tasks(source), "recipes": fitting_recipes(source, task_name),
            "parameters": params, "size_class": _size_class(params), "license": source.license,
            "commercial_use": commercial_use(source.license), "weights": source.weights, "targets": targets,
            "devices": fit}
