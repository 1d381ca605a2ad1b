"""The machine edgepack runs on, as a device profile named `host`.

Compute and bandwidth are measured once and cached (in $EDGEPACK_CACHE, else ~/.cache/edgepack, as host.json,
keyed by CPU model and core count): compute = a single-threaded float32 matrix product (numpy's BLAS) per core x the
cores; bandwidth = a large array copy with every core. int8/fp16 rates come from the ISA flags, as in the shipped
profiles. With this profile every pack run can set the host estimate beside the host measurement.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..devices import DeviceProfile

CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEPACK_CACHE") or Path.home() / ".cache" / "edgepack")


def cpu_identity() -> dict:
    """CPU model name, flags and the cores this process may use (cgroup/affinity aware)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"model": model or "unknown CPU", "flags": sorted(flags), "cores": cores, "machine": platform.machine()}


def _best_seconds(run, repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(cores: int) -> dict:
    """One-thread fp32 GFLOP/s (numpy matmul) and all-core copy bandwidth in GB/s."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    n = 512
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    with threadpool_limits(1):
        seconds = _best_seconds(lambda: a @ b, 10)
    gflops_per_core = 2 * n**3 / seconds / 1e9
    src = np.ones(64 * 2**20 // 4, np.float32)  # 64 MB: far beyond any cache
    dst = np.empty_like(src)
    seconds = _best_seconds(lambda: np.copyto(dst, src), 5)
    bandwidth = 2 * src.nbytes / seconds / 1e9  # read + write
    return {"gflops_per_core_fp32": gflops_per_core, "copy_bandwidth_gbps": bandwidth}


def host_profile(refresh: bool = False) -> DeviceProfile:
    """The host profile, measured on first use and then read from the cache."""
    ident = cpu_identity()
    path = cache_dir() / "host.json"
    cached = None
    if path.is_file() and not refresh:
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = None
    if not cached or cached.get("version") != CACHE_VERSION or cached.get("cpu") != {
            k: ident[k] for k in ("model", "cores")}:
        cached = {"version": CACHE_VERSION, "cpu": {k: ident[k] for k in ("model", "cores")},
                  "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **measure(ident["cores"])}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"host.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cached, indent=1))
        tmp.replace(path)
    return profile_from(ident, cached, path)


def profile_from(ident: dict, measured: dict, path: Path) -> DeviceProfile:
    flags, cores = set(ident["flags"]), ident["cores"]
    x86 = ident["machine"] in ("x86_64", "AMD64", "i686")
    fp32 = measured["gflops_per_core_fp32"] * cores
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})
    dotprod = "asimddp" in flags
    fp16_arith = "fphp" in flags or "asimdhp" in flags
    int8 = fp32 * (4 if vnni or dotprod else 2)
    fp16 = fp32 * 2 if (fp16_arith and not x86) else fp32
    features = sorted({"avx2": "avx2", "avx512f": "avx512f", "fma": "fma", "avx": "avx", "sse4_2": "sse4_2",
                       "f16c": "f16c", "avx512_vnni": "avx512_vnni", "asimd": "neon", "asimddp": "dotprod",
                       "i8mm": "i8mm"}.get(f, "") for f in flags} - {""})
    how = f"measured on this machine at {measured['measured_at']}, cached in {path}"
    return DeviceProfile.model_validate({
        "name": "host", "display_name": f"This machine ({ident['model']}, {cores} cores)", "category": "laptop",
        "os": f"{platform.system()} {platform.release()}", "soc": ident["model"],
        "cpu": {"cores": cores, "core_type": ident["model"], "clock_ghz": 1.0, "isa": ident["machine"],
                "features": features},
        "default_threads": cores,
        "peak_gflops": {"fp32": round(fp32, 2), "fp16": round(fp16, 2), "int8": round(int8, 2)},
        "memory_bandwidth_gbps": round(measured["copy_bandwidth_gbps"], 2),
        "ram_mb": max(1, (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2**20),
        "storage_gb": 100.0,
        "budgets": {"max_latency_ms": 1000, "max_size_mb": 10000, "max_memory_mb": 16000},
        "sources": {
            "cpu": f"/proc/cpuinfo model name and flags; cores = the CPUs this process may run on; clock_ghz is not "
                   f"read (1.0 placeholder, unused: peak_gflops is measured)",
            "default_threads": "all cores this process may use",
            "peak_gflops": f"fp32 = single-thread numpy float32 512x512 matmul GFLOP/s x cores ({how}); int8 = "
                           f"{'4' if vnni or dotprod else '2'} x fp32 and fp16 = {'2 x ' if fp16 > fp32 else ''}fp32 "
                           f"(derived from the ISA flags, as in the shipped profiles)",
            "memory_bandwidth_gbps": f"numpy copy of a 64 MB array, read + write bytes / best time ({how})",
            "ram_mb": "os.sysconf physical pages x page size",
            "storage_gb": "not measured (placeholder; the host is never storage-gated)",
            "budgets": "none meant: generous placeholders, the host is where edgepack runs, not a deployment target"},
        "notes": "Measured, not vendor figures; delete the cache file to measure again."})
