"""Builds the matrix example's small local model: all-MiniLM-L6-v2 (from its PyPI package, offline) cut to its first
two layers, saved as a sentence-transformers folder in examples/matrix/build/minilm-l2 (a stand-in for a team's own
fine-tuned model folder). Run once before `edgepack matrix examples/matrix/minilm.yaml`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

LAYERS = 2
DEST = Path(__file__).parent / "build" / f"minilm-l{LAYERS}"


def main() -> None:
    from transformers import AutoModel

    from edgepack.source import resolve

    source = resolve("sentence-transformers/all-MiniLM-L6-v2", None)
    if DEST.exists():
        shutil.rmtree(DEST)
    shutil.copytree(source.path, DEST, ignore=shutil.ignore_patterns("model.safetensors", ".gitattributes"))
    model = AutoModel.from_pretrained(source.path)
    model.encoder.layer = model.encoder.layer[:LAYERS]
    model.config.num_hidden_layers = LAYERS
    model.save_pretrained(DEST, safe_serialization=True)  # config.json too, with the new depth
    print(f"wrote {DEST} ({LAYERS} of 6 layers of {source.model_id}, {source.revision})", file=sys.stderr)


if __name__ == "__main__":
    main()
