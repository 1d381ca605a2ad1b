"""Tiny random models of the catalog's architectures, built from small configs of the real models' model types
(seconds, offline), and small data files for the structured tasks. Not a test module: test files import it."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import SENTENCES, _tokenizer

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # CoNLL-2003's
ENTITY_WORDS = {"google": "ORG", "kid": "PER", "school": "LOC", "road": "LOC"}

# Small configs per model type: the real models' layer types, a few thousand parameters.
TEXT_CONFIGS = {
    "bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37),
    "distilbert": dict(dim=32, n_layers=2, n_heads=2, hidden_dim=37),
    "roberta": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                    pad_token_id=0, type_vocab_size=1),
}
IMAGE_CONFIGS = {
    "mobilenet_v2": dict(image_size=32, depth_multiplier=0.35, min_depth=4, finegrained_output=False),
    "efficientnet": dict(image_size=32, width_coefficient=0.1, depth_coefficient=0.1, hidden_dim=128,
                         depthwise_padding=[], num_hidden_layers=16),
    "vit": dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=37),
    "resnet": dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"),
}
AUTO_CLASSES = {"feature-extraction": "AutoModel", "text-classification": "AutoModelForSequenceClassification",
                "token-classification": "AutoModelForTokenClassification",
                "question-answering": "AutoModelForQuestionAnswering",
                "image-classification": "AutoModelForImageClassification"}


def build_tiny(folder: Path, model_type: str, task: str, labels: list[str] | None = None,
               max_length: int = 128) -> Path:
    """A random model of `model_type` for `task`, saved with its tokenizer or image processor; text models take
    `max_length` tokens (a recipe's sequence length)."""
    import torch
    import transformers
    from transformers import AutoConfig

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    extra = {}
    if labels:
        extra = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                     label2id={n: i for i, n in enumerate(labels)})
    if model_type in IMAGE_CONFIGS:
        from transformers import ViTImageProcessor

        config = AutoConfig.for_model(model_type, num_channels=3, **IMAGE_CONFIGS[model_type], **extra)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    else:
        # The vocabulary stays larger than the position table, as in real models (see _tokenizer).
        tok = _tokenizer(folder, size=max(160, max_length + 32))
        tok.model_max_length = max_length
        tok.save_pretrained(str(folder))
        if model_type == "distilbert":  # its tokenizer emits no token_type_ids (the model takes none)
            from transformers import DistilBertTokenizerFast

            DistilBertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True,
                                    model_max_length=max_length).save_pretrained(str(folder))
        # RoBERTa counts positions from padding_idx + 1: two more rows than the longest input.
        positions = max_length + 2 if model_type == "roberta" else max_length
        config = AutoConfig.for_model(model_type, vocab_size=tok.vocab_size, **TEXT_CONFIGS[model_type],
                                      max_position_embeddings=positions, **extra)
    model = getattr(transformers, AUTO_CLASSES[task]).from_config(config).eval()
    for module in model.modules():
        # transformers draws batch-norm scales ~N(0, 0.02) for some CNNs (EfficientNet); trained ones are ~1. Folded
        # into the convolutions, 0.02 scales make weights fp16 cannot hold and activations int8 cannot tell apart.
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.ones_(module.weight)
        # N(0, 0.02) convolutions shrink activations ~6x per layer in a narrow MobileNet: logits of 1e-26, which no
        # int8 scale holds. He initialisation keeps them O(1), as training does.
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n# tiny random {model_type} for {task}\n")
    return folder


def sentence_tags(text: str) -> list[str]:
    return [f"B-{ENTITY_WORDS[w]}" if w in ENTITY_WORDS else "O" for w in text.split()]


def write_conll(path: Path, copies: int = 2) -> Path:
    """CoNLL-2003-style columns (token, POS, chunk, NER tag) of the test sentences, a -DOCSTART- line first."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for i in range(copies):
        for text, _ in SENTENCES:
            words = text.split() + ([f"{w}" for w in ("google",)] if i else [])
            lines += [f"{w} NN I-NP {t}" for w, t in zip(words, sentence_tags(" ".join(words)))] + [""]
    path.write_text("\n".join(lines))
    return path


def write_tagged_jsonl(path: Path, ids: bool = False) -> Path:
    """JSONL rows of tokens and ner_tags (tag names, or their ids in NER_LABELS)."""
    rows = []
    for text, _ in SENTENCES:
        tags = sentence_tags(text)
        rows.append({"tokens": text.split(), "ner_tags": [NER_LABELS.index(t) for t in tags] if ids else tags})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def write_qa_jsonl(path: Path, answers: bool = True) -> Path:
    """Question + context rows over the test sentences; answers in the datasets library's SQuAD layout."""
    rows = []
    for i, (text, _) in enumerate(SENTENCES * 2):
        words = text.split()
        context = f"{text} and {SENTENCES[(i + 1) % len(SENTENCES)][0]}"
        row = {"question": f"what {words[0]} {words[1]}", "context": context}
        if answers:
            row["answers"] = {"text": [words[-1]], "answer_start": [len(text) - len(words[-1])]}
        rows.append(row)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path
