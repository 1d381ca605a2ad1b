"""The CI matrix example twice, as a CI runner meets it: a first run with an empty artifact cache (every artifact
exported, checked and timed), then the same matrix again with the cache (only estimates, gates and reports), each
in a fresh `edgepack` process, timed wall clock. Also checks what the run must write (matrix.json, junit.xml valid
against tests/data/junit.xsd, summary.md, report.html, a pack folder per model) and that both runs give the same
figures. The issue's bar: the second run takes at most 15% of the first's wall time.

Usage (from a fresh clone, after the README's install):
  flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/matrix_cache.py
Writes benchmarks/matrix_cache.md.
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
MATRIX = ROOT / "examples" / "matrix" / "minilm.yaml"
EDGEPACK = [sys.executable, "-m", "edgepack.cli"]
FIGURES = ("accuracy", "size_mb", "host_p50_ms", "estimate_ms", "passed")


def _run(out: Path, cache: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([*EDGEPACK, "matrix", str(MATRIX), "--out", str(out)], env={**os.environ,
                          "EDGEPACK_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"edgepack matrix failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.returncode


def _check_outputs(out: Path) -> list[str]:
    import xmlschema

    xmlschema.XMLSchema(str(ROOT / "tests" / "data" / "junit.xsd")).validate(str(out / "junit.xml"))
    matrix = json.loads((out / "matrix.json").read_text())
    for name in ("summary.md", "report.html"):
        assert (out / name).is_file(), name
    for model in matrix["models"]:
        assert (out / model / "report.json").is_file() and (out / model / "manifest.json").is_file(), model
    return matrix["rows"]


def main() -> None:
    subprocess.run([sys.executable, str(ROOT / "examples" / "matrix" / "build_small_model.py")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first, code1 = _run(tmp / "first", tmp / "cache")
        second, code2 = _run(tmp / "second", tmp / "cache")
        rows1, rows2 = _check_outputs(tmp / "first"), _check_outputs(tmp / "second")
        same = [{k: r[k] for k in FIGURES} for r in rows1] == [{k: r[k] for k in FIGURES} for r in rows2]
        matrix = json.loads((tmp / "second" / "matrix.json").read_text())
        summary = (tmp / "second" / "summary.md").read_text()
    ratio = second / first
    cells = len(rows1)
    artifacts = matrix["cache"]["reused"]
    lines = [
        "# The CI matrix example, first run vs a second run with the artifact cache", "",
        f"Command: `flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/matrix_cache.py` (two fresh "
        f"`edgepack matrix examples/matrix/minilm.yaml` processes, one shared empty `$EDGEPACK_CACHE`), "
        f"on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}.", "",
        f"The matrix: {len(matrix['models'])} models x {len(matrix['targets'])} targets x "
        f"{len(matrix['precisions'])} precisions = {artifacts} artifacts, on {len(matrix['devices'])} devices = "
        f"{cells} cells.", "",
        "| run | wall time s | exit code | artifacts built | from the cache |", "|---|---|---|---|---|",
        f"| first (empty cache) | {first:.1f} | {code1} | {artifacts} | 0 |",
        f"| second (same matrix) | {second:.1f} | {code2} | {matrix['cache']['built']} | {artifacts} |", "",
        f"Second / first: **{ratio:.1%}** (the bar: at most 15%). Same figures in both runs (accuracy, size, host "
        f"p50, device estimates, verdicts): {'yes' if same else 'NO'}. junit.xml valid against tests/data/junit.xsd "
        "in both; matrix.json, summary.md, report.html and each model's pack folder written.", "",
        "What the second run still does: start Python and import the exporters' modules that plan() reads, resolve "
        "and plan both models, verify each cached file's sha256, copy the files into the pack folders, count the "
        "graphs' op costs, estimate and gate every device, and write the reports (report.html draws its plots).", "",
        "The second run's summary.md:", "", *summary.splitlines()]
    (ROOT / "benchmarks" / "matrix_cache.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:14]))


if __name__ == "__main__":
    main()
