"""Latency and peak memory of one artifact, measured in a fresh process that imports only the runtime.

Run as `python -m edgepack.bench.probe ARTIFACT INPUTS.npz THREADS WARMUP RUNS`; prints one JSON line. A separate
process keeps PyTorch's memory and threads out of the numbers.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np


def _status_mb(field: str) -> float:
    # VmHWM (peak RSS) starts afresh at exec; getrusage's ru_maxrss would carry over the forking parent's peak.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6  # kB -> decimal MB
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, kB elsewhere
    return (maxrss if sys.platform == "darwin" else maxrss * 1024) / 1e6


def measure(path: str, inputs: dict, threads: int, warmup: int, runs: int) -> dict:
    from ..registry import RUNTIMES
    from ..runtimes import runtime_for

    runtime = RUNTIMES.get(runtime_for(path))
    baseline = _status_mb("VmRSS")
    session = runtime(path, threads)
    for _ in range(warmup):
        session.run(inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(inputs)
        times.append((time.perf_counter() - start) * 1000)
    peak = _status_mb("VmHWM")
    counts, edges = np.histogram(times, bins=min(20, max(runs // 5, 1)))  # for report.html's plot, kept small
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
            "mean": float(np.mean(times)), "min": float(np.min(times)), "runs": runs, "warmup": warmup,
            "threads": threads, "runtime": runtime.name, "runtime_version": runtime.version(),
            "peak_rss_mb": peak, "baseline_rss_mb": baseline, "memory_mb": max(peak - baseline, 0.0),
            "histogram": {"edges": [float(f"{e:.5g}") for e in edges], "counts": counts.tolist()}}


if __name__ == "__main__":
    artifact, inputs_path, threads, warmup, runs = sys.argv[1:6]
    with np.load(inputs_path) as data:
        feed = {k: data[k] for k in data.files}
    print(json.dumps(measure(artifact, feed, int(threads), int(warmup), int(runs))))
