"""`edgepack matrix FILE`: every (model, target, precision) exported and host-measured once, through the cache, then
estimated and gated on every device. A job is one model (the file's order), so CI runners can split the matrix.

Steps: plan every model first (a bad model, device or data file is exit 2 before any export); per model, look up
each artifact's cache key; `pack` only the misses (one run per target, its missing precisions) and store what it
built; assemble the model's pack folder from the cache with gates and device estimates computed afresh; one row per
(model, target, precision, device) cell.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from .. import data as data_mod
from ..api import apply_gates, building, make_report, pack, write_folder
from ..bench import latency
from ..bench.latency import cpu_name
from ..config import DataSpec
from ..errors import UsageError
from ..gates import Check
from ..manifest import sha256
from ..plan import PackOptions, Plan, plan
from ..progress import Progress
from ..report import ArtifactResult, HostLatency, Latency, Report
from ..tasks.base import Accuracy
from ..version import __version__
from . import baseline as baseline_mod, outputs
from .cache import Cache, key_of
from .spec import MatrixModel, MatrixSpec, resolve_path


@dataclass
class Job:
    index: int
    model: MatrixModel
    plan: Plan

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.model.label)


def _options(spec: MatrixSpec, model: MatrixModel, folder: Path, out: Path) -> PackOptions:
    data = model.data
    if isinstance(data, str):
        data = DataSpec(path=resolve_path(data, folder))
    elif data is not None and data.package is None:
        data = data.model_copy(update={"path": resolve_path(data.path, folder)})
    recipe = model.recipe
    if recipe and recipe.endswith((".yaml", ".yml")):
        recipe = resolve_path(recipe, folder)
    return PackOptions(out=out, devices=list(spec.devices), recipe=recipe, task=model.task, revision=model.revision,
                       targets=list(spec.targets), precisions=list(spec.precisions), data=data, limit=model.limit,
                       sequence_length=model.sequence_length, gates=spec.gates.merged(model.gates),
                       threads=spec.threads, warmup=spec.warmup, runs=spec.runs)


def jobs(spec: MatrixSpec, folder: Path, staging: Path) -> list[Job]:
    """Every model planned (resolved, data loaded, devices and targets checked) before anything is exported."""
    found = []
    for index, model in enumerate(spec.models):
        options = _options(spec, model, folder, staging / f"plan-{index}")
        try:
            found.append(Job(index, model, plan(resolve_path(model.id, folder), options)))
        except UsageError as exc:  # the same error (and exit code), saying which model of the file it is about
            exc.message = f"matrix model {model.label!r}: {exc.message}"
            raise
    return found


def _key_inputs(p: Plan, target: str, precision: str) -> dict:
    """Everything that changes the file or what was measured on it (gates and devices do not: they are re-applied)."""
    source = p.source
    identity = f"folder:{sha256(source.path)}" if source.origin == "local" else source.revision  # a folder's files
    data_spec = p.options.data or p.recipe.data
    return {"model": source.model_id, "source": identity, "task": p.task.name, "target": target,
            "precision": precision, "sequence_length": p.sequence_length,
            "buckets": list(p.recipe.sequence_buckets) if p.recipe else [], "opset": p.options.opset,
            "data": sha256(data_mod.locate(data_spec)), "data_spec": data_spec.model_dump(),
            "limit": p.options.limit, "threads": p.threads, "runs": p.options.runs, "warmup": p.options.warmup,
            "cpu": cpu_name(), "edgepack": __version__}


def _result(raw: dict) -> ArtifactResult:
    """An ArtifactResult back from report.json, without its gates (they are applied again)."""
    host, acc = raw["latency_ms"]["host"], raw["accuracy"]
    return ArtifactResult(
        target=raw["target"], precision=raw["precision"], path=raw["path"], sha256=raw["sha256"],
        size_bytes=raw["size_bytes"], accuracy=Accuracy(**acc) if acc else None,
        latency_ms=Latency(host=HostLatency(**{**host, "estimate": None}) if host else None),
        memory_mb=raw["memory_mb"], settings=raw["settings"], deployment=raw["deployment"], not_run=raw["not_run"],
        checks=[Check(c["name"], c["passed"], c["detail"]) for c in raw["checks"] if "kind" not in c],
        notes=list(raw["notes"]), role=raw["role"])


def _build_missing(job: Job, keys: dict, cache: Cache, staging: Path, progress: Progress) -> tuple[int, dict]:
    """Look every artifact up, and `pack` the (target, precision) pairs the cache lacks, one run per target, storing
    each one built. Returns how many were built, and per key its (entry, file): file None for an artifact whose build
    failed (not cached: the next run tries it again)."""
    p, built = job.plan, 0
    found = {key: cache.get(key) for key in keys.values()}  # each file's sha256 verified once per run
    for target in p.targets:
        missing = [x for x in p.precisions[target.name] if found[keys[target.name, x]] is None]
        if not missing:
            continue
        progress.stage(f"{job.model.label}: building {target.name} {', '.join(missing)} (not in the cache)")
        out = staging / f"{job.slug}-{target.name}"
        report = pack(str(p.source.path) if p.source.origin == "local" else p.source.model_id,
                      replace(p.options, out=out, targets=[target.name], precisions=missing), progress)
        manifest = json.loads((out / "manifest.json").read_text())
        lines = {a["path"]: a for a in manifest["artifacts"]}
        for raw in report.to_dict()["artifacts"]:
            key = keys[target.name, raw["precision"]]
            entry = {"inputs": _key_inputs(p, target.name, raw["precision"]), "result": raw,
                     "manifest": lines.get(raw["path"]), "notes": report.notes[1:],
                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            found[key] = (entry, None) if raw["path"] is None else cache.put(key, entry, out / raw["path"])
            built += 1
        shutil.rmtree(out, ignore_errors=True)
    return built, found


def _assemble(job: Job, keys: dict, found: dict, folder: Path, remeasure: bool, progress: Progress) -> Report:
    """The model's pack folder from the cache; gates and device estimates computed now, latency re-timed if asked."""
    p = job.plan
    folder.mkdir()
    (folder / "tokenizer").mkdir()
    p.task.save_preprocessor(folder / "tokenizer")
    timing_inputs = p.task.latency_inputs(p.dataset.texts, p.sequence_length)
    results, lines, notes = [], [], []
    for target in p.targets:
        for precision in p.precisions[target.name]:
            entry, file = found[keys[target.name, precision]]
            result = _result(entry["result"])
            results.append(result)
            notes += entry["notes"]
            if file is None:  # its export or a check failed: reported as it failed
                continue
            path = folder / result.path
            path.parent.mkdir(parents=True, exist_ok=True)
            if file.is_dir():
                shutil.copytree(file, path)
            else:
                shutil.copy2(file, path)
            lines.append(entry["manifest"])
            host = None
            if result.latency_ms.host is not None:
                if remeasure:
                    progress.stage(f"{job.model.label}: {result.label}: timing again (--remeasure)")
                    m = latency.measure(path, timing_inputs, p.threads, p.options.warmup, p.options.runs)
                    result.latency_ms.host = HostLatency(**{k: m[k] for k in ("p50", "p90", "threads", "runs",
                                                                              "warmup")}, histogram=m.get("histogram"))
                    result.memory_mb = m["memory_mb"]
                else:
                    result.notes.append(f"from the artifact cache: built and timed {entry['created']}")
                host = {"p50": result.latency_ms.host.p50, "threads": result.latency_ms.host.threads,
                        "memory_mb": result.memory_mb}
            apply_gates(p, result, path, entry["manifest"], timing_inputs, host)
            result.notes = list(dict.fromkeys(result.notes))  # the cached notes and the ones just added again
    if remeasure:
        from ..bench.relative import compare_with_fp32

        notes += compare_with_fp32(results)
    report = make_report(p, results, list(dict.fromkeys(notes)))
    write_folder(p, folder, report, lines)
    return report


def cells(job: Job, report: Report) -> list[dict]:
    """One row per (artifact, device): the figures and the verdict and margin of each gate that applies to it."""
    from ..report import check_dict

    devices = report.devices
    rows = []
    for a in report.artifacts:
        host = a.latency_ms.host
        for device in devices:
            others = [f"{d}: " for d in devices if d != device]
            checks = [c for c in a.checks if not c.name.startswith(tuple(others))]
            est = a.latency_ms.devices.get(device)
            rows.append({
                "job": job.index, "model": job.model.label, "model_id": report.model, "revision": report.revision,
                "task": report.task, "target": a.target, "precision": a.precision, "device": device,
                "path": f"{job.slug}/{a.path}" if a.path else None, "sha256": a.sha256,
                "size_mb": a.size_bytes / 1e6 if a.size_bytes else None, "memory_mb": a.memory_mb,
                "accuracy": {"metric": a.accuracy.metric, "value": a.accuracy.value, "drop": a.accuracy.drop}
                if a.accuracy else None,
                "host_p50_ms": host.p50 if host else None, "host_p90_ms": host.p90 if host else None,
                "estimate_ms": est.estimate if est else None, "estimate_low_ms": est.low if est else None,
                "estimate_high_ms": est.high if est else None, "not_run": a.not_run,
                "checks": [check_dict(c) for c in checks]})
    return rows


def run(spec: MatrixSpec, spec_hash: str, spec_file: Path, out: Path, job_index: int | None = None,
        remeasure: bool = False, baseline: Path | None = None, cache: Cache | None = None, force: bool = False,
        progress: Progress | None = None) -> dict:
    """Run the matrix (or its job `job_index`) into `out`; returns matrix.json's content."""
    progress = progress or Progress()
    cache = cache or Cache()
    folder = Path(spec_file).parent
    if job_index is not None and not 0 <= job_index < len(spec.models):
        raise UsageError(f"--job {job_index}: the matrix has jobs 0 to {len(spec.models) - 1}",
                         "list them with --jobs github")
    baseline_path = baseline or (Path(resolve_path(spec.baseline, folder)) if spec.baseline else None)
    base_rows = baseline_mod.load(baseline_path) if baseline_path else None
    out = Path(out)
    if out.exists() and not force:
        raise UsageError(f"output folder {str(out)!r} already exists", "pass --force to replace it, or choose --out")
    staging = cache.base.parent / f"staging-{uuid.uuid4().hex[:8]}"  # per run: parallel jobs may share a cache
    all_jobs = jobs(spec, folder, staging)
    chosen = [j for j in all_jobs if job_index is None or j.index == job_index]
    rows, built, reused = [], 0, 0
    with building(out) as tmp:
        for job in chosen:
            p = job.plan
            keys = {(t.name, x): key_of(_key_inputs(p, t.name, x)) for t in p.targets for x in p.precisions[t.name]}
            count, found = _build_missing(job, keys, cache, staging, progress)
            built, reused = built + count, reused + len(keys) - count
            progress.stage(f"{job.model.label}: estimating and gating on {len(p.profiles)} device(s)")
            report = _assemble(job, keys, found, tmp / job.slug, remeasure, progress)
            rows += cells(job, report)
        if base_rows is not None:
            baseline_mod.apply(rows, base_rows, spec.tolerances)
        matrix = outputs.matrix_json(spec, spec_hash, spec_file, rows, all_jobs_count=len(spec.models),
                                     job=job_index, baseline=baseline_path,
                                     cache={"built": built, "reused": reused, "discarded": cache.discarded})
        outputs.write(matrix, tmp)
    shutil.rmtree(staging, ignore_errors=True)
    return matrix


def job_list(spec: MatrixSpec, spec_file: Path, ci: str) -> str:
    """The job list for a CI's own matrix: GitHub's `strategy.matrix` JSON, or a GitLab child pipeline."""
    entries = [{"job": i, "model": m.label} for i, m in enumerate(spec.models)]
    if ci == "github":
        return json.dumps({"include": entries})
    lines = ["# A GitLab child pipeline (written by `edgepack matrix --jobs gitlab`): one job per matrix job, then the",
             "# merge, whose junit.xml GitLab shows on the merge request.", ".edgepack-job:", "  image: python:3.11",
             "  variables: {EDGEPACK_CACHE: $CI_PROJECT_DIR/.edgepack-cache}",
             "  cache: {key: edgepack-artifacts, paths: [.edgepack-cache]}",
             "  before_script: [\"pip install ${EDGEPACK_INSTALL:-edgepack}\"]", ""]
    folders = []
    for e in entries:
        folder = f"dist/matrix-jobs/job-{e['job']}"
        folders.append(folder)
        lines += [f"edgepack-matrix-job-{e['job']}:  # {e['model']}", "  extends: .edgepack-job",
                  f"  script: [\"edgepack matrix {spec_file} --job {e['job']} --out {folder}\"]",
                  "  artifacts: {when: always, paths: [" + folder + "]}", ""]
    lines += ["edgepack-matrix-merge:", "  extends: .edgepack-job", "  when: always",
              "  needs: [" + ", ".join(f"edgepack-matrix-job-{e['job']}" for e in entries) + "]",
              f"  script: [\"edgepack matrix merge {' '.join(folders)} --out dist/matrix\",",
              "           \"cat dist/matrix/summary.md\"]",
              "  artifacts: {when: always, paths: [dist/matrix], reports: {junit: dist/matrix/junit.xml}}", ""]
    return "\n".join(lines)
