"""Shared fixtures: tiny random models built and saved locally (seconds, offline), small data files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = ("i love hate the a car cars self driving driverless is are not never good bad great awful trust "
         "google future safe risk money lazy waste idea ride kid school would will can you we they it this "
         "that ever no yes think really so very want new tech road people drive").split()
SENTENCES = [
    ("i love the idea of self driving cars", "positive"), ("driverless cars are a waste of money", "negative"),
    ("i would never trust a self driving car", "negative"), ("the future is driverless and safe", "positive"),
    ("they are cars", "neutral"), ("google cars drive on the road", "neutral"),
    ("this is a great idea really", "positive"), ("awful and lazy tech", "negative"),
    ("we think it can drive", "neutral"), ("you want a new car", "neutral"),
    ("very good ride to school", "positive"), ("bad risk for people", "negative"),
]


def _tokenizer(folder: Path, size: int = 160):
    from transformers import BertTokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w in WORDS if w not in letters]
    vocab += list(letters) + [f"##{c}" for c in letters]
    # Larger than max_position_embeddings, as in real models (onnxruntime's fusion tells the tables apart by size).
    vocab += [f"[unused{i}]" for i in range(size - len(vocab))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=128)
    tok.save_pretrained(str(folder))
    return tok


def _bert_config(tok, **extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=37, max_position_embeddings=128, **extra)


def build_tiny_embedder(folder: Path, sentence_transformers_layout: bool = True) -> Path:
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    tok = _tokenizer(folder)
    model = BertModel(_bert_config(tok)).eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    if sentence_transformers_layout:
        (folder / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
             "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128,
                                                                      "do_lower_case": False}))
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny test embedder\n")
    return folder


def build_tiny_classifier(folder: Path) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    tok = _tokenizer(folder)
    labels = ["negative", "neutral", "positive"]
    config = _bert_config(tok, num_labels=3, id2label=dict(enumerate(labels)),
                          label2id={n: i for i, n in enumerate(labels)})
    BertForSequenceClassification(config).eval().save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# tiny test classifier\n")
    return folder


@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory) -> Path:
    return build_tiny_embedder(tmp_path_factory.mktemp("models") / "tiny-embedder")


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("models") / "tiny-classifier")


@pytest.fixture(scope="session")
def tweets_csv(tmp_path_factory) -> Path:
    import csv

    path = tmp_path_factory.mktemp("data") / "tweets.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentiment", "text"])
        for i in range(4):
            for text, label in SENTENCES:
                writer.writerow([label, text if i == 0 else f"{text} {WORDS[i]}"])
    return path


@pytest.fixture
def run_cli(capsys):
    """Run the real CLI entry point in-process; returns (exit code, stdout, stderr)."""
    from edgepack.cli import main

    def run(*args: str):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


PYTHON = sys.executable


IMAGE_CLASSES = ("circle", "stripes", "noise")


def build_tiny_cnn(folder: Path) -> Path:
    """A tiny ResNet image classifier (convolutions, batch norm, pooling) with its image processor, 32x32 RGB."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                          num_labels=3, id2label=dict(enumerate(IMAGE_CLASSES)),
                          label2id={n: i for i, n in enumerate(IMAGE_CLASSES)})
    ResNetForImageClassification(config).eval().save_pretrained(str(folder), safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny test CNN\n")
    return folder


def write_images(folder: Path, per_class: int = 6) -> Path:
    """PNG images in one subfolder per class (the ImageFolder layout), drawn from a fixed seed."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    for label in IMAGE_CLASSES:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            if label == "circle":
                base = (((yy - 20) ** 2 + (xx - 20) ** 2) < (8 + i) ** 2) * 200.0
            elif label == "stripes":
                base = ((xx // (2 + i % 3)) % 2) * 200.0
            else:
                base = rng.uniform(0, 255, (40, 40))
            pixels = np.stack([base, base[::-1], base.T], axis=-1) + rng.normal(0, 10, (40, 40, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / label / f"{i}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_cnn(tmp_path_factory) -> Path:
    return build_tiny_cnn(tmp_path_factory.mktemp("models") / "tiny-cnn")


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("data") / "images")
