"""Regenerate edgepack/estimate/published.csv from ../shared/device-calibration/measurements.csv.

Each published row is mapped to what the fit needs: the network's cost key (edgepack/estimate/data.py), the device
profile, the runtime family, the thread count and core cluster, and the arithmetic precision. Rows that cannot be
mapped are listed with the reason and left out. Assumptions (thread counts not stated, ...) are listed in
`ASSUMED` below.

Usage: .venv/bin/python benchmarks/calibration_rows.py [path/to/measurements.csv]
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgepack.estimate.data import PUBLISHED_COLUMNS, PUBLISHED_FILE  # noqa: E402
from edgepack.devices import load_profile  # noqa: E402

DEFAULT_CSV = ROOT.parent / "shared" / "device-calibration" / "measurements.csv"

DEVICES = {  # measurements.csv device (prefix) -> profile name
    "Raspberry Pi 4 Model B": "raspberry-pi-4", "Raspberry Pi 5": "raspberry-pi-5",
    "NVIDIA Jetson Nano": "jetson-nano", "NVIDIA Jetson Orin Nano": "jetson-orin-nano",
    "Khadas VIM3": "khadas-vim3", "Khadas VIM4": "khadas-vim4", "Khadas Edge2": "khadas-edge2",
    "Rockchip RK3588 board": "rk3588-android-board", "Radxa ROCK 5B": "radxa-rock-5b",
    "Orange Pi 5 Plus": "orange-pi-5-plus", "Google Pixel 2": "pixel-2", "Google Pixel 3a": "pixel-3a",
    "Google Pixel 3": "pixel-3", "Google Pixel 4": "pixel-4", "Xiaomi Mi 6": "xiaomi-mi-6",
    "Xiaomi Mi 11": "xiaomi-mi-11", "Apple iPhone XS": "iphone-xs", "Apple MacBook Pro 13 (M1": "macbook-pro-13-m1",
    "Apple MacBook Pro 15 (2019)": "macbook-pro-15-2019", "Intel Core i7-11800H laptop": "core-i7-11800h-laptop",
    "Dell Precision 5560": "dell-precision-5560", "Intel Core i7-12700K": "core-i7-12700k-desktop",
    "Snapdragon 8 Gen 2 phone": "snapdragon-8-gen-2-phone", "MediaTek Dimensity 9300": "dimensity-9300-phone",
    "Snapdragon X Elite laptop": "snapdragon-x-elite-laptop",
}

ASSUMED = """\
- Thread counts not stated: 4 on the 4-core Raspberry Pi 4/5 rows ("multi-threaded", "not stated");
  "OpenCV default (all cores)" = every core of the device.
- "TFLite zoo squeezenet_2018_04_27" is SqueezeNet 1.0 at 224x224; ResNet-v2-50/101 are costed as ResNet-50/101 v1
  (same convolutions, pre-activation order); EfficientNet-Lite as transformers' EfficientNet at the Lite
  width/depth/resolution (it keeps squeeze-excite: a few % more FLOPs).
- Runtime families: "tflite" = TFLite's own CPU kernels (every TFLite row predates XNNPACK as the default or names
  ruy), "tflite-2018" = the c.2018 ones, "xnnpack" = XNNPACK end2end-bench and ExecuTorch's XNNPACK delegate (what
  LiteRT runs today).
- ncnn "fp16 arithmetic" rows use the device's fp16 peak; the 2018 TFLite "post-training quantized" (weight-only
  hybrid) row computes in fp32.
"""


# Rows kept out of the fit although they map: (model, device prefix) -> why. Each contradicts the rest of the data by
# far more than the +-30-50% noise the shared README warns of, so a fit that keeps it bends every similar model.
IMPLAUSIBLE = {
    ("MobileBERT", "Google Pixel 3"): "17.6 GFLOP (seq 384, fp32) in 123 ms is 80% of the 4 big cores' fp32 peak with "
    "2019 TFLite kernels, where ResNet-101 on the same phone and runtime reaches 17%: one of the two is not a "
    "like-for-like fp32 measurement, and the bert_qa page says no more about how it was measured",
}


def cost_key(r: dict) -> str | None:
    model, variant, size = r["model"], r["variant"], re.match(r"(\d+)x", r["input"])
    side = size.group(1) if size else ""
    if model == "SqueezeNet":
        return f"SqueezeNet-1.1@{side}" if variant.startswith("1.1") else f"SqueezeNet-1.0@{side}"
    if model == "EfficientNet-Lite":
        return f"EfficientNet-Lite{variant[-1]}@{side}"
    if model in ("ResNet-v2-50", "ResNet-v2-101"):
        return f"ResNet-{model.rsplit('-', 1)[1]}@{side}"
    if model == "MobileBERT":
        return "MobileBERT@384"
    if model in ("MobileNetV1", "MobileNetV2", "MobileNetV3-Large", "MobileNetV3-Small", "ShuffleNetV2",
                 "EfficientNet-B0", "ResNet-18", "ResNet-50", "ViT-B/32", "DeiT-Tiny"):
        return f"{model}@{side}"
    return None


def runtime(r: dict) -> str | None:
    name = r["runtime"]
    if name.startswith("TensorFlow Lite") and "c.2018" in r["runtime_version"]:
        return "tflite-2018"
    for prefix, family in (("ncnn", "ncnn"), ("TensorFlow Lite", "tflite"),
                           ("XNNPACK", "xnnpack"), ("ExecuTorch", "xnnpack"), ("OpenCV", "opencv"), ("MNN", "mnn"),
                           ("PyTorch", "pytorch")):
        if name.startswith(prefix):
            return family
    return None


def precision(r: dict) -> str | None:
    text = r["precision"]
    if "NOT stated" in text or "ggml" in text:
        return None
    if "fp16 arithmetic" in text:
        return "fp16"
    if "weight-only" in text:
        return "fp32"
    return "int8" if re.search(r"int8|uint8|quantized", text) else "fp32"


def threads(r: dict, device: str) -> tuple[int, str]:
    text = r["threads"]
    cluster = "little" if "little" in text else "big"
    number = re.match(r"(\d+)", text)
    if number:
        return int(number.group(1)), cluster
    cpu = load_profile(device).cpu
    if "all cores" in text:
        return cpu.cores + cpu.efficiency_cores, cluster
    return 4, cluster  # "not stated" on the 4-core Raspberry Pis (see ASSUMED)


def convert(source: Path) -> tuple[list[dict], list[str]]:
    kept, dropped = [], []
    for line, r in enumerate(csv.DictReader(source.open(newline="", encoding="utf-8")), start=2):
        device = next((slug for prefix, slug in DEVICES.items() if r["device"].startswith(prefix)), None)
        key, family, prec = cost_key(r), runtime(r), precision(r)
        why = ("no rebuilt network" if key is None else "runtime not modelled" if family is None
               else "precision not stated" if prec is None else "device not mapped" if device is None
               else next((f"implausible: {w}" for (model, prefix), w in IMPLAUSIBLE.items()
                          if r["model"] == model and r["device"].startswith(prefix)), ""))
        if why:
            dropped.append(f"line {line}: {r['model']} on {r['device']} ({r['runtime']}): {why}")
            continue
        count, cluster = threads(r, device)
        kept.append({"cost_key": key, "device": device, "cluster": cluster, "threads": count, "runtime": family,
                     "precision": prec, "latency_ms": float(r["latency_ms"]), "source": r["source"]})
    return kept, dropped


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    kept, dropped = convert(source)
    with PUBLISHED_FILE.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, PUBLISHED_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    print(f"wrote {PUBLISHED_FILE.relative_to(ROOT)}: {len(kept)} rows; left out {len(dropped)}:")
    print("\n".join(f"  {d}" for d in dropped))


if __name__ == "__main__":
    main()
