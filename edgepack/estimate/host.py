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

from .. import devices
from ..devices import DeviceProfile
from ..memo import root

CACHE_VERSION = 3


cache_dir = root  # $EDGEPACK_CACHE, else ~/.cache/edgepack


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


def _gemm_session(threads: int, int8: bool = False, m: int = 256, k: int = 768, n: int = 768):
    """An onnxruntime session of one MatMul (a BERT-base-sized projection) and its feed: fp32 MatMul, or int8
    DynamicQuantizeMatMul (what onnxruntime's dynamic quantization produces)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        weights = [numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w"),
                   numpy_helper.from_array(np.full((n,), 0.01, np.float32), "scale"),
                   numpy_helper.from_array(np.zeros((n,), np.int8), "zero")]
        node = helper.make_node("DynamicQuantizeMatMul", ["a", "w", "scale", "zero"], ["c"], domain="com.microsoft")
    else:
        weights = [numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")]
        node = helper.make_node("MatMul", ["a", "w"], ["c"])
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"a": rng.standard_normal((m, k)).astype(np.float32)}
    return (lambda: session.run(None, feed)), 2 * m * k * n


def measure(cores: int) -> dict:
    """GEMM rates in onnxruntime (fp32, dynamic int8) on one core and on all cores, and all-core copy bandwidth."""
    result = {}
    for label, int8 in (("gemm", False), ("int8_gemm", True)):
        for suffix, threads in (("1_thread", 1), ("all_cores", cores)):
            run, flops = _gemm_session(threads, int8)
            # A neighbour's burst during the all-core run would be cached for good: take the best of a few tries,
            # retrying while all cores look no faster than one (the number is a peak, so the best is the estimate).
            rate = flops / _best_seconds(run, 20) / 1e9
            for _ in range(3 if threads > 1 else 0):
                if rate >= 1.3 * result[f"{label}_gflops_1_thread"]:
                    break
                time.sleep(0.5)
                rate = max(rate, flops / _best_seconds(run, 20) / 1e9)
            result[f"{label}_gflops_{suffix}"] = rate
    src = np.ones(64 * 2**20 // 4, np.float32)  # 64 MB: far beyond any cache
    dst = np.empty_like(src)
    result["copy_bandwidth_gbps"] = 2 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), 5) / 1e9
    return result


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


def _fitted(name: str) -> float:
    from .predict import shipped_fit

    return min(1.0, float(np.exp(shipped_fit()["params"]["shape"][name])))


def _peak_from_gemm(measured: dict, cores: int, label: str = "gemm") -> tuple[float, str]:
    """The peak that makes the calibrated model reproduce the GEMM rate measured with all cores: the model divides
    peak by the fitted matmul efficiency and scales cores by the fitted parallel efficiency, so invert both. The
    shipped profiles' peaks are theoretical; the host's are inferred from what onnxruntime reaches, which is what
    the estimate is for."""
    from .predict import shipped_fit

    parallel = 1 / (1 + np.exp(-shipped_fit()["params"]["shape"]["parallel"]))
    modelled_speedup = 1 + (cores - 1) * parallel
    rate = measured[f"{label}_gflops_all_cores"]
    per_core = rate / modelled_speedup / _fitted("eff:matmul")
    op = "DynamicQuantizeMatMul (int8)" if label == "int8_gemm" else "fp32 MatMul"
    how = (f"onnxruntime {op} 256x768x768 with all {cores} cores: {rate:.1f} GFLOP/s (1 thread: "
           f"{measured[f'{label}_gflops_1_thread']:.1f}), divided by the fitted matmul efficiency "
           f"{_fitted('eff:matmul'):.2f} and parallel speed-up {modelled_speedup:.2f}, x {cores} cores")
    return per_core * cores, how


def profile_from(ident: dict, measured: dict, path: Path) -> DeviceProfile:
    flags, cores = set(ident["flags"]), ident["cores"]
    x86 = ident["machine"] in ("x86_64", "AMD64", "i686")
    fp32, how_fp32 = _peak_from_gemm(measured, cores)
    int8, how_int8 = _peak_from_gemm(measured, cores, "int8_gemm")
    fp16_arith = "fphp" in flags or "asimdhp" in flags
    fp16 = fp32 * 2 if (fp16_arith and not x86) else fp32
    names = {"avx2": "avx2", "avx512f": "avx512f", "fma": "fma", "avx": "avx", "sse4_2": "sse4_2", "f16c": "f16c",
             "avx512_vnni": "avx512_vnni", "asimd": "neon", "asimddp": "dotprod", "i8mm": "i8mm"}
    features = sorted({names[f] for f in flags if f in names})
    how = f"measured on this machine at {measured['measured_at']}, cached in {path}"
    return DeviceProfile.model_validate({
        "name": "host", "display_name": f"This machine ({ident['model']}, {cores} cores)", "category": "laptop",
        "os": f"{platform.system()} {platform.release()}", "soc": ident["model"],
        "cpu": {"cores": cores, "core_type": ident["model"], "clock_ghz": 1.0, "isa": ident["machine"],
                "features": features},
        "default_threads": cores,
        "peak_gflops": {"fp32": round(fp32, 2), "fp16": round(fp16, 2), "int8": round(int8, 2)},
        "memory_bandwidth_gbps": round(measured["copy_bandwidth_gbps"] / _fitted("mem_eff"), 2),
        "ram_mb": max(1, (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2**20),
        "storage_gb": 100.0,
        "budgets": {"max_latency_ms": 1000, "max_size_mb": 10000, "max_memory_mb": 16000},
        "sources": {
            "cpu": f"/proc/cpuinfo model name and flags; cores = the CPUs this process may run on; clock_ghz is not "
                   f"read (1.0 placeholder, unused: peak_gflops is measured)",
            "default_threads": "all cores this process may use",
            "peak_gflops": f"fp32 = {how_fp32}; int8 = {how_int8} ({how}); fp16 = "
                           f"{'2 x ' if fp16 > fp32 else ''}fp32 (derived from the ISA flags)",
            "memory_bandwidth_gbps": f"numpy copy of a 64 MB array, read + write bytes / best time, divided by "
                                     f"the fitted memory efficiency ({how})",
            "ram_mb": "os.sysconf physical pages x page size",
            "storage_gb": "not measured (placeholder; the host is never storage-gated)",
            "budgets": "none meant: generous placeholders, the host is where edgepack runs, not a deployment target"},
        "notes": "Measured, not vendor figures; delete the cache file to measure again."})


def host_check(costs, measured_p50_ms: float, threads: int, runtime: str = "onnxruntime") -> dict:
    """The host estimate beside the host measurement of the same artifact: a check on the cost model itself."""
    from .predict import estimate_latency

    est = estimate_latency(costs, host_profile(), threads, runtime)
    ratio = est.estimate_ms / measured_p50_ms
    return {"estimate": est.estimate_ms, "low": est.low_ms, "high": est.high_ms, "measured_p50": measured_p50_ms,
            "estimate_over_measured": ratio, "measurement_in_range": est.low_ms <= measured_p50_ms <= est.high_ms,
            "note": f"host profile estimate ({est.note})"}


def load_profile(name_or_path: str) -> DeviceProfile:
    """`devices.load_profile`, plus `host`: this machine, measured once and cached."""
    return host_profile() if name_or_path == "host" else devices.load_profile(name_or_path)
