"""The mobilenet-v2 recipe on a trained image classifier: no ImageNet model or labelled photo set is available offline,
so benchmarks/build_image_classifier.py trains a small MobileNetV2 on scikit-learn's real digits (built first if
missing), and this packs it with every target the recipe names on its held-out digits. 259 of the 359 held-out
images are scored (`--limit 259`), the other 100 calibrate int8-static: never tuned on the images it is scored on.

Usage (from a fresh clone, after the README's install):
  flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/image_classifier.py
Writes benchmarks/image_classifier.md.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from build_image_classifier import ensure  # noqa: E402
from recipes_offline import _pack  # noqa: E402 - the same fresh-process pack

LIMIT = 259


def main() -> None:
    built = ensure()
    info = json.loads((built / "train.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        extra = ("--data", str(built / "heldout"), "--limit", str(LIMIT))
        report, code, seconds = _pack(str(built / "model"), "mobilenet-v2", Path(tmp) / "digits", *extra)
    lines = ["# mobilenet-v2 recipe on a MobileNetV2 trained on scikit-learn's digits", "",
             "A real model trained here (not an ImageNet model): MobileNetV2, depth multiplier 0.5, 32x32 RGB input, "
             f"{info['parameters']:,} parameters, trained {info['epochs']} epochs ({info['train_seconds']:.0f} s) on "
             f"{info['train_images']} of sklearn's 1,797 8x8 digits upscaled to 32x32; held-out accuracy "
             f"{info['heldout_accuracy']:.4f} on the other {info['heldout_images']} "
             "(`benchmarks/build_image_classifier.py`).", "",
             f"Command: `flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/image_classifier.py` on "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}: `edgepack pack MODEL --recipe mobilenet-v2 --data heldout --limit {LIMIT}` "
             f"(all the recipe's targets and precisions). Exit code {code}, {seconds:.0f} s wall; "
             f"{report['data']['samples']} scored images, the other {info['heldout_images'] - LIMIT} held-out ones "
             "calibrate int8-static.", "",
             "| target | precision | size MB | top-1 agreement | top-5 overlap | accuracy (source, artifact) | "
             "host p50 ms | passed |", "|---|---|---|---|---|---|---|---|"]
    for a in report["artifacts"]:
        size = f"| {a['target']} | {a['precision']} | {a['size_bytes'] / 1e6:.2f} |"
        if not a["accuracy"]:  # Core ML: built and checked, not run on Linux
            lines.append(f"{size} not run here | | | | {a['passed']} (file checks) |")
            continue
        d = a["accuracy"]["details"]
        lines.append(f"{size} {d['top1_agreement']:.4f} | {d['top5_overlap']:.4f} | {d['accuracy_source']:.4f}, "
                     f"{d['accuracy_artifact']:.4f} | {a['latency_ms']['host']['p50']:.2f} | {a['passed']} |")
    lines += ["", "Notes from the report:", "", *[f"- {n}" for n in report["notes"]], ""]
    (ROOT / "benchmarks" / "image_classifier.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
