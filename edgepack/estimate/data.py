"""The calibration data edgepack ships: published latencies (normalised) and the per-op costs of their networks.

`published.csv` is ../shared/device-calibration/measurements.csv reduced to what the fit needs, one row per usable
measurement, each keeping its source (benchmarks/calibration_rows.py regenerates it and says which rows were left out
and why). `model_costs.json` holds, per network and input size, its ops grouped as [kernel class, FLOPs, bytes,
count] at fp32 (benchmarks/calibration_models.py regenerates it).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
COSTS_FILE = HERE / "model_costs.json"
PUBLISHED_FILE = HERE / "published.csv"

# Networks of measurements.csv that can be rebuilt, as "name@input size" (sequence length for MobileBERT).
COST_KEYS = ["SqueezeNet-1.0@224", "SqueezeNet-1.0@227", "SqueezeNet-1.1@227", "MobileNetV1@224", "MobileNetV2@224",
             "MobileNetV3-Large@224", "MobileNetV3-Small@224", "ShuffleNetV2@224", "EfficientNet-B0@224",
             "EfficientNet-Lite0@224", "EfficientNet-Lite1@240", "EfficientNet-Lite2@260", "EfficientNet-Lite3@280",
             "EfficientNet-Lite4@300", "ResNet-18@224", "ResNet-50@224", "ResNet-101@224", "ViT-B/32@384",
             "DeiT-Tiny@224", "MobileBERT@384"]

PUBLISHED_COLUMNS = ["cost_key", "device", "cluster", "threads", "runtime", "precision", "latency_ms", "source"]


def fit_class(cost) -> str:
    """The class the fit gives its own efficiency: the kernel class, with dense 3x3 stride-1 convs apart."""
    return f"{cost.kernel_class}/{cost.variant}" if getattr(cost, "variant", "") else cost.kernel_class


def compact(costs) -> list[list]:
    """OpCosts -> [[fit class, flops, bytes, count], ...] (identical ops merged; order by class, then size)."""
    groups = Counter((fit_class(c), c.flops, c.bytes) for c in costs)
    return [[k, f, b, n] for (k, f, b), n in sorted(groups.items())]


@lru_cache(maxsize=1)
def model_costs() -> dict[str, list[list]]:
    return json.loads(COSTS_FILE.read_text())


@dataclass(frozen=True)
class Measurement:
    """One latency measurement the fit uses: a network (by cost key, or ops given directly) on one device."""

    device: str          # profile name
    runtime: str         # runtime family: ncnn, tflite, xnnpack, onnxruntime, ...
    threads: int
    precision: str       # arithmetic: fp32 / fp16 / int8
    latency_ms: float
    cost_key: str = ""
    cluster: str = "big"  # "little": pinned to the efficiency cores
    source: str = ""
    ops: tuple = ()      # compact op groups; empty = model_costs()[cost_key]

    def op_groups(self) -> list:
        return list(self.ops) if self.ops else model_costs()[self.cost_key]


def published() -> list[Measurement]:
    with PUBLISHED_FILE.open(newline="", encoding="utf-8") as f:
        return [Measurement(device=r["device"], runtime=r["runtime"], threads=int(r["threads"]),
                            precision=r["precision"], latency_ms=float(r["latency_ms"]), cost_key=r["cost_key"],
                            cluster=r["cluster"], source=r["source"]) for r in csv.DictReader(f)]
