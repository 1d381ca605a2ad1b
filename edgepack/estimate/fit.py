"""Fit the latency model to measured latencies, and its leave-one-out error.

The model, per op: time = max(FLOPs / (per-core peak x parallel speed-up x class efficiency),
bytes / (bandwidth reachable by the threads x memory efficiency)) + a fixed per-op overhead. Summed over ops, then
multiplied by exp(device offset + runtime offset + device-and-runtime offset).

- Shape parameters (shared by all rows): log efficiency per kernel class, log memory efficiency, log per-op overhead,
  parallel efficiency of each extra thread. Pulled towards the hand-set defaults of `EFFICIENCY` below
  so classes the data never exercises keep them.
- Offsets: one per device (and core cluster), one per runtime family, one per device-and-runtime pair. Ridge-shrunk
  towards 0, so a device or runtime without measurements gets the average of the others.

The offsets enter linearly in log space, so for given shape parameters they are a ridge regression solved in closed
form; only the ~14 shape parameters go to scipy's least squares (variable projection). A full fit takes well under a
second, so leave-one-out refits everything for each held-out row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..devices import DeviceProfile, load_profile
from .data import Measurement
from .opcost import KERNEL_CLASSES

# Hand-set starting values of the calibrated model (the fit pulls its per-class efficiencies towards these, so a
# class the calibration data never exercises keeps them). Kernel class: (fraction of peak FLOP/s, fraction of DRAM
# bandwidth).
EFFICIENCY: dict[str, tuple[float, float]] = {
    "conv":          (0.65, 0.6),
    "depthwise":     (0.25, 0.6),
    "matmul":        (0.60, 0.6),
    "attention":     (0.40, 0.6),
    "elementwise":   (0.25, 0.6),
    "normalization": (0.20, 0.5),
    "embedding":     (0.10, 0.4),
    "quantize":      (0.20, 0.5),
    "data-movement": (0.10, 0.4),
    "other":         (0.10, 0.4),
}
OVERHEAD_US = 4.0  # fixed dispatch cost per op, microseconds

BYTES_SCALE = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}  # calibration nets are costed at fp32
SINGLE_THREAD_BANDWIDTH = 0.6  # share of DRAM bandwidth one core can pull

# Prior widths (log space) and ridge strengths; residual noise is ~0.3 in log space (README of the shared data).
SHAPE_PRIOR_SD = 1.0
RIDGE = {"device": 0.4, "runtime": 0.2, "pair": 1.0, "precision": 1.0, "device_scaling": 2.0,
         "runtime_scaling": 2.0}
RANGE_QUANTILE = 0.85  # the stated range covers this share of leave-one-out errors

FIT_CLASSES = [*KERNEL_CLASSES, "conv/3x3s1"]  # dense 3x3 stride-1 convs: Winograd paths in most runtimes
# Effective FLOP rates above peak are possible only where the runtime does fewer multiplies than the op's FLOPs
# (Winograd F(2x2, 3x3) does 2.25x fewer).
NO_WINOGRAD = {"tflite", "tflite-2018"}  # pre-XNNPACK TFLite kernels (ruy / gemmlowp im2col + GEMM)
MAX_EFFICIENCY = np.array([2.25 if c == "conv/3x3s1" else 1.0 for c in FIT_CLASSES])
SHAPE_NAMES = [f"eff:{c}" for c in FIT_CLASSES] + ["mem_eff", "op_flops", "overhead", "parallel"]


def _prior() -> np.ndarray:
    eff = [math.log(EFFICIENCY[c.split("/")[0]][0]) for c in FIT_CLASSES]
    # op_flops: a per-op cost in FLOP-equivalents (scales with the device's speed, unlike `overhead`), 1 MFLOP
    return np.array(eff + [math.log(0.6), math.log(1e6), math.log(OVERHEAD_US * 1e-6), math.log(0.4 / 0.6)])


def device_key(device: str, cluster: str) -> str:
    return device if cluster == "big" else f"{device}:{cluster}"


def offset_device(key: str) -> str | None:
    """The device an offset key belongs to ("device:pi", "device_scaling:pi" and "pair:pi:little|ncnn" -> "pi";
    runtime keys -> None)."""
    kind, _, rest = key.partition(":")
    if kind in ("runtime", "precision", "runtime_scaling"):
        return None
    return rest.split("|")[0].split(":")[0]


@dataclass
class Params:
    """A fitted model: shape parameters and offsets (absent keys = 0, the average device/runtime)."""

    shape: np.ndarray
    offsets: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"shape": dict(zip(SHAPE_NAMES, map(float, self.shape))),
                "offsets": {k: float(v) for k, v in sorted(self.offsets.items())}}

    @classmethod
    def from_json(cls, data: dict) -> "Params":
        return cls(np.array([data["shape"][n] for n in SHAPE_NAMES]), dict(data["offsets"]))

    def offset(self, device: str, cluster: str, runtime: str, precision: str, threads: int) -> float:
        keys = offset_keys(device, cluster, runtime, precision, threads)
        return sum(self.offsets.get(k, 0.0) * x for k, x in keys.items())


def offset_keys(device: str, cluster: str, runtime: str, precision: str, threads: int) -> dict[str, float]:
    """The offsets that apply to one measurement, with their weights: device, runtime, the pair, runtime and
    precision (old uint8 TFLite kernels gain less from int8 than the int8 peak suggests), and the device's and
    runtime's thread scaling (weighted by log threads: memory-starved boards scale worse than the global
    parallel efficiency)."""
    key = device_key(device, cluster)
    scale = math.log(max(threads, 1))
    keys = {f"device:{key}": 1.0, f"runtime:{runtime}": 1.0, f"pair:{key}|{runtime}": 1.0,
            f"precision:{runtime}|{precision}": 1.0}
    if scale:
        keys.update({f"device_scaling:{key}": scale, f"runtime_scaling:{runtime}": scale})
    return keys


def dominant_precision(groups) -> str:
    """The precision most FLOPs run at, for groups that carry their own (class, flops, bytes, count, precision)."""
    flops: dict[str, float] = {}
    for group in groups:
        flops[group[4]] = flops.get(group[4], 0.0) + group[1] * group[3]
    return max(flops, key=flops.get) if flops else "fp32"


class Table:
    """Measurements flattened into op-level arrays, so the model is evaluated for all rows at once."""

    def __init__(self, rows: list[Measurement], profiles: dict[str, DeviceProfile] | None = None):
        profiles = dict(profiles or {})
        self.rows = rows
        cls_index = {c: i for i, c in enumerate(FIT_CLASSES)}
        row_id, cls, flops, nbytes, count, core_peak, threads, bandwidth = ([] for _ in range(8))
        used = []
        for i, m in enumerate(rows):
            profile = profiles.get(m.device) or profiles.setdefault(m.device, load_profile(m.device))
            peak, cores = _core_peak(profile, m.cluster)
            if m.runtime in NO_WINOGRAD:  # nor dot-product int8 kernels (gemmlowp): int8 at most 2x fp32
                peak = {**peak, "int8": min(peak["int8"], 2 * peak["fp32"])}
            used.append(min(m.threads, cores))
            for group in m.op_groups():
                kernel, f, b, n = group[:4]
                precision = group[4] if len(group) > 4 else m.precision  # own files carry per-op precision
                scale = 1.0 if len(group) > 4 else BYTES_SCALE[precision]
                if m.runtime in NO_WINOGRAD:
                    kernel = kernel.split("/")[0]
                row_id.append(i), cls.append(cls_index[kernel]), flops.append(f), nbytes.append(b * scale)
                count.append(n), core_peak.append(peak[precision]), threads.append(used[i])
                bandwidth.append(profile.memory_bandwidth_gbps * 1e9 * min(1.0, SINGLE_THREAD_BANDWIDTH * used[i]))
        self.row_id, self.cls = np.array(row_id, int), np.array(cls, int)
        self.flops, self.bytes, self.count = np.array(flops, float), np.array(nbytes, float), np.array(count, float)
        self.core_peak, self.threads = np.array(core_peak, float), np.array(threads, float)
        self.bandwidth = np.array(bandwidth, float)
        self.log_y = np.log([m.latency_ms * 1e-3 for m in rows])
        self.keys = [offset_keys(m.device, m.cluster, m.runtime, m.precision, used[i]) for i, m in enumerate(rows)]

    def op_seconds(self, shape: np.ndarray) -> np.ndarray:
        eff = np.exp(shape[: len(FIT_CLASSES)])[self.cls]
        mem_eff, op_flops, overhead = math.exp(shape[-4]), math.exp(shape[-3]), math.exp(shape[-2])
        parallel = 1 / (1 + math.exp(-shape[-1]))
        speedup = 1 + (self.threads - 1) * parallel
        compute = self.flops / (self.core_peak * speedup * np.minimum(eff, MAX_EFFICIENCY[self.cls]))
        memory = self.bytes / (self.bandwidth * min(mem_eff, 1.0))
        return self.count * (np.maximum(compute, memory) + overhead + op_flops / (self.core_peak * speedup))

    def log_base(self, shape: np.ndarray) -> np.ndarray:
        return np.log(np.bincount(self.row_id, self.op_seconds(shape), minlength=len(self.rows)))


def _core_peak(profile: DeviceProfile, cluster: str) -> tuple[dict[str, float], int]:
    """FLOP/s of one core per precision, and the core count of the cluster."""
    peaks = profile.peak_gflops.model_dump()
    per_core = {p: v * 1e9 / profile.cpu.cores for p, v in peaks.items()}
    if cluster == "little" and profile.cpu.efficiency_cores and profile.cpu.efficiency_core_gflops:
        ratio = profile.cpu.efficiency_core_gflops * 1e9 / per_core["fp32"]
        return {p: v * ratio for p, v in per_core.items()}, profile.cpu.efficiency_cores
    return per_core, profile.cpu.cores


class _Ridge:
    """Closed-form ridge over the offsets: beta = M z, residual = z - X beta."""

    def __init__(self, keys: list[dict[str, float]]):
        self.names = sorted({k for row in keys for k in row})
        index = {k: i for i, k in enumerate(self.names)}
        x = np.zeros((len(keys), len(self.names)))
        for i, row in enumerate(keys):
            for k, value in row.items():
                x[i, index[k]] = value
        penalty = np.diag([RIDGE[k.split(":", 1)[0]] for k in self.names])
        self.x, self.m = x, np.linalg.solve(x.T @ x + penalty, x.T) if self.names else np.zeros((0, len(keys)))

    def beta(self, z: np.ndarray) -> np.ndarray:
        return self.m @ z


def fit(table: Table, start: np.ndarray | None = None, subset: np.ndarray | None = None) -> Params:
    """Fit on the rows in `subset` (a boolean mask; default all)."""
    from scipy.optimize import least_squares

    mask = np.ones(len(table.rows), bool) if subset is None else subset
    ridge = _Ridge([k for k, keep in zip(table.keys, mask) if keep])
    prior = _prior()

    def residuals(shape):
        z = (table.log_y - table.log_base(shape))[mask]
        data = z - ridge.x @ ridge.beta(z)
        return np.concatenate([data, (shape - prior) * (0.3 / SHAPE_PRIOR_SD)])

    start = prior if start is None else start
    result = least_squares(residuals, start, method="trf", x_scale=1.0, max_nfev=200)
    z = (table.log_y - table.log_base(result.x))[mask]
    return Params(result.x, dict(zip(ridge.names, ridge.beta(z))))


def fit_offsets(table: Table, shape: np.ndarray, subset: np.ndarray | None = None) -> Params:
    """Only the offsets, for given shape parameters (what `edgepack calibrate` refits)."""
    mask = np.ones(len(table.rows), bool) if subset is None else subset
    ridge = _Ridge([k for k, keep in zip(table.keys, mask) if keep])
    z = (table.log_y - table.log_base(shape))[mask]
    return Params(shape, dict(zip(ridge.names, ridge.beta(z))))


def predict_log(table: Table, params: Params) -> np.ndarray:
    """Predicted log seconds for every row of the table."""
    offsets = np.array([sum(params.offsets.get(k, 0.0) * x for k, x in keys.items()) for keys in table.keys])
    return table.log_base(params.shape) + offsets


def leave_one_out(table: Table, full: Params | None = None) -> np.ndarray:
    """log(predicted / measured) for each row, predicted by a fit on all other rows."""
    full = full or fit(table)
    errors = np.empty(len(table.rows))
    for i in range(len(table.rows)):
        mask = np.ones(len(table.rows), bool)
        mask[i] = False
        params = fit(table, start=full.shape, subset=mask)
        errors[i] = predict_log(table, params)[i] - table.log_y[i]
    return errors


def leave_device_out(table: Table, full: Params | None = None) -> np.ndarray:
    """log(predicted / measured) for each row, predicted by a fit without any row of its device: the error to
    expect on a device that has no measurements of its own."""
    full = full or fit(table)
    errors = np.empty(len(table.rows))
    devices = np.array([m.device for m in table.rows])
    for device in sorted(set(devices)):
        held = devices == device
        params = fit(table, start=full.shape, subset=~held)
        errors[held] = (predict_log(table, params) - table.log_y)[held]
    return errors


def error_summary(errors: np.ndarray) -> dict:
    """Figures of a set of log errors: count, median |error| %, share within +-25%, range half-width (log)."""
    if not len(errors):
        return {"n": 0}
    ratio = np.exp(errors)
    return {"n": int(len(errors)),
            "median_abs_error_pct": float(np.median(np.abs(ratio - 1)) * 100),
            "within_25pct": float(np.mean(np.abs(ratio - 1) <= 0.25)),
            "range_log_halfwidth": float(np.quantile(np.abs(errors), RANGE_QUANTILE))}
