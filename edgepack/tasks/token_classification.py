"""Token classification (NER, POS): one label per token. Fidelity is token-label agreement with the source model and
the F1 of the artifact's entity spans against the source's (word-level spans, grouped as the transformers
pipeline's aggregation_strategy="simple" groups them); with tagged data, entity F1 against the gold tags too.
Unlabelled text works: agreement with the source needs no tags."""

from __future__ import annotations

import re

import numpy as np

from ..registry import TASKS
from .base import Accuracy, Task

_WORD = re.compile(r"\S+")


def split_tag(tag: str) -> tuple[str, str]:
    """("B" or "I", entity type) of a tag, as the pipeline reads it: a tag with no B-/I- prefix continues."""
    if tag[:2] in ("B-", "I-", "S-", "E-"):
        return ("B" if tag[0] in "BS" else "I"), tag[2:]
    return "I", tag


def group_spans(tags: list[str], positions: list[int]) -> set[tuple[str, int, int]]:
    """Entity spans (type, first position, last position) of a tag sequence, grouped as the pipeline's "simple"
    aggregation does: a tag joins the running group when its type matches and it does not begin (B-) a new one;
    groups of "O" are dropped. `positions[i]` is where tag i sits (its word)."""
    spans, current = set(), None  # current: [type, first, last]
    for tag, position in zip(tags, positions):
        begin, kind = split_tag(tag)
        if current is not None and kind == current[0] and begin != "B":
            current[2] = position
            continue
        if current is not None and current[0] != "O":
            spans.add(tuple(current))
        current = [kind, position, position]
    if current is not None and current[0] != "O":
        spans.add(tuple(current))
    return spans


def span_f1(found: list[set], expected: list[set]) -> float:
    """Micro F1 of exact span matches over all samples (1.0 when neither side has any span)."""
    hits = sum(len(f & e) for f, e in zip(found, expected))
    n_found, n_expected = sum(map(len, found)), sum(map(len, expected))
    if n_found + n_expected == 0:
        return 1.0
    return 2.0 * hits / (n_found + n_expected)


@TASKS.register("token-classification")
class TokenClassification(Task):
    optimum_task = "token-classification"
    auto_model = "AutoModelForTokenClassification"
    accuracy_details = ("token_agreement", "entity_f1", "entity_f1_gold_source", "entity_f1_gold_artifact")
    output_name = "logits"
    artifact_output = "logits"

    @classmethod
    def matches(cls, source) -> bool:
        return any(a.endswith("ForTokenClassification") for a in source.config.get("architectures") or [])

    def describe_output(self) -> str:
        return "logits: one score per token and label ([batch, tokens, labels]); labels in config.json id2label"

    @property
    def label_names(self) -> dict[int, str]:
        return {int(i): str(n) for i, n in (self.source.config.get("id2label") or {}).items()}

    def torch_head(self):
        from .torch_module import Logits

        return Logits()

    # --- outputs: per sample, one row per token position (the model's maximum), padded with -1 ---
    # Column 0 is the predicted label id; column 1 the token's word in the sample (-1: special token or padding).
    # Only the source's rows know the words (batch_outputs has the texts); compare() reads them for both sides.

    def _rows(self, logits: np.ndarray, words: np.ndarray | None = None) -> np.ndarray:
        rows = np.full((len(logits), self.max_length, 2), -1.0, dtype=np.float32)
        length = min(logits.shape[1], self.max_length)
        rows[:, :length, 0] = logits[:, :length].argmax(axis=-1)
        if words is not None:
            rows[:, :length, 1] = words[:, :length]
        return rows

    def word_ids(self, texts: list[str], max_length: int) -> np.ndarray:
        """Each token's whitespace-separated word in its text (-1 for special tokens and padding), from the fast
        tokenizer's character offsets: the same word whatever the tokenizer's own pre-splitting does."""
        enc = self.tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                             return_offsets_mapping=True, return_special_tokens_mask=True)
        out = np.full((len(texts), len(enc["input_ids"][0])), -1, dtype=np.int64)
        for row, (text, offsets, special) in enumerate(zip(texts, enc["offset_mapping"], enc["special_tokens_mask"])):
            starts = [m.start() for m in _WORD.finditer(text)]
            for col, ((start, end), is_special) in enumerate(zip(offsets, special)):
                if not is_special and end > start:
                    out[row, col] = int(np.searchsorted(starts, start, side="right")) - 1
        return out

    def batch_outputs(self, raw, feed, samples, max_length):
        return self._rows(raw.logits.numpy(), self.word_ids(samples, max_length))

    def source_outputs(self, raw, feed):
        return self._rows(raw.logits.numpy())

    def read_outputs(self, outputs, feed):
        logits = np.asarray(outputs["logits"], dtype=np.float32)
        return self._rows(logits[:, :feed["input_ids"].shape[1]])  # fixed-shape files pad the sequence

    # --- fidelity ---
    def _spans(self, labels: np.ndarray, words: np.ndarray) -> set:
        keep = words >= 0
        names = self.label_names
        return group_spans([names.get(int(i), str(int(i))) for i in labels[keep]], [int(w) for w in words[keep]])

    def gold_spans(self, tags: str, words_seen: int) -> set:
        """Spans of a sample's gold tags (one per word; label ids are read through id2label), over the words the
        model saw (truncation may cut a sentence)."""
        names = self.label_names
        tag_list = [names.get(int(t), t) if t.isdigit() else t for t in tags.split()][:words_seen]
        return group_spans(tag_list, list(range(len(tag_list))))

    def are_tags(self, labels: list[str]) -> bool:
        """Whether the data's labels are tags of this model (names in id2label, or label ids): a text file's
        sentiment column is not."""
        names = set(self.label_names.values())
        return all(t in names or (t.isdigit() and int(t) in self.label_names) for tags in labels for t in tags.split())

    def compare(self, reference, candidate, labels):
        words = reference[:, :, 1]
        real = words >= 0
        agree = (reference[:, :, 0] == candidate[:, :, 0]) & real
        source = [self._spans(r[:, 0], w) for r, w in zip(reference, words)]
        artifact = [self._spans(c[:, 0], w) for c, w in zip(candidate, words)]
        details = {"token_agreement": float(agree.sum() / max(real.sum(), 1)), "entity_f1": span_f1(artifact, source),
                   "samples": int(len(reference)), "tokens": int(real.sum()),
                   "entities_source": int(sum(map(len, source))), "entities_artifact": int(sum(map(len, artifact))),
                   "sentences_agreeing": int(sum(bool(a.sum() == r.sum()) for a, r in zip(agree, real)))}
        if labels is not None and not self.are_tags(labels):
            details["labels_ignored"] = "the data's labels are not one tag per word in the model's id2label"
        elif labels is not None:
            gold = [self.gold_spans(tags, int(w.max()) + 1) for tags, w in zip(labels, words)]
            details |= {"entity_f1_gold_source": span_f1(source, gold),
                        "entity_f1_gold_artifact": span_f1(artifact, gold), "entities_gold": int(sum(map(len, gold)))}
            details["entity_f1_gold_drop"] = details["entity_f1_gold_source"] - details["entity_f1_gold_artifact"]
        return Accuracy("token_agreement", details["token_agreement"], 1.0 - details["token_agreement"], details)
