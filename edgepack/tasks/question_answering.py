"""Extractive question answering (SQuAD-style): question + context in, start and end scores per token out; the
answer is the best-scoring span of context tokens. Fidelity is exact match and token F1 of the artifact's answer
span against the source's; with gold answers in the data, both models' exact match and F1 against them too.
Data: JSONL with question and context (and optional answers), read by data_formats.py."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..registry import TASKS
from .base import Accuracy, Task

MAX_ANSWER_TOKENS = 15  # the transformers pipeline's max_answer_len default: answers are short spans


def best_span(start: np.ndarray, end: np.ndarray, allowed: np.ndarray, longest: int = MAX_ANSWER_TOKENS) -> tuple:
    """(first, last) token of the highest start + end score among context spans of at most `longest` tokens, as
    the pipeline decodes (its softmax adds one constant per vector, so the best span is the same)."""
    idx = np.flatnonzero(allowed)
    if len(idx) == 0:
        return (-1, -1)
    scores = start[idx][:, None] + end[idx][None, :]
    gap = idx[None, :] - idx[:, None]
    scores = np.where((gap >= 0) & (gap < longest), scores, -np.inf)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(idx[i]), int(idx[j])


def span_scores(found: tuple, expected: tuple) -> tuple[float, float]:
    """(exact match, token F1) of one answer span against another, both (first, last) token; SQuAD's F1 on
    tokens of one tokenization rather than on normalised words."""
    if found == expected:
        return 1.0, 1.0
    overlap = min(found[1], expected[1]) - max(found[0], expected[0]) + 1
    if overlap <= 0 or found[0] < 0 or expected[0] < 0:
        return 0.0, 0.0
    precision, recall = overlap / (found[1] - found[0] + 1), overlap / (expected[1] - expected[0] + 1)
    return 0.0, 2 * precision * recall / (precision + recall)


@TASKS.register("question-answering")
class QuestionAnswering(Task):
    optimum_task = "question-answering"
    auto_model = "AutoModelForQuestionAnswering"
    accuracy_details = ("exact_match", "f1", "exact_match_gold_source", "exact_match_gold_artifact",
                        "f1_gold_source", "f1_gold_artifact")
    output_name = "start_logits"
    artifact_output = "span_logits"  # files converted from PyTorch: [batch, tokens, 2] (start, end)

    @classmethod
    def matches(cls, source) -> bool:
        return any(a.endswith("ForQuestionAnswering") for a in source.config.get("architectures") or [])

    def describe_output(self) -> str:
        return ("start_logits, end_logits (ONNX) or span_logits [batch, tokens, 2] (converted files): the answer is "
                "the context span with the highest start + end score")

    @property
    def input_names(self) -> tuple[str, ...]:
        # BERT-style models mark the context as segment 1; without token_type_ids they would read it as question.
        names = ("input_ids", "attention_mask")
        return names + ("token_type_ids",) if "token_type_ids" in self.tokenizer.model_input_names else names

    def workload_lengths(self, samples, max_length):
        """The plan calls this on the evaluation data first: plain text is not question-answering data."""
        if not all(hasattr(s, "question") for s in samples):
            raise DataError("question-answering evaluates on question + context pairs",
                            "pass --data a JSONL file with question and context fields (and optional answers)")
        # The tokenizer truncates contexts only: a question that fills the window leaves no answer to find.
        longest = max(len(self.tokenizer(s.question)["input_ids"]) for s in samples)
        if longest + 2 > max_length:  # the question, a separator, at least one context token
            raise DataError(f"a question of the data has {longest} tokens, leaving no room for its context in "
                            f"{max_length}", "pass a larger --sequence-length, or shorter questions")
        return super().workload_lengths(samples, max_length)

    def encode(self, samples, max_length, pad_to_max=False):
        # Plain strings (the ONNX fusion's probe texts) are their own question and context.
        questions = [getattr(s, "question", s) for s in samples]
        enc = self.tokenizer(questions, [getattr(s, "context", s) for s in samples], truncation="only_second",
                             max_length=max_length, padding="max_length" if pad_to_max else True, return_tensors="np")
        return {k: v.astype(np.int64) for k, v in enc.items()}

    def latency_inputs(self, samples, seq_len):
        """One question with its context repeated until the input fills `seq_len` tokens."""
        from ..data_formats import QAPair

        pair = samples[0]
        while True:
            feed = self.encode([pair], seq_len, pad_to_max=True)
            if int(feed["attention_mask"].sum()) >= seq_len:
                return feed
            pair = QAPair(pair.question, f"{pair.context} {pair.context}")

    def torch_module(self):
        import transformers

        from .torch_module import SegmentModule, SpanLogits, TextModule

        model = self._load_torch(getattr(transformers, self.auto_model), attn_implementation="eager")
        if "token_type_ids" in self.input_names:
            return SegmentModule(model, SpanLogits(), self.artifact_output).eval()
        return TextModule(model, SpanLogits(), self.artifact_output).eval()

    # --- outputs: per sample, one row per token position (the model's maximum) ---
    # Columns: start score, end score; the source's rows add the context mask (1: a context token an answer may
    # start or end on) and the gold answer mask (1: inside the first gold answer; -1 everywhere: no gold answer in
    # what the model saw). compare() reads them for both sides: the tokenization is the same.

    def _rows(self, start: np.ndarray, end: np.ndarray, columns: int = 2) -> np.ndarray:
        rows = np.zeros((len(start), self.max_length, columns), dtype=np.float32)
        length = min(start.shape[1], self.max_length)
        rows[:, :length, 0], rows[:, :length, 1] = start[:, :length], end[:, :length]
        return rows

    def batch_outputs(self, raw, feed, samples, max_length):
        rows = self._rows(raw.start_logits.numpy(), raw.end_logits.numpy(), columns=4)
        self._mark_context_and_gold(samples, max_length, rows)
        return rows

    def _mark_context_and_gold(self, batch, max_length: int, rows: np.ndarray) -> None:
        enc = self.tokenizer([s.question for s in batch], [s.context for s in batch], truncation="only_second",
                             max_length=max_length, padding=True, return_offsets_mapping=True)
        for i, pair in enumerate(batch):
            context = [t for t, seq in enumerate(enc.sequence_ids(i)) if seq == 1 and t < self.max_length]
            rows[i, context, 2] = 1.0
            rows[i, :, 3] = -1.0
            answer = next(iter(pair.answers), None)
            if answer is None:
                continue
            start = answer["answer_start"]
            if start < 0 or pair.context[start:start + len(answer["text"])] != answer["text"]:
                start = pair.context.find(answer["text"])
            if start < 0:
                continue
            stop = start + len(answer["text"])
            inside = [t for t in context if enc["offset_mapping"][i][t][0] < stop and enc["offset_mapping"][i][t][1] > start]
            if inside:  # else the answer was truncated away: no gold span for this sample
                rows[i, :, 3] = 0.0
                rows[i, inside, 3] = 1.0

    def source_outputs(self, raw, feed):
        return self._rows(raw.start_logits.numpy(), raw.end_logits.numpy())

    def read_outputs(self, outputs, feed):
        n = feed["input_ids"].shape[1]  # fixed-shape files pad the sequence
        if "span_logits" in outputs:
            both = np.asarray(outputs["span_logits"], dtype=np.float32)[:, :n]
            return self._rows(both[..., 0], both[..., 1])
        return self._rows(np.asarray(outputs["start_logits"], dtype=np.float32)[:, :n],
                          np.asarray(outputs["end_logits"], dtype=np.float32)[:, :n])

    # --- fidelity ---
    def compare(self, reference, candidate, labels):
        allowed = reference[:, :, 2] > 0
        source = [best_span(r[:, 0], r[:, 1], a) for r, a in zip(reference, allowed)]
        artifact = [best_span(c[:, 0], c[:, 1], a) for c, a in zip(candidate, allowed)]
        em, f1 = np.array([span_scores(a, s) for a, s in zip(artifact, source)]).reshape(-1, 2).T
        details = {"exact_match": float(em.mean()), "f1": float(f1.mean()), "samples": int(len(reference)),
                   "start_max_abs_diff": float(np.abs(reference[:, :, 0] - candidate[:, :, 0])[allowed].max(initial=0))}
        gold = [(int(np.flatnonzero(g > 0)[0]), int(np.flatnonzero(g > 0)[-1])) if (g > 0).any() else None
                for g in reference[:, :, 3]]
        scored = [i for i, g in enumerate(gold) if g is not None]
        if scored:
            for side, spans in (("source", source), ("artifact", artifact)):
                em_gold, f1_gold = np.array([span_scores(spans[i], gold[i]) for i in scored]).T
                details[f"exact_match_gold_{side}"] = float(em_gold.mean())
                details[f"f1_gold_{side}"] = float(f1_gold.mean())
            details["gold_samples"] = len(scored)
            details["f1_gold_drop"] = details["f1_gold_source"] - details["f1_gold_artifact"]
        # Exact match with the source is the headline: an app shows the answer span, so any change is visible.
        return Accuracy("exact_match", details["exact_match"], 1.0 - details["exact_match"], details)
