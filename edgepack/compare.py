"""`compare`: which candidate model to ship on a device. Each candidate is packed as `pack` does (same harness, into
--out/<candidate>/), then ranked on what a user chooses by: the task metric against the labels of the user's data,
each device's latency estimate, size, memory, parameters and license. The Pareto front (metric vs device latency)
is marked per device, and per device the fastest artifact meeting the limits is recommended, or the closest miss
is named. Every input is checked before the first export.

A candidate is a model id or folder, `MODEL@distill:layers=3[,steps=..,minutes=..]` (the 3-layer student that
`pack --distill` builds; only the student's artifacts are ranked), or a folder that `pack` wrote (its report.json is
reused: nothing is rebuilt). With `--metric fidelity` (data without labels) the first candidate's source model
labels the data and every candidate is ranked by agreement with it (compare_reference.py).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .config import DataSpec
from .errors import UsageError
from .licenses import commercial_use
from .plan import PackOptions, plan
from .progress import Progress

DISTILL = "@distill:"
METRICS = ("labels", "fidelity")
LABELS_NEEDED = "compare needs labels, or pass --metric fidelity"


@dataclass
class CompareOptions:
    candidates: list[str]
    out: Path
    devices: list[str]
    data: DataSpec | None = None  # None: each model's default recipe data
    targets: list[str] | None = None
    precisions: list[str] | None = None
    min_accuracy: float | None = None  # on the ranking metric (on the labels, or agreement with the reference)
    max_latency_ms: float | None = None  # on each device's estimate; None: each device profile's own budget
    commercial: bool = False  # drop candidates whose license does not allow commercial use
    metric: str = "labels"
    text_column: str | None = None
    label_column: str | None = None
    data_encoding: str | None = None
    limit: int | None = None
    runs: int = 100
    warmup: int = 10
    force: bool = False
    cache: Path | None = None  # the artifact cache `matrix` uses; None: $EDGEPACK_CACHE, else ~/.cache/edgepack


@dataclass
class Candidate:
    spec: str  # as given
    name: str  # its folder under --out
    model: str
    distill: str | None = None
    packed: Path | None = None  # a folder `pack` wrote: its report is reused
    parameters: int | None = None  # the source model's, from its safetensors headers


@dataclass
class Row:
    """One artifact of one candidate, with what compare ranks it by."""

    candidate: str
    model: str
    artifact: str  # target/precision
    path: str | None
    metric: float | None
    macro_f1: float | None
    fidelity: float | None
    size_mb: float | None
    memory_mb: float | None
    parameters: int | None
    license: str | None
    commercial_use: str
    devices: dict = field(default_factory=dict)  # name -> {estimate, low, high, limit, meets, pareto}
    checks_passed: bool = True  # pack's own checks (fidelity gates, budgets)
    meets_accuracy: bool | None = None


def parse_candidate(spec: str) -> Candidate:
    model, _, distill = spec.partition(DISTILL)
    if not model:
        raise UsageError(f"candidate {spec!r} names no model", "write MODEL or MODEL@distill:layers=N")
    if distill:
        from .compress.distill import parse_spec

        parse_spec(distill)
    elif DISTILL.rstrip(":") in spec:
        raise UsageError(f"candidate {spec!r}: expected MODEL@distill:layers=N", "e.g. MODEL@distill:layers=3")
    folder = Path(model)
    packed = folder if (folder / "report.json").is_file() and (folder / "manifest.json").is_file() else None
    base = folder.name if folder.exists() else model.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base + (f"-distill-{distill}" if distill else "")).strip("-.") or "model"
    return Candidate(spec, name, model, distill or None, packed)


def _key(c: Candidate) -> tuple:
    folder = Path(c.model)
    model = str(folder.resolve()) if folder.exists() else c.model
    from .compress.distill import parse_spec

    return model, parse_spec(c.distill) if c.distill else None


def check_candidates(specs: list[str]) -> list[Candidate]:
    if len(specs) < 2:
        raise UsageError("compare needs at least two candidates", "name two or more models")
    candidates = [parse_candidate(s) for s in specs]
    seen: dict = {}
    for c in candidates:
        key = _key(c)
        if key in seen:
            raise UsageError(f"duplicate candidate: {c.spec!r} is the same as {seen[key].spec!r}",
                             "name each candidate once")
        seen[key] = c
    names: dict[str, int] = {}
    for c in candidates:  # two models with one basename get -2, -3 folders
        names[c.name] = names.get(c.name, 0) + 1
        if names[c.name] > 1:
            c.name = f"{c.name}-{names[c.name]}"
    return candidates


def _pack_options(options: CompareOptions, c: Candidate, out: Path) -> PackOptions:
    return PackOptions(out=out, devices=options.devices, targets=options.targets, precisions=options.precisions,
                       data=options.data, text_column=options.text_column, label_column=options.label_column,
                       data_encoding=options.data_encoding, limit=options.limit, runs=options.runs,
                       warmup=options.warmup, distill=c.distill)


def _label_set(task_name: str, source_config: dict, data_labels: list[str] | None) -> tuple | None:
    """What the candidate predicts: class names for a classifier; for embeddings, the data's labels (the probe)."""
    if task_name.endswith("classification"):
        names = (source_config.get("id2label") or {}).values()
        return tuple(sorted(str(n).lower() for n in names))
    return tuple(sorted(set(data_labels or [])))


def _validate(options: CompareOptions, candidates: list[Candidate]) -> dict:
    """Every check before any export: one task, one label set, labels in the data; per candidate its task and the
    plan pack would follow (a bad model, device, target or data file fails here)."""
    if options.metric not in METRICS:
        raise UsageError(f"unknown --metric {options.metric!r}", f"choose one of: {', '.join(METRICS)}")
    if not options.devices:
        raise UsageError("compare needs a device", "pass --device NAME (edgepack devices lists them)")
    from .estimate.host import load_profile
    from .plan import _check_out

    for device in options.devices:  # a typo in --device is named as such, not as a candidate's problem
        load_profile(device)
    _check_out(Path(options.out), options.force)
    found = {}
    for c in candidates:
        try:
            if c.packed:
                report = json.loads((c.packed / "report.json").read_text())
                missing = [d for d in options.devices if d not in report.get("devices", [])]
                if missing:
                    raise UsageError(f"its report has no estimate for device {missing[0]!r}",
                                     "pack it again with that --device, or pass the model instead")
                if options.data and report.get("data", {}).get("origin") != _origin(options.data):
                    raise UsageError(f"it was evaluated on {report.get('data', {}).get('origin')!r}, not on "
                                     f"{options.data.path!r}", "pack it again on this --data, or pass the model")
                labelled = report.get("data", {}).get("labels")
                labels = _packed_labels(report)
                found[c.name] = (report["task"], labels, labelled)
            else:
                p = plan(c.model, _pack_options(options, c, Path(options.out) / ".check" / c.name))
                labels = p.dataset.labels
                from .source import count_parameters

                c.parameters = count_parameters(p.source)
                if options.metric == "labels" and labels is not None and p.task.name.endswith("classification") and \
                        p.task.label_ids(labels) is None:
                    raise UsageError(f"the data's labels ({', '.join(sorted(set(labels))[:6])}) are not the "
                                     f"model's classes ({', '.join(_label_set(p.task.name, p.source.config, None))})",
                                     "pass data labelled with the model's class names")
                found[c.name] = (p.task.name, _label_set(p.task.name, p.source.config, labels), labels is not None)
            if options.metric == "fidelity" and (c.packed or p.task.name.startswith("image")):
                raise UsageError("--metric fidelity re-scores each candidate against the reference model's labels of "
                                 "text data; " + ("a pack folder was scored on its own" if c.packed else
                                                  "image data is not supported"),
                                 "pass the model itself" if c.packed else "pass --data with labels")
        except UsageError as exc:
            raise UsageError(f"candidate {c.spec!r}: {exc.message}", exc.hint) from None
    tasks = {name: task for name, (task, _, _) in found.items()}
    if len(set(tasks.values())) > 1:
        listed = ", ".join(f"{n} is {t}" for n, t in tasks.items())
        raise UsageError(f"candidates of different tasks: {listed}", "compare candidates of one task")
    # A reused embedder's probe labels are the data's (its data origin was checked above): nothing to compare.
    label_sets = {name: labels for name, (_, labels, _) in found.items() if labels != ()}
    if len(set(label_sets.values())) > 1:
        listed = "; ".join(f"{n}: {', '.join(ls or ()) or 'none'}" for n, ls in label_sets.items())
        raise UsageError(f"candidates with different label sets: {listed}", "compare models of one label set")
    if options.metric == "labels" and not all(labelled for _, _, labelled in found.values()):
        raise UsageError(LABELS_NEEDED, "to rank by agreement with the first candidate's source model; or pass "
                         "--data with a label column (--label-column NAME)")
    reference = candidates[0].model if options.metric == "fidelity" else None
    return {"task": next(iter(tasks.values())), "labels": list(next(iter(label_sets.values()), ())),
            "reference": reference}


def _origin(spec: DataSpec) -> str:
    """The data's origin as pack's report records it."""
    from .data import locate

    return f"{spec.package}:{spec.path}" if spec.package else str(locate(spec))


def _packed_labels(report: dict) -> tuple:
    """A reused pack folder's label set: its classifier's classes, read from the per-class agreement it reported."""
    for a in report.get("artifacts", []):
        details = (a.get("accuracy") or {}).get("details", {})
        if report["task"].endswith("classification") and details.get("agreement_by_class"):
            return tuple(sorted(str(k).lower() for k in details["agreement_by_class"]))
    return ()  # an embedder's probe labels are not in its report; the data check above covers them


class _Prefixed(Progress):
    def __init__(self, inner: Progress, prefix: str):
        self.inner, self.prefix = inner, prefix

    def stage(self, text: str) -> None:
        self.inner.stage(f"[{self.prefix}] {text}")

    def bar(self, total: int, desc: str):
        return self.inner.bar(total, f"[{self.prefix}] {desc}")


def compare(options: CompareOptions, progress: Progress | None = None) -> dict:
    """Pack every candidate, rank the artifacts, and write compare.json / .md / .html to options.out. Returns the
    result as compare.json holds it."""
    progress = progress or Progress()
    candidates = check_candidates(options.candidates)
    progress.stage(f"Checking {len(candidates)} candidates before any export")
    facts = _validate(options, candidates)
    out = Path(options.out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        packing = _with_reference_labels(options, candidates[0], tmp, progress, facts) \
            if options.metric == "fidelity" else options
        rows, dropped = [], []
        for c in candidates:
            report = _pack_or_reuse(packing, c, tmp, progress)
            for row in rows_of(report, c):
                if options.commercial and row.commercial_use != "yes":
                    dropped.append(f"{row.candidate} {row.artifact}: license {row.license} "
                                   f"(commercial use: {row.commercial_use})")
                else:
                    rows.append(row)
        result = rank(rows, options, facts, candidates, dropped)
        from .compare_report import write_all

        write_all(result, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _with_reference_labels(options: CompareOptions, first: Candidate, tmp: Path, progress: Progress,
                           facts: dict) -> CompareOptions:
    """The options each candidate is packed with under --metric fidelity: the same texts, labelled by the reference
    (`first`'s source model; a distilled candidate's teacher)."""
    from .compare_reference import LABELS_FILE, reference_labels, write_labelled

    reference = replace(first, distill=None)
    p = plan(reference.model, _pack_options(options, reference, tmp / ".reference"))
    labels = reference_labels(p, progress)
    facts["labels"] = sorted(set(labels)) if facts["task"] == "feature-extraction" else facts["labels"]
    facts["reference_labels"] = LABELS_FILE
    return replace(options, data=write_labelled(p.dataset.texts, labels, tmp), text_column=None, label_column=None,
                   data_encoding=None, limit=None)


def _pack_or_reuse(options: CompareOptions, c: Candidate, tmp: Path, progress: Progress) -> dict:
    if c.packed:
        progress.stage(f"{c.name}: reusing the pack report in {c.packed}")
        return json.loads((c.packed / "report.json").read_text())
    from .api import pack

    prefixed = _Prefixed(progress, c.name)
    if c.distill is not None:  # a student is trained anew: not an artifact the cache holds
        return pack(c.model, _pack_options(options, c, tmp / c.name), prefixed).to_dict()
    from .matrix.cache import Cache
    from .matrix.run import cached_pack

    p = plan(c.model, _pack_options(options, c, tmp / c.name))
    cache = Cache(options.cache)
    report, _, reused = cached_pack(p, c.name, tmp / c.name, cache, tmp / ".staging", progress=prefixed)
    shutil.rmtree(tmp / ".staging", ignore_errors=True)
    if reused:
        prefixed.stage(f"{reused} artifact(s) from the artifact cache ({cache.base})")
    return report.to_dict()


def metric_name(task: str, reference: str | None) -> str:
    if reference:
        return f"agreement with {reference.rstrip('/').rsplit('/', 1)[-1]}"
    return "probe accuracy" if task == "feature-extraction" else "accuracy"


def rows_of(report: dict, c: Candidate) -> list[Row]:
    """The candidate's artifacts as rows: a distilled candidate's are the student's only."""
    distill = report.get("distillation") or {}
    rows = []
    for a in report["artifacts"]:
        if (a.get("role") == "student") != bool(c.distill or (c.packed and distill)):
            continue
        acc = a.get("accuracy") or {}
        details = acc.get("details", {})
        on_labels = details.get("probe_accuracy_artifact", details.get("accuracy_artifact"))
        params = distill.get("student_parameters") if a.get("role") == "student" else c.parameters
        rows.append(Row(
            candidate=c.name, model=report["model"] + (f" (student, {distill.get('student_layers')} layers)"
                                                       if a.get("role") == "student" else ""),
            artifact=f"{a['target']}/{a['precision']}", path=f"{c.name}/{a['path']}" if a.get("path") else None,
            metric=on_labels, macro_f1=details.get("macro_f1_artifact"),
            fidelity=acc.get("value"), size_mb=a["size_bytes"] / 1e6 if a.get("size_bytes") else None,
            memory_mb=a.get("memory_mb"), parameters=params, license=report.get("license"),
            commercial_use=commercial_use(report.get("license")), checks_passed=bool(a.get("passed")),
            devices={d: {"estimate": e.get("estimate"), "low": e.get("low"), "high": e.get("high"),
                         "budget": e.get("budget")} for d, e in a["latency_ms"]["devices"].items()}))
    return rows


def rank(rows: list[Row], options: CompareOptions, facts: dict, candidates: list[Candidate],
         dropped: list[str]) -> dict:
    """Limits, the Pareto front and the recommendation, per device."""
    for row in rows:
        row.meets_accuracy = None if row.metric is None else (options.min_accuracy is None or
                                                              row.metric >= options.min_accuracy)
    devices = {}
    for device in options.devices:
        scored = [r for r in rows if r.metric is not None and r.devices.get(device, {}).get("estimate") is not None]
        for r in rows:
            d = r.devices.setdefault(device, {"estimate": None})
            d["limit"] = options.max_latency_ms if options.max_latency_ms is not None else d.get("budget")
            d["meets"] = (r in scored and r.meets_accuracy and (d["limit"] is None or d["estimate"] <= d["limit"]))
            d["pareto"] = r in scored and not any(
                o.metric >= r.metric and o.devices[device]["estimate"] <= d["estimate"] and
                (o.metric > r.metric or o.devices[device]["estimate"] < d["estimate"]) for o in scored)
        eligible = sorted((r for r in scored if r.devices[device]["meets"]),
                          key=lambda r: (r.devices[device]["estimate"], r.size_mb or 0, -r.metric))
        best = eligible[0] if eligible else None
        devices[device] = {
            "limit_ms": scored[0].devices[device]["limit"] if scored else options.max_latency_ms,
            "recommended": {"candidate": best.candidate, "artifact": best.artifact, "path": best.path}
            if best else None,
            "verdict": _verdict(device, best, scored, options.min_accuracy),
            "pareto": [f"{r.candidate} {r.artifact}" for r in scored if r.devices[device]["pareto"]]}
    return {"task": facts["task"], "metric": metric_name(facts["task"], facts.get("reference")),
            "labels": facts["labels"], "reference": facts.get("reference"), "devices": devices,
            "limits": {"min_accuracy": options.min_accuracy, "max_latency_ms": options.max_latency_ms,
                       "commercial": options.commercial},
            "data": {"path": options.data.path if options.data else None, "limit": options.limit,
                     "reference_labels": facts.get("reference_labels")},
            "candidates": [{"spec": c.spec, "name": c.name, "folder": f"{c.name}/" if not c.packed
                            else str(c.packed)} for c in candidates],
            "dropped": dropped, "rows": [asdict(r) for r in rows],
            "passed": all(d["recommended"] for d in devices.values())}


def _verdict(device: str, best: Row | None, scored: list[Row], min_accuracy: float | None) -> str:
    if best:
        d = best.devices[device]
        return (f"{device}: {best.candidate} {best.artifact}, {d['estimate']:.1f} ms (range {d['low']:.0f}-"
                f"{d['high']:.0f}), metric {best.metric:.4f}, {best.size_mb:.1f} MB")
    if not scored:
        return f"{device}: no candidate has both a metric and a latency estimate"

    def misses(r: Row) -> list[tuple[float, str]]:  # (relative shortfall, what)
        out, d = [], r.devices[device]
        if min_accuracy is not None and r.metric < min_accuracy:
            out.append(((min_accuracy - r.metric) / min_accuracy,
                        f"min accuracy by {min_accuracy - r.metric:.4f} ({r.metric:.4f} vs {min_accuracy:g})"))
        if d["limit"] is not None and d["estimate"] > d["limit"]:
            out.append(((d["estimate"] - d["limit"]) / d["limit"],
                        f"the latency limit by {d['estimate'] - d['limit']:.1f} ms ({d['estimate']:.1f} vs "
                        f"{d['limit']:g} ms)"))
        return out

    closest = min(scored, key=lambda r: sum(m for m, _ in misses(r)))
    return (f"{device}: no candidate meets the limits; closest is {closest.candidate} {closest.artifact}, which "
            f"misses {' and '.join(w for _, w in misses(closest))}")
