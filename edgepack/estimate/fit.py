"""Fit the latency model to measured latencies, and its cross-validated error.

The model, per op: time = max(FLOPs / (per-core peak x parallel speed-up x class efficiency),
bytes / (bandwidth reachable by the threads x memory efficiency)) + a per-op cost. Summed over ops, then multiplied
by exp(sum of offsets). The peaks and bandwidths are the profile's spec-sheet figures; the fit only learns how far
real kernels fall short of them.

- Shape parameters (shared by all rows, 10): one efficiency for dense GEMM-like kernels (convs, matmuls,
  attention), a Winograd factor for 3x3 stride-1 convs, depthwise efficiency, how efficiency falls with low
  arithmetic intensity, memory efficiency, per-op cost (fixed time and FLOP-equivalents), parallel efficiency per
  extra thread. Matmul and attention are tied to the conv GEMM efficiency (the same micro-kernels), so a network
  made of matmuls (a transformer) is predicted from the convs when no transformer is in the data. Bandwidth-bound
  classes (elementwise, normalization, gathers, ...) keep the hand-set compute efficiency of `EFFICIENCY`.
- Offsets (linear in log space, ridge-shrunk towards 0): per core family and per core type (shared by every
  device with those cores), per device (tightly shrunk: its spec sheet already says how fast it is), per runtime
  family and runtime-and-precision, and thread scaling per core family and runtime (weighted by log threads).
  No per-device-and-runtime offsets: they only memorised rows.

For given shape parameters the offsets are a closed-form ridge regression; only the shape parameters go to scipy's
least squares (variable projection). A full fit takes well under a second, so cross-validation refits everything
for each held-out group: leave-one-row-out, leave-one-model-out (every row of a network held out together: the
error on a model edgepack was not fitted on) and leave-one-device-out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..devices import DeviceProfile, load_profile
from .cores import profile_core
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

# Prior widths: shape parameters (log space) around the hand-set values; ridge strength of each offset kind is
# (residual sd / prior sd)^2 with residual sd ~0.3 (README of the shared data). A device's own factor is held
# within ~+-15% (its spec sheet is the prior); cores and families may move further.
SHAPE_PRIOR_SD = 1.0
TIE_SD = 0.25  # matmul / attention efficiency around the conv GEMM efficiency
RIDGE = {"family": 0.4, "core": 1.0, "device": 4.0, "runtime": 0.4, "precision": 1.0, "scaling": 2.0,
         "runtime_scaling": 2.0, "device_scaling": 8.0}
RANGE_QUANTILES = (0.05, 0.95)  # the stated range: these quantiles of the cross-validated errors

FIT_CLASSES = [*KERNEL_CLASSES, "conv/3x3s1"]  # dense 3x3 stride-1 convs: Winograd paths in most runtimes
GEMM_CLASSES = ("conv", "matmul", "attention")
# Effective FLOP rates above peak are possible only where the runtime does fewer multiplies than the op's FLOPs
# (Winograd F(2x2, 3x3) does 2.25x fewer).
NO_WINOGRAD = {"tflite", "tflite-2018"}  # pre-XNNPACK TFLite kernels (ruy / gemmlowp im2col + GEMM)
MAX_EFFICIENCY = np.array([2.25 if c == "conv/3x3s1" else 1.0 for c in FIT_CLASSES])
SHAPE_NAMES = ["eff:conv", "eff:matmul", "eff:attention", "eff:conv/3x3s1", "eff:depthwise", "intensity",
               "mem_eff", "op_flops", "overhead", "parallel"]


def _prior() -> np.ndarray:
    eff = [math.log(EFFICIENCY[c][0]) for c in ("conv", "matmul", "attention")]
    # conv/3x3s1: as fast as its FLOPs at conv efficiency x 1.5 (Winograd, less than the 2.25 of F(2x2,3x3));
    # intensity: FLOPs per byte at which a GEMM reaches half its efficiency (4); op_flops: a per-op cost in
    # FLOP-equivalents (scales with the device's speed, unlike `overhead`), 1 MFLOP
    return np.array(eff + [math.log(0.65 * 1.5), math.log(EFFICIENCY["depthwise"][0]), math.log(4.0), math.log(0.6),
                           math.log(1e6), math.log(OVERHEAD_US * 1e-6), math.log(0.4 / 0.6)])


def device_key(device: str, cluster: str) -> str:
    return device if cluster == "big" else f"{device}:{cluster}"


def offset_device(key: str) -> str | None:
    """The device an offset key belongs to ("device:pi", "device_scaling:pi:little" -> "pi"); shared keys
    (runtime, core, family, ...) -> None."""
    kind, _, rest = key.partition(":")
    if kind not in ("device", "device_scaling", "pair"):
        return None
    return rest.split("|")[0].split(":")[0]


@dataclass
class Params:
    """A fitted model: shape parameters and offsets (absent keys = 0, the average core/device/runtime)."""

    shape: np.ndarray
    offsets: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"shape": dict(zip(SHAPE_NAMES, map(float, self.shape))),
                "offsets": {k: float(v) for k, v in sorted(self.offsets.items())}}

    @classmethod
    def from_json(cls, data: dict) -> "Params":
        return cls(np.array([data["shape"][n] for n in SHAPE_NAMES]), dict(data["offsets"]))


def offset_keys(device: str, cluster: str, runtime: str, precision: str, threads: int,
                core: tuple[str, str] = ("unknown", "unknown")) -> dict[str, float]:
    """The offsets that apply to one measurement, with their weights. `core` = (core type, core family)."""
    key = device_key(device, cluster)
    scale = math.log(max(threads, 1))
    keys = {f"family:{core[1]}": 1.0, f"core:{core[0]}": 1.0, f"device:{key}": 1.0, f"runtime:{runtime}": 1.0,
            f"precision:{runtime}|{precision}": 1.0}
    if scale:  # memory-starved boards and some runtimes scale worse than the shared parallel efficiency
        keys.update({f"scaling:{core[1]}": scale, f"runtime_scaling:{runtime}": scale,
                     f"device_scaling:{key}": scale})
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
        used, self.cores = [], []
        for i, m in enumerate(rows):
            profile = profiles.get(m.device) or profiles.setdefault(m.device, load_profile(m.device))
            peak, cores = _core_peak(profile, m.cluster)
            self.cores.append(profile_core(profile, m.cluster))
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
        self.gemm = np.isin(self.cls, [cls_index[c] for c in (*GEMM_CLASSES, "conv/3x3s1")])
        self.intensity = self.flops / np.maximum(self.bytes, 1.0)
        self.log_y = np.log([m.latency_ms * 1e-3 for m in rows])
        self.keys = [offset_keys(m.device, m.cluster, m.runtime, m.precision, used[i], self.cores[i])
                     for i, m in enumerate(rows)]
        self.used_threads = used

    def class_efficiency(self, shape: np.ndarray) -> np.ndarray:
        """Compute efficiency of each fit class (fixed hand-set values for the bandwidth-bound classes)."""
        eff = np.array([EFFICIENCY[c.split("/")[0]][0] for c in FIT_CLASSES])
        for name, value in zip(SHAPE_NAMES[:5], shape[:5]):
            eff[FIT_CLASSES.index(name[4:])] = math.exp(value)
        return np.minimum(eff, MAX_EFFICIENCY)

    def op_seconds(self, shape: np.ndarray) -> np.ndarray:
        eff = self.class_efficiency(shape)[self.cls]
        # GEMMs with few FLOPs per byte (thin matrices, small channel counts) keep the vector units less busy
        half = math.exp(shape[5])
        eff = np.where(self.gemm, eff * self.intensity / (self.intensity + half), eff)
        mem_eff, op_flops, overhead = math.exp(shape[6]), math.exp(shape[7]), math.exp(shape[8])
        parallel = 1 / (1 + math.exp(-shape[9]))
        speedup = 1 + (self.threads - 1) * parallel
        compute = self.flops / (self.core_peak * speedup * np.maximum(eff, 1e-6))
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


def _shape_penalty(shape: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Prior residuals: every shape parameter towards its hand-set value, matmul and attention towards the conv
    GEMM efficiency."""
    tie = shape[1:3] - shape[0]
    return np.concatenate([(shape - prior) * (0.3 / SHAPE_PRIOR_SD), tie * (0.3 / TIE_SD)])


def fit(table: Table, start: np.ndarray | None = None, subset: np.ndarray | None = None) -> Params:
    """Fit on the rows in `subset` (a boolean mask; default all)."""
    from scipy.optimize import least_squares

    mask = np.ones(len(table.rows), bool) if subset is None else subset
    ridge = _Ridge([k for k, keep in zip(table.keys, mask) if keep])
    prior = _prior()

    def residuals(shape):
        z = (table.log_y - table.log_base(shape))[mask]
        return np.concatenate([z - ridge.x @ ridge.beta(z), _shape_penalty(shape, prior)])

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


def cross_validate(table: Table, groups: list, full: Params | None = None) -> np.ndarray:
    """log(predicted / measured) for each row, predicted by a fit without any row of its group (shape and offsets
    refitted)."""
    full = full or fit(table)
    errors = np.empty(len(table.rows))
    labels = np.array(groups, dtype=object)
    for label in sorted(set(groups)):
        held = labels == label
        params = fit(table, start=full.shape, subset=~held)
        errors[held] = (predict_log(table, params) - table.log_y)[held]
    return errors


def network(m: Measurement) -> str:
    """The network a row measures, whatever its input size ("ResNet-50@224" -> "ResNet-50")."""
    return m.cost_key.split("@")[0] if m.cost_key else m.source


def leave_one_out(table: Table, full: Params | None = None) -> np.ndarray:
    """Each row predicted by a fit on all other rows (its network's and device's other rows stay in)."""
    return cross_validate(table, list(range(len(table.rows))), full)


def leave_model_out(table: Table, full: Params | None = None) -> np.ndarray:
    """Each row predicted by a fit without any row of its network: the error on a model the fit has not seen."""
    return cross_validate(table, [network(m) for m in table.rows], full)


def leave_device_out(table: Table, full: Params | None = None) -> np.ndarray:
    """Each row predicted by a fit without any row of its device: the error on a device with no measurements."""
    return cross_validate(table, [m.device for m in table.rows], full)


def range_quantiles(errors: np.ndarray) -> tuple[float, float]:
    """Low and high RANGE_QUANTILES of log errors, widened for small samples as split-conformal intervals are
    (level (n + 1) / n further out, capped at the extremes): a few errors understate the tails."""
    n = len(errors)
    low, high = RANGE_QUANTILES
    levels = (max(0.0, 1 - (1 - low) * (n + 1) / n), min(1.0, high * (n + 1) / n))
    return tuple(float(q) for q in np.quantile(errors, levels))


def error_summary(errors: np.ndarray) -> dict:
    """Figures of a set of log errors (log(predicted / measured)): count, median |error| %, share within +-25%,
    the range's low and high log quantiles (RANGE_QUANTILES) and, for readers of the symmetric form, its larger
    half-width."""
    if not len(errors):
        return {"n": 0}
    ratio = np.exp(errors)
    low, high = range_quantiles(errors)
    return {"n": int(len(errors)),
            "median_abs_error_pct": float(np.median(np.abs(ratio - 1)) * 100),
            "within_25pct": float(np.mean(np.abs(ratio - 1) <= 0.25)),
            "range_log_halfwidth": max(abs(low), abs(high)),
            "log_error_low": low, "log_error_high": high}
