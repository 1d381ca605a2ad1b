"""Device profiles (`devices/*.yaml`), the fit check, and an uncalibrated roofline latency estimate.

A profile describes the CPU a runtime uses on the device. On big.LITTLE chips `cpu.cores` are the performance cores
(the ones benchmarks and runtimes pin to); `peak_gflops` covers those cores, and the efficiency cores are listed
apart and left out of the estimate. Every figure group carries a citation in `sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from .config import Gates, Strict, list_names, load_named
from .costs import KERNEL_CLASSES, OpCost, count_onnx_costs
from .errors import UsageError

__all__ = ["DeviceProfile", "LatencyEstimate", "OpCost", "count_onnx_costs", "estimate_file", "estimate_latency",
           "fits", "list_profiles", "load_profile", "EFFICIENCY", "SOURCED_FIELDS"]

Feature = Literal["neon", "fp16", "dotprod", "i8mm", "bf16", "sve", "sve2", "sse4_2", "avx", "avx2", "fma", "f16c",
                  "avx512f", "avx512_vnni", "avx_vnni", "amx"]

# Figure groups that must each have an entry in `sources`.
SOURCED_FIELDS = ("cpu", "default_threads", "peak_gflops", "memory_bandwidth_gbps", "ram_mb", "storage_gb", "budgets")


class Cpu(Strict):
    cores: int = Field(gt=0, description="cores the runtime uses (the performance cores on big.LITTLE)")
    core_type: str
    clock_ghz: float = Field(gt=0, description="sustained clock of those cores, used for peak_gflops")
    isa: str
    features: list[Feature]
    hardware_threads: int | None = Field(default=None, gt=0, description="with SMT; default = cores")
    efficiency_cores: int = Field(default=0, ge=0, description="little cores, not counted in peak_gflops")
    efficiency_core_type: str | None = None
    efficiency_core_gflops: float | None = Field(default=None, gt=0, description="fp32 peak of one efficiency core")


class PeakGflops(Strict):
    """Whole-cluster peak of `cpu.cores`, GFLOP/s (int8: GOP/s)."""

    fp32: float = Field(gt=0)
    fp16: float = Field(gt=0)
    int8: float = Field(gt=0)


class Budgets(Strict):
    """edgepack's default gates for the device class (a reasonable app budget, not a vendor figure)."""

    max_latency_ms: float = Field(gt=0)
    max_size_mb: float = Field(gt=0)
    max_memory_mb: float = Field(gt=0)

    def as_gates(self) -> Gates:
        return Gates(**self.model_dump())


class ErrorSummary(Strict):
    """Leave-one-out error of the calibrated estimate (see edgepack/calibration/fit.py: error_summary)."""

    n: int = Field(ge=0)
    median_abs_error_pct: float = Field(ge=0)
    within_25pct: float = Field(ge=0, le=1)
    range_log_halfwidth: float = Field(ge=0)


class Calibration(Strict):
    """A refit from the user's own measurements (`edgepack calibrate`); replaces the shipped offsets of the device."""

    fitted_on: str
    offsets: dict[str, float]
    error: ErrorSummary


class DeviceProfile(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    display_name: str
    category: Literal["single-board-computer", "phone", "embedded", "laptop"]
    os: str
    soc: str
    cpu: Cpu
    default_threads: int = Field(gt=0)
    peak_gflops: PeakGflops
    memory_bandwidth_gbps: float = Field(gt=0, description="theoretical DRAM bandwidth")
    ram_mb: int = Field(gt=0)
    storage_gb: float = Field(gt=0, description="storage available to apps")
    budgets: Budgets
    sources: dict[str, str]
    notes: str | None = None
    calibration: Calibration | None = None

    @model_validator(mode="after")
    def _every_figure_has_a_source(self) -> "DeviceProfile":
        missing = [key for key in SOURCED_FIELDS if not self.sources.get(key, "").strip()]
        if missing:
            raise ValueError(f"sources: no citation for {', '.join(missing)} (every figure group needs one)")
        unknown = sorted(set(self.sources) - set(type(self).model_fields) - {"calibration"})
        if unknown:
            raise ValueError(f"sources: {', '.join(unknown)} is not a field of the profile")
        if self.default_threads > (self.cpu.hardware_threads or self.cpu.cores) + self.cpu.efficiency_cores:
            raise ValueError("default_threads: more threads than the CPU has")
        return self


def load_profile(name_or_path: str) -> DeviceProfile:
    """A shipped profile by name (`raspberry-pi-4`), any profile YAML by path, `host` (this machine, measured once
    and cached), or an ssh:// device URL (its `profile=`; `edgepack measure` runs on the device itself)."""
    if name_or_path == "host":
        from .calibration.host import host_profile

        return host_profile()
    if name_or_path.startswith("ssh://"):
        from .remote.ssh import parse_url

        return parse_url(name_or_path).load_profile()
    return load_named("devices", name_or_path, DeviceProfile)


def list_profiles() -> list[str]:
    return list_names("devices")


# ---- does it fit ------------------------------------------------------------------------------------------------

STORAGE_SHARE = 0.5  # the model may take at most half of the storage available to apps
RAM_SHARE = 0.5      # peak inference memory may take at most half of RAM; the rest is the OS's and the app's


def fits(profile: DeviceProfile, size_bytes: int, peak_memory_bytes: int | None) -> dict:
    """Whether a model of `size_bytes` (on disk) with `peak_memory_bytes` (resident while running) fits the device.

    Margins: the model file may use half of `storage_gb`, and inference half of `ram_mb`. Without a measured peak,
    the model size stands in for it (a lower bound: weights are resident, activations come on top).
    """
    mb = 1e6  # decimal MB, as sizes are reported everywhere in edgepack
    storage_limit = profile.storage_gb * 1000 * STORAGE_SHARE
    memory_limit = profile.ram_mb * RAM_SHARE
    size_mb = size_bytes / mb
    memory_mb = (peak_memory_bytes if peak_memory_bytes is not None else size_bytes) / mb
    storage_ok, memory_ok = size_mb <= storage_limit, memory_mb <= memory_limit
    return {
        "device": profile.name,
        "fits": storage_ok and memory_ok,
        "storage_ok": storage_ok,
        "size_mb": round(size_mb, 2),
        "storage_limit_mb": round(storage_limit, 1),
        "memory_ok": memory_ok,
        "memory_mb": round(memory_mb, 2),
        "memory_limit_mb": round(memory_limit, 1),
        "memory_measured": peak_memory_bytes is not None,
        "margin": f"model <= {STORAGE_SHARE:.0%} of app storage; peak memory <= {RAM_SHARE:.0%} of RAM"
                  + ("" if peak_memory_bytes is not None else " (no measured peak: model size used as lower bound)"),
    }


# ---- latency estimate -------------------------------------------------------------------------------------------

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
    """Calibrated estimate (edgepack/calibration): per-op roofline with fitted efficiencies, overheads and device /
    runtime factors; the range is the leave-one-out error of the fit for this device and runtime."""
    from .calibration.estimate import calibrated

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


def estimate_file(path: str | Path, inputs: dict, profile: DeviceProfile | str, threads: int | None = None,
                  signature: str | None = None) -> LatencyEstimate:
    """Convenience: count the file's costs (ONNX or TFLite) and estimate them on a profile (by name or object)."""
    from .calibration.estimate import RUNTIME_OF_SUFFIX
    from .costs import count_costs

    profile = load_profile(profile) if isinstance(profile, str) else profile
    runtime = RUNTIME_OF_SUFFIX.get(Path(path).suffix, "onnxruntime")
    return estimate_latency(count_costs(path, inputs, signature), profile, threads, runtime)
