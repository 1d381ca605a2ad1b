"""Unlabelled text for calibration and distillation: the rows of the data file (--data or the recipe's) that are
not evaluation samples, so that an artifact is never tuned on the texts it is scored on."""

from __future__ import annotations

FALLBACK = "the evaluation texts"


def training_texts(p) -> tuple[list[str], str]:
    """(texts, where they come from). Falls back to the evaluation texts, and says so, when the file has no others
    (e.g. --data without --limit)."""
    from .. import data as data_mod

    options = p.options
    spec = options.data or (p.recipe.data if p.recipe else None)
    if spec is None:
        return list(p.dataset.texts), f"{FALLBACK} (no data file)"
    overrides = {"encoding": options.data_encoding, "text_column": options.text_column}
    update = {"limit": None} | {k: v for k, v in overrides.items() if v is not None}
    corpus = data_mod.load(spec.model_copy(update=update))
    evaluation = set(p.dataset.texts)
    rest = [t for t in corpus.texts if t not in evaluation]
    if not rest:
        return list(p.dataset.texts), f"{FALLBACK} ({corpus.origin} has no others: pass --limit to keep some)"
    return rest, f"{len(rest):,} rows of {corpus.origin} that are not evaluation samples"


def tuned_on_evaluation(what: str, origin: str) -> list[str]:
    """The report's note when `what` fell back to the evaluation texts: accuracy measured on them is optimistic."""
    if not origin.startswith(FALLBACK):
        return []
    return [f"{what} on {origin}: the accuracy of those artifacts is measured on the very samples they were tuned "
            "on, so it is optimistic"]
