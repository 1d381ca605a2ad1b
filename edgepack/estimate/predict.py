"""The calibrated latency estimate: the fitted model of `fit.py` applied to one graph's op costs on one profile.

The fitted parameters ship as `fit.json` (benchmarks/device_estimate.py --write-fit regenerates it from
published.csv). A profile refitted by `edgepack calibrate` carries its own offsets and error in its `calibration`
block, which take precedence over the shipped ones.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..devices import DeviceProfile
from ..errors import UsageError
from .data import HERE, Measurement, fit_class
from .cores import profile_core
from .fit import FIT_CLASSES, Params, Table, device_key, dominant_precision, offset_device, predict_log
from .opcost import KERNEL_CLASSES, OpCost

FIT_FILE = HERE / "fit.json"


@lru_cache(maxsize=1)
def shipped_fit() -> dict:
    return json.loads(FIT_FILE.read_text())


def op_groups(costs: list[OpCost]) -> tuple:
    """OpCosts -> compact groups carrying their own precision: (class, flops, bytes, count, precision)."""
    groups = Counter((fit_class(c), c.flops, c.bytes, c.precision) for c in costs)
    return tuple((k, f, b, n, p) for (k, f, b, p), n in sorted(groups.items()))


MIN_ROWS = 8  # fewest cross-validated errors a range is built from; fewer: the next broader group


def error_keys(family: str, runtime: str, has_rows: bool) -> list[str]:
    """The groups of cross-validated errors a range may come from, narrowest first. Devices with published rows:
    leave-one-model-out errors of the same core family and runtime, the runtime, the core family, all rows. Devices
    without: leave-device-out errors of its core family, then of all devices."""
    if has_rows:
        return [f"range:{family}|{runtime}", f"runtime:{runtime}", f"family:{family}", "overall"]
    return [f"lodo:{family}", "leave-device-out"]


BASIS = {"range": "leave-one-model-out over published {runtime} rows on {family} cores",
         "runtime": "leave-one-model-out over published {runtime} rows on all devices",
         "family": "leave-one-model-out over published rows on {family} cores (all runtimes)",
         "overall": "leave-one-model-out over all published rows",
         "lodo": "leave-device-out over {family} devices",
         "leave-device-out": "leave-device-out over all published rows"}


def error_for(profile, runtime: str) -> dict:
    """The cross-validated error that applies to `profile` on `runtime`, and what it was measured on.

    The profile's own calibration first; otherwise the held-out-model errors of the narrowest group with at least
    MIN_ROWS rows (error_keys), or for a device without published rows the held-out-device errors of its core
    family: the error a user gets on a model (or device) the fit has not seen, not on the rows it was fitted to.
    """
    calibration = getattr(profile, "calibration", None)
    if calibration is not None:
        return {**calibration.error.model_dump(), "basis": f"leave-one-out over {calibration.fitted_on}"}
    errors = shipped_fit()["errors"]
    core, family = profile_core(profile)
    has_rows = f"device:{profile.name}" in errors
    for key in error_keys(family, runtime, has_rows):
        summary = errors.get(key)
        if summary and summary["n"] >= MIN_ROWS or key in ("overall", "leave-device-out"):
            basis = BASIS[key.split(":")[0]].format(runtime=runtime, family=family)
            if not has_rows:
                basis += f" (no published rows for {profile.name}: the shared curves of its {core} cores)"
            return {**summary, "basis": basis}
    raise AssertionError("unreachable: the last key always answers")


def params_for(profile) -> Params:
    params = Params.from_json(shipped_fit()["params"])
    calibration = getattr(profile, "calibration", None)
    if calibration is not None:  # the user's refit replaces this device's offsets
        params.offsets = {k: v for k, v in params.offsets.items() if offset_device(k) != profile.name}
        params.offsets.update(calibration.offsets)
    return params


def calibrated(costs: list[OpCost], profile, threads: int, runtime: str = "onnxruntime") -> dict:
    """Estimate in ms with its range and per-class breakdown, and the error it is based on."""
    groups = op_groups(costs)
    precision = dominant_precision(groups)
    row = Measurement(device=profile.name, runtime=runtime, threads=threads, precision=precision, latency_ms=1.0,
                      ops=groups)
    params = params_for(profile)
    table = Table([row], {profile.name: profile})
    offset = predict_log(table, params)[0] - table.log_base(params.shape)[0]
    seconds = table.op_seconds(params.shape) * math.exp(offset)
    by_class = dict.fromkeys(KERNEL_CLASSES, 0.0)
    for cls_index, s in zip(table.cls, seconds):
        by_class[FIT_CLASSES[cls_index].split("/")[0]] += float(s) * 1e3
    total = float(np.sum(seconds)) * 1e3
    error = error_for(profile, runtime)
    # errors are log(predicted / measured): the measurement lies below the estimate by the high quantile at most
    low = error.get("log_error_low", -error["range_log_halfwidth"])
    high = error.get("log_error_high", error["range_log_halfwidth"])
    core, family = table.cores[0]
    known = {"device": f"device:{device_key(profile.name, 'big')}", "runtime": f"runtime:{runtime}",
             "core type": f"core:{core}", "core family": f"family:{family}"}
    unseen = [word for word, key in known.items() if key not in params.offsets]
    return {"estimate_ms": total, "low_ms": total * math.exp(-max(high, 0.0)),
            "high_ms": total * math.exp(-min(low, 0.0)), "by_class": {k: v for k, v in by_class.items() if v},
            "error": error, "runtime": runtime, "unseen": unseen}


@dataclass(frozen=True)
class LatencyEstimate:
    estimate_ms: float
    low_ms: float
    high_ms: float
    threads: int
    by_class: dict[str, float] = field(default_factory=dict)  # ms per kernel class (of estimate_ms)
    note: str = ""
    runtime: str = "onnxruntime"
    error: dict = field(default_factory=dict)  # the leave-one-out error the range comes from (and its basis)


def estimate_latency(costs: list[OpCost], profile: DeviceProfile, threads: int | None = None,
                     runtime: str = "onnxruntime") -> LatencyEstimate:
    """Calibrated estimate (edgepack/estimate): per-op roofline with fitted efficiencies, overheads and device /
    runtime factors; the range is the leave-one-out error of the fit for this device and runtime."""
    threads = profile.default_threads if threads is None else threads
    if threads < 1:
        raise UsageError(f"threads must be at least 1, got {threads}")
    result = calibrated(costs, profile, threads, runtime)
    error = result["error"]
    used = min(threads, profile.cpu.cores)  # the fit counts at most the profile's cores; say so, not what was asked
    asked = f" ({threads} asked for; the profile has {profile.cpu.cores} cores)" if used < threads else ""
    note = (f"calibrated estimate for {profile.display_name} ({runtime}), {used} thread(s){asked}, {len(costs)} ops; "
            f"range from the {error['basis']}: median error {error['median_abs_error_pct']:.0f}%, "
            f"{error['within_25pct']:.0%} within +-25% (n={error['n']})")
    if result["unseen"]:
        note += f"; no published measurements for this {' or '.join(result['unseen'])}: average factor used"
    unknown = sorted({op.op_type for op in costs if not op.known})
    if unknown:
        note += f"; op types counted by bytes only: {', '.join(unknown)}"
    return LatencyEstimate(estimate_ms=result["estimate_ms"], low_ms=result["low_ms"], high_ms=result["high_ms"],
                           threads=used, by_class=result["by_class"], note=note, runtime=runtime, error=error)
