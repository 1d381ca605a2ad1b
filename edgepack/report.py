"""The report: one typed contract (report.json) that CI and later tooling read, and the table of renderers that
write it to files (`@renderer("report.md")`: a new format is one function)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable

from .compress.explain import compression_sections, search_lines
from .gates import Check
from .tasks.base import Accuracy


@dataclass
class HostLatency:
    """Batch-1 timing of the file on this host, in a fresh process, warm-up excluded (ms)."""

    p50: float
    p90: float
    threads: int
    runs: int = 0
    warmup: int = 0
    speedup_vs_fp32: float | None = None  # fp32's p50 over this p50, same target (None for fp32 itself)
    speedup_retimed: list[float] | None = None  # the alternating re-timings that confirmed a slowdown
    estimate: dict | None = None  # the host profile's estimate beside this measurement (a check on the cost model)
    histogram: dict | None = None  # the timed runs' distribution: {"edges": [ms, ...], "counts": [...]}


@dataclass
class DeviceLatency:
    """One device's calibrated estimate (ms) and its budget; estimate None when the format has no cost counter."""

    estimate: float | None
    budget: float | None
    passed: bool
    low: float | None = None
    high: float | None = None
    threads: int | None = None
    by_class: dict = field(default_factory=dict)
    note: str = ""
    length: int | None = None  # the sequence length estimated and gated: the workload's p90 (Report.workload)
    at_max_length: float | None = None  # the estimate at the run's maximum sequence length, for comparison


@dataclass
class Latency:
    host: HostLatency | None = None
    devices: dict[str, DeviceLatency] = field(default_factory=dict)


@dataclass
class ArtifactResult:
    target: str
    precision: str
    path: str | None  # relative to the output folder; None when the artifact could not be produced
    sha256: str | None = None
    size_bytes: int | None = None
    accuracy: Accuracy | None = None
    latency_ms: Latency = field(default_factory=Latency)
    memory_mb: float | None = None
    settings: dict = field(default_factory=dict)
    deployment: dict = field(default_factory=dict)  # e.g. Core ML's minimum OS versions
    not_run: str | None = None  # why the artifact could not be executed on this host (only its file was checked)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    role: str | None = None  # "teacher" or "student" when --distill packs both
    # text-generation: TTFT, decode tokens/s, memory at the maximum context, per-device estimates (lm_checks.py)
    generation: dict | None = None

    @property
    def passed(self) -> bool:
        return self.path is not None and all(c.passed for c in self.checks)

    @property
    def label(self) -> str:
        """`onnx/int8-dynamic`, or `onnx/student int8-dynamic` under --distill."""
        return f"{self.target}/{self.role + ' ' if self.role else ''}{self.precision}"


@dataclass
class Report:
    model: str
    revision: str
    task: str
    license: str | None
    artifacts: list[ArtifactResult]
    recipe: str | None = None
    sequence_length: int = 128
    data: dict = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    gates: dict = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    edgepack_version: str = ""
    distillation: dict | None = None  # the training record when --distill built a student
    workload: dict | None = None  # the evaluation data's token lengths (p50, p90, max); device latency gated at p90

    @property
    def passed(self) -> bool:
        return bool(self.artifacts) and all(a.passed for a in self.artifacts)

    def failures(self) -> list[str]:
        return [f"{a.label}: {c.name}: {c.detail}" for a in self.artifacts for c in a.checks if not c.passed]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        for artifact, raw in zip(self.artifacts, data["artifacts"]):
            raw["passed"] = artifact.passed
            raw["checks"] = [check_dict(c) for c in artifact.checks]
        head = ["model", "revision", "task", "license", "passed"]
        return {k: data[k] for k in head} | {k: v for k, v in data.items() if k not in head}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def check_dict(check: Check) -> dict:
    """A check as JSON: gates also carry their value, limit and margin (a matrix ranks by them); plain checks don't."""
    raw = {"name": check.name, "passed": check.passed, "detail": check.detail}
    if check.kind != "check":
        raw |= {"kind": check.kind, "value": check.value, "limit": check.limit, "margin": check.margin}
    return raw


def _fmt(value, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def summary_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """The headline table: one row per artifact."""
    header = ["target", "precision", "size MB", "accuracy vs source", "host p50/p90 ms", "speed-up vs fp32"]
    header += [f"{d} est. ms" for d in report.devices] + ["result"]
    rows = []
    for a in report.artifacts:
        acc = a.accuracy
        unrun = "not run here" if a.not_run else "-"
        accuracy = f"{acc.metric} {acc.value:.4f}" if acc else unrun
        host = a.latency_ms.host
        timing = f"{host.p50:.2f} / {host.p90:.2f}" if host else unrun
        speedup = host.speedup_vs_fp32 if host else None
        row = [a.target, f"{a.role} {a.precision}" if a.role else a.precision, _fmt(a.size_bytes and a.size_bytes / 1e6),
               accuracy, timing, f"{speedup:.2f}x" if speedup else "-"]
        for d in report.devices:
            est = a.latency_ms.devices.get(d)
            ok = est is not None and est.estimate is not None
            row.append(f"{est.estimate:.1f} ({est.low:.0f}-{est.high:.0f})" if ok else "-")
        row.append("FAIL" if not a.passed else "pass (file checks only)" if a.not_run else "pass")
        rows.append(row)
    return header, rows


RENDERERS: dict[str, Callable[[Report], str]] = {}  # file name -> the function that renders it


def renderer(filename: str):
    """Register a function Report -> text as the writer of `filename` in every pack output folder."""
    def register(fn):
        RENDERERS[filename] = fn
        return fn

    return register


def discover() -> dict[str, Callable[[Report], str]]:
    """RENDERERS with the renderers of the sibling modules `report_*.py` that use `@renderer(`, imported on first
    use: found by reading, like the registries, so this module depends on none of them (report.html's need
    matplotlib) and a new format is still one file."""
    import importlib
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("report_*.py")):
        if "\n@renderer(" in path.read_text(encoding="utf-8"):
            importlib.import_module(f"{__package__}.{path.stem}")
    return RENDERERS


def write_all(report: Report, folder) -> list[str]:
    """Every registered rendering of `report` into `folder`; returns the file names written."""
    from pathlib import Path

    for name, render in discover().items():
        (Path(folder) / name).write_text(render(report), encoding="utf-8")
    return list(RENDERERS)


@renderer("report.json")
def to_json(report: Report) -> str:
    return report.to_json()


@renderer("report.md")
def to_markdown(report: Report) -> str:
    header, rows = summary_rows(report)
    verdict = "PASSED" if report.passed else "FAILED"
    host = report.host
    lines = [f"# edgepack report: {report.model}", "",
             f"**{verdict}** · task `{report.task}` · revision `{report.revision}` · license `{report.license}`", "",
             f"Evaluation data: {report.data.get('origin')} ({report.data.get('samples')} samples"
             f"{', labelled' if report.data.get('labels') else ''}). Host latency: batch 1, sequence length "
             f"{report.sequence_length}, {host.get('threads')} threads, {host.get('warmup')} warm-up runs excluded, "
             f"{host.get('runs')} timed runs, on {host.get('cpu')}. Device latencies are calibrated estimates from the "
             "exported graph's op costs (range: the fit's error on held-out models), not measurements, unless marked "
             f"measured{_workload_words(report)}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += compression_sections(report)
    for a in report.artifacts:
        lines += ["", f"## {a.target} / {(a.role + ' ') if a.role else ''}{a.precision}", ""]
        if a.path:
            lines.append(f"File `{a.path}`, {a.size_bytes:,} bytes, sha256 `{a.sha256}`.")
        if a.not_run:
            ran = ", ".join(c.name for c in a.checks)
            lines.append(f"Ran on this host: {ran}. Not run: accuracy, latency, memory ({a.not_run}).")
        if a.accuracy:
            details = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in a.accuracy.details.items() if not isinstance(v, dict))
            lines.append(f"Accuracy: {details}.")
        check = a.latency_ms.host.estimate if a.latency_ms.host else None
        if check:
            lines.append(f"Host estimate vs host measurement (a check on the cost model): estimate "
                         f"{check['estimate']:.2f} ms (range {check['low']:.2f}-{check['high']:.2f}) vs measured p50 "
                         f"{check['measured_p50']:.2f} ms: x{check['estimate_over_measured']:.2f}.")
        lines += generation_lines(a)
        if a.memory_mb is not None and not a.generation:
            lines.append(f"Inference memory: {a.memory_mb:.1f} MB (peak RSS of the timing process above its size "
                         "before the runtime and model were loaded).")
        if a.settings:
            lines.append(f"Settings: `{json.dumps({k: v for k, v in a.settings.items() if k != 'search'})}`.")
        if "search" in a.settings:
            lines += search_lines(a.settings["search"])
        lines += ["", "| check | result | detail |", "|---|---|---|"]
        lines += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail} |" for c in a.checks]
        lines += [f"\nNote: {note}" for note in a.notes]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def generation_lines(a: ArtifactResult) -> list[str]:
    """A text-generation artifact's timing, memory and device estimates, in sentences (report.md and report.html)."""
    g = a.generation
    if not g:
        return []
    lines = [f"Generation on this host ({g['threads']} threads, fresh processes): time to first token at "
             f"{g['prompt_tokens']} tokens p50 {g['ttft_ms']['p50']:.1f} ms (p90 {g['ttft_ms']['p90']:.1f}); decode "
             f"{g['decode_tokens_per_s']:.1f} tokens/s over {g['new_tokens']} greedy tokens after the prompt (median of "
             f"{len(g['decode_rounds'])} rounds), {g['decode_tokens_per_s_at_context']:.1f} tokens/s with the cache at "
             f"{g['context']} tokens; peak memory with that cache {g['peak_memory_mb_at_context']:.1f} MB (above the "
             "process's size before the runtime and model were loaded)."]
    for device, e in g.get("devices", {}).items():
        d, t = e["decode_tokens_per_s"], e["ttft_ms"]
        lines.append(f"{device} (estimate, {e['threads']} threads): decode {d['estimate']:.1f} tokens/s (range "
                     f"{d['low']:.1f}-{d['high']:.1f}), {e['decode_tokens_per_s_at_context']['estimate']:.1f} at "
                     f"{e['context']} tokens; time to first token {t['estimate']:.0f} ms (range {t['low']:.0f}-"
                     f"{t['high']:.0f}); RAM: {e['ram']['verdict']}.")
    return lines


def _workload_words(report: Report) -> str:
    w = report.workload
    if not w:
        return ""
    return (f"; they are estimated and gated at the evaluation data's p90 token length, {w['p90']} tokens (p50 "
            f"{w['p50']}, max {w['max']}; fixed-shape files at the bucket that holds it), not at the maximum "
            f"{w['max_length']}, which the report.json gives as `at_max_length`")


def to_table(report: Report) -> str:
    """Plain-text table for the terminal."""
    header, rows = summary_rows(report)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    return "\n".join(out)
