"""Host latency (p50/p90 after warm-up) and peak memory, each artifact in its own clean process."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ExportError


def measure(path: Path, inputs: dict[str, np.ndarray], threads: int, warmup: int = 10, runs: int = 100) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        feed = Path(tmp) / "inputs.npz"
        np.savez(feed, **inputs)
        return run_probe("edgepack.bench.probe", path, feed, threads, warmup, runs)


def run_probe(module: str, path: Path, *args) -> dict:
    """`python -m module path *args` in a fresh process; its last stdout line is the JSON result."""
    done = subprocess.run([sys.executable, "-m", module, str(path), *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"{path.name}: the latency run failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share), not all the machine has."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_name() -> str:
    """The host CPU's model name, for the report."""
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
