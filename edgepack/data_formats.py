"""Evaluation data shaped for structured tasks: tagged sentences (CoNLL columns, or JSONL with tokens and tags) for
token classification, and question + context pairs (JSONL, SQuAD-style) for extractive question answering.

Samples stay strings, as every stage of the pipeline expects: a tagged sentence is its words joined by single
spaces (its tags, one per word, are its label, joined the same way); a question-answering sample is a `QAPair`, a
string that also carries its question, context and answers."""

from __future__ import annotations

import json
from pathlib import Path

CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".bio")
_TAG_NAMES = ("tags", "ner_tags", "labels", "pos_tags")


class QAPair(str):
    """One question-answering sample. The string is "question\\ncontext" (what reports and sets of samples see);
    answers are [{"text", "answer_start"}] (answer_start -1 when the data gives none)."""

    question: str
    context: str
    answers: list

    def __new__(cls, question: str, context: str, answers: list | None = None):
        pair = super().__new__(cls, f"{question}\n{context}")
        pair.question, pair.context, pair.answers = question, context, list(answers or [])
        return pair

    def __reduce__(self):  # pickled with its parts, not as a plain string
        return QAPair, (self.question, self.context, self.answers)


def read_conll(path: Path, encoding: str) -> list[tuple[list[str], list[str]]]:
    """Sentences of a CoNLL-style file: one token a line, its tag in the last column, a blank line between
    sentences; -DOCSTART- lines and comments (#) are skipped."""
    from .errors import DataError

    sentences, words, tags = [], [], []
    try:
        lines = path.read_text(encoding=encoding).splitlines()
    except (OSError, UnicodeError) as exc:
        raise DataError(f"{path}: cannot read as {encoding} ({exc})") from None
    for number, line in enumerate(lines + [""], 1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        if len(fields) < 2:
            raise DataError(f"{path}: line {number} has no tag column", "CoNLL lines are: token ... tag")
        words.append(fields[0])
        tags.append(fields[-1])
    return sentences


def tagged_rows(rows: list[dict], path: Path) -> list[tuple[list[str], list[str] | None]] | None:
    """(words, tags) of JSONL rows holding a `tokens` list (tags optional); None when the rows have none."""
    from .errors import DataError

    if not rows or not isinstance(rows[0].get("tokens"), list):
        return None
    tag_key = next((k for k in _TAG_NAMES if isinstance(rows[0].get(k), list)), None)
    out = []
    for number, row in enumerate(rows, 1):
        words = [str(w) for w in row.get("tokens") or []]
        tags = [str(t) for t in row.get(tag_key) or []] if tag_key else None
        if tags is not None and len(tags) != len(words):
            raise DataError(f"{path}: row {number} has {len(words)} tokens but {len(tags)} {tag_key}")
        if words:
            out.append((words, tags))
    return out


def qa_rows(rows: list[dict]) -> list[QAPair] | None:
    """QAPairs of JSONL rows with question and context (and optional SQuAD-style answers); None when the rows are
    not question-answering data."""
    if not rows or not {"question", "context"} <= set(rows[0]):
        return None
    pairs = []
    for row in rows:
        answers = row.get("answers") or []
        if isinstance(answers, dict):  # the datasets library's SQuAD layout: {"text": [...], "answer_start": [...]}
            answers = [{"text": t, "answer_start": s}
                       for t, s in zip(answers.get("text", []), answers.get("answer_start", []))]
        answers = [{"text": a, "answer_start": -1} if isinstance(a, str) else
                   {"text": str(a.get("text", "")), "answer_start": int(a.get("answer_start", -1))} for a in answers]
        if str(row["question"]).strip() and str(row["context"]).strip():
            pairs.append(QAPair(str(row["question"]), str(row["context"]), [a for a in answers if a["text"]]))
    return pairs


def answers_label(pair: QAPair) -> str:
    return json.dumps([a["text"] for a in pair.answers])
