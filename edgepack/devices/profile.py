"""Device profiles (`devices/*.yaml`): the typed schema, loading by name, path or ssh:// URL, and listing.

A profile describes the CPU a runtime uses on the device. On big.LITTLE chips `cpu.cores` are the performance cores
(the ones benchmarks and runtimes pin to); `peak_gflops` covers those cores, and the efficiency cores are listed
apart and left out of the estimate. Every figure group carries a citation in `sources`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import Gates, Strict, list_names, load_named

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
    """Leave-one-out error of the calibrated estimate (see edgepack/estimate/fit.py: error_summary)."""

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
    """A shipped profile by name (`raspberry-pi-4`), any profile YAML by path, or an ssh:// device URL (its
    `profile=`; `edgepack measure` runs on the device itself). The host, measured, is
    `edgepack.estimate.host.load_profile`'s to add: measuring it is the estimate's business."""
    if name_or_path.startswith("ssh://"):
        from .ssh import parse_url

        return load_profile(parse_url(name_or_path).profile)
    return load_named("devices", name_or_path, DeviceProfile)


def list_profiles() -> list[str]:
    return list_names("devices")
