"""Accuracy-aware calibrated precisions (int8-static): a bounded search that explains itself and never loses the
best artifact. It drives any target through the Target contract (default_tuning, tuning_variants,
quantizable_layers, build with a Tuning) and the harness; it does not know how a target quantizes.

Steps, each started only while the budget allows it (a step is skipped when the previous step's duration would
overrun the deadline; the first candidate is always built, so there is always an artifact):

1. variants: the target's default tuning, then the variants it offers (ONNX: other calibration methods, per-tensor
   and symmetric variants); the most accurate variant is the base for the next steps;
2. sensitivity: for each quantizable layer, quantize that layer alone and measure the error it causes on a subset
   of the selection data (relative MSE of the outputs against the source model, and the task's accuracy drop);
3. fallback: leave the k most sensitive layers in float (k = 1, 2, 4, ..., then a bisection between the last k
   that missed and the first that met the limit) until the drop is within the limit.

Candidates are scored on held-out rows of the data file (neither evaluation nor calibration samples), so the
reported accuracy of the kept artifact is not the figure it was picked on. Every candidate's metrics are recorded;
each passing candidate is timed, the fastest passing one is kept. When none passes, the most accurate one is kept
and the caller's accuracy gate fails it (exit 1), with the layers that hurt most and the layers left in float in
the record.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .targets import Target, Tuning

SENSITIVITY_SAMPLES = 200  # selection texts per single-layer measurement
TIMING_ROUNDS = 3  # passing candidates are timed in turn this many times; the median decides
SELECTION_SAMPLES = 500  # held-out texts the candidates are scored on, at least (as many as evaluation samples)


@dataclass
class Measured:
    """What `evaluate` returns for one candidate file."""

    drop: float  # the task's accuracy drop vs the source (the gated figure)
    error: float  # relative MSE of the outputs vs the source: a continuous tie-breaker
    details: dict = field(default_factory=dict)


@dataclass
class Candidate:
    name: str
    settings: Tuning
    path: Path
    drop: float
    error: float
    passed: bool
    seconds: float
    p50_ms: float | None = None
    details: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"name": self.name, "variant": self.settings.describe(), "layers_in_float": len(self.settings.exclude),
                "drop": self.drop, "error": self.error, "passed": self.passed, "host_p50_ms": self.p50_ms,
                "build_and_eval_s": round(self.seconds, 2),
                **{k: v for k, v in self.details.items() if k in ("accuracy_source", "accuracy_artifact")}}


class _Clock:
    def __init__(self, budget_s: float):
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.last_step = 0.0  # the duration of the last step of any kind
        self.last_full = 0.0  # ... of the last full candidate (build + evaluation on all the data)
        self.stopped_by: str | None = None

    def allows(self, what: str, expected: float | None = None) -> bool:
        """True when a step of `expected` seconds (default: as long as the last one) still fits in the budget."""
        if time.monotonic() + (self.last_step if expected is None else expected) <= self.deadline:
            return True
        self.stopped_by = self.stopped_by or f"budget reached before {what}"
        return False

    @property
    def spent(self) -> float:
        return time.monotonic() - self.start


def run(build: Callable[[Tuning, Path], dict], evaluate: Callable[[Path, int | None], Measured],
        time_it: Callable[[Path], float], layers: list[str], max_drop: float, budget_s: float, workdir: Path,
        dest: Path, base: Tuning, variants: Callable[[Tuning], list[Tuning]] = lambda t: [t], suffix: str = ".onnx",
        progress=None) -> dict:
    """Search, copy the kept candidate to `dest`, and return the record (for the report) with its build settings."""
    from .progress import Progress

    progress = progress or Progress()
    workdir.mkdir(parents=True, exist_ok=True)
    clock = _Clock(budget_s)
    candidates: list[Candidate] = []
    settings_of: dict[str, dict] = {}

    def attempt(name: str, settings: Tuning, limit: int | None = None) -> Candidate:
        started = time.monotonic()
        path = workdir / f"{name}{suffix}"
        settings_of[name] = build(settings, path)
        m = evaluate(path, limit)
        cand = Candidate(name, settings, path, m.drop, m.error, m.drop <= max_drop, time.monotonic() - started,
                         details=m.details)
        clock.last_step = cand.seconds
        if limit is None:
            clock.last_full = cand.seconds
            candidates.append(cand)
            progress.stage(f"search: {name} ({settings.describe()}): drop {m.drop:.4f} "
                           f"{'within' if cand.passed else 'over'} {max_drop:.4f}")
        return cand

    # 1. variants (the first is built whatever the budget: there must be an artifact)
    best = attempt("full-default", base)
    for i, settings in enumerate(variants(best.settings)[1:], 1):
        if best.passed or not clock.allows("trying variants"):
            break
        cand = attempt(f"full-variant{i}", settings)
        best = min(best, cand, key=lambda c: (c.drop, c.error))

    # 2. sensitivity of each layer alone, with the best variant's settings
    sensitivity: list[dict] = []
    if not best.passed and layers:
        limit = SENSITIVITY_SAMPLES
        for i, layer in enumerate(layers):
            if not clock.allows(f"measuring layer {i + 1} of {len(layers)}"):
                break
            alone = replace(best.settings, exclude=tuple(other for other in layers if other != layer))
            cand = attempt(f"only-{i}", alone, limit)
            sensitivity.append({"layer": layer, "error": cand.error, "drop": cand.drop})
            cand.path.unlink(missing_ok=True)
        sensitivity.sort(key=lambda s: (s["error"], s["drop"]), reverse=True)
        progress.stage(f"search: measured the sensitivity of {len(sensitivity)} of {len(layers)} layers")

    # 3. leave the most sensitive layers in float
    ranked = [s["layer"] for s in sensitivity]
    tried: dict[int, Candidate] = {}
    k, low, high = 1, 0, None  # low: most layers in float known to miss; high: fewest known to pass
    while ranked and not any(c.passed for c in candidates) or (high is not None and high - low > 1):
        if not ranked or k > len(ranked) or k in tried or not clock.allows(f"{k} layer(s) in float", clock.last_full):
            break
        tried[k] = attempt(f"float{k}", replace(best.settings, exclude=tuple(ranked[:k])))
        if tried[k].passed:
            high = k
        else:
            low = k
        if high is None:
            k = min(k * 2, len(ranked)) if k < len(ranked) else k + 1
        else:
            k = (low + high) // 2
    # 4. time the passing candidates in turn, TIMING_ROUNDS times (a shared host's bursts then hit them alike); keep
    #    the fastest by median p50, or else the most accurate
    passing = [c for c in candidates if c.passed]
    timings: dict[str, list[float]] = {}
    turns = [(round_, cand) for round_ in range(TIMING_ROUNDS) for cand in passing]
    for round_, cand in turns:
        if (round_ or cand is not passing[0]) and not clock.allows("timing passing candidates"):
            break
        started = time.monotonic()
        timings.setdefault(cand.name, []).append(time_it(cand.path))
        clock.last_step = time.monotonic() - started
    for cand in passing:
        if cand.name in timings:
            cand.p50_ms = statistics.median(timings[cand.name])
    timed = [c for c in passing if c.p50_ms is not None]
    kept = min(timed, key=lambda c: c.p50_ms) if timed else min(candidates, key=lambda c: (c.drop, c.error))
    if kept.path.is_dir():
        shutil.copytree(kept.path, dest)
    else:
        shutil.copyfile(kept.path, dest)

    why = {layer: next(f"sensitivity rank {r + 1}: alone it causes relative error {s['error']:.3g}, drop "
                       f"{s['drop']:.4f}" for r, s in enumerate(sensitivity) if s["layer"] == layer)
           for layer in kept.settings.exclude}
    record = {"max_accuracy_drop": max_drop, "budget_s": budget_s, "spent_s": round(clock.spent, 1),
              "stopped_by": clock.stopped_by or ("a candidate met the limit" if passing else "search exhausted"),
              "passed": kept.passed, "kept": kept.name,
              "kept_because": f"fastest passing candidate by median host p50, timed in turn up to {TIMING_ROUNDS} times"
              if kept.passed else "no candidate met the limit: the most accurate one is kept",
              "layers_in_float": why, "sensitivity_top": sensitivity[:10],
              "layers_measured": len(sensitivity), "layers_total": len(layers),
              "candidates": [c.record() for c in candidates]}
    return {**settings_of[kept.name], "search": record}


def search_static(p, target: Target, exported, precision: str, dest: Path, reference, timing_inputs: dict,
                  progress) -> dict:
    """The search for one pack run's calibrated artifact: candidates built by `target`, scored on the plan's data
    against the source outputs, timed like the final artifact (fewer runs)."""
    import numpy as np

    from .bench import accuracy, latency

    base = target.default_tuning(precision)
    texts, reference, selected_on = _selection_texts(p, target, exported, base, reference, progress)

    def evaluate(path: Path, limit: int | None) -> Measured:
        n = len(texts) if limit is None else min(limit, len(texts))
        out = accuracy.artifact_outputs(path, p.task, texts[:n], p.sequence_length, p.threads)
        ref = reference[:n]
        acc = p.task.compare(ref, out, None)  # the headline drop, which needs no labels
        error = float(np.mean((out - ref) ** 2) / max(float(np.mean(ref ** 2)), 1e-12))
        return Measured(acc.drop, error, acc.details)

    def time_it(path: Path) -> float:
        return latency.measure(path, timing_inputs, p.threads, warmup=5, runs=max(20, p.options.runs // 5))["p50"]

    def build(tuning: Tuning, path: Path) -> dict:
        return target.build(precision, exported, path, tuning)

    result = run(build, evaluate, time_it, target.quantizable_layers(precision, exported), p.gates.max_accuracy_drop,
                 p.options.search_budget_s, target.workdir / "search", dest, base, target.tuning_variants,
                 target.suffix, progress)
    result["search"]["selected_on"] = selected_on
    return result


def _selection_texts(p, target: Target, exported, tuning: Tuning, reference, progress):
    """(texts, source outputs, where from) that candidates are scored on: rows of the data file that are neither
    evaluation samples nor, where there are enough, calibration samples, so the kept artifact's reported accuracy is
    not the figure it was picked on. Without such rows, the evaluation texts (the report's notes say so)."""
    from .compress.corpus import FALLBACK

    pool, origin = exported.settings.calibration, exported.settings.calibration_origin
    if origin.startswith(FALLBACK):
        return p.dataset.texts, reference, f"{origin}: the same samples the reported accuracy is measured on"
    calibrated = set(target.calibration_samples(exported, tuning))
    spare = [text for text in pool if text not in calibrated]
    spare = spare if len(spare) >= 50 else pool
    # As many as the evaluation samples where the file has them: a limit met on fewer rows is met by chance more often.
    texts = list(spare[:max(SELECTION_SAMPLES, len(p.dataset.texts))])
    progress.stage(f"Running the source model on {len(texts)} held-out selection samples (PyTorch fp32)")
    where = "rows not used for calibration" if spare is not pool else "calibration rows (too few others)"
    return texts, p.task.reference(texts, p.sequence_length), (
        f"{len(texts)} held-out {where}, none of them evaluation samples")
