"""Text classification: fidelity is top-1 agreement with the source model, and accuracy when labels are given."""

from __future__ import annotations

import numpy as np

from ..registry import TASKS
from .base import Accuracy, Task


@TASKS.register("text-classification")
class TextClassification(Task):
    optimum_task = "text-classification"
    auto_model = "AutoModelForSequenceClassification"
    accuracy_details = ("top1_agreement", "accuracy_source", "accuracy_artifact")
    output_name = "logits"

    @classmethod
    def matches(cls, source) -> bool:
        return any(a.endswith("ForSequenceClassification") for a in source.config.get("architectures") or [])

    def describe_output(self) -> str:
        return "logits: one score per class; labels in config.json id2label"

    def source_outputs(self, raw, feed):
        return raw.logits.numpy()

    artifact_output = "logits"

    def torch_head(self):
        from .torch_module import Logits

        return Logits()

    def read_outputs(self, outputs, feed):
        return np.asarray(outputs["logits"], dtype=np.float32)

    def label_ids(self, labels: list[str]) -> np.ndarray | None:
        """Map data labels to class ids via the config's id2label (case-insensitive), or integer labels as-is."""
        id2label = self.source.config.get("id2label") or {}
        by_name = {str(name).lower(): int(i) for i, name in id2label.items()}
        if all(label.lower() in by_name for label in labels):
            return np.array([by_name[label.lower()] for label in labels])
        if all(label.isdigit() and int(label) < self.source.config.get("num_labels", len(id2label) or 2)
               for label in labels):
            return np.array([int(label) for label in labels])
        return None

    def agreement_by_class(self, ref_top: np.ndarray, cand_top: np.ndarray, most: int = 20) -> dict:
        """{class name: [samples where the artifact agrees, samples]} by the source's prediction, for report.html:
        the classes the source predicts most often only, so 1000-class models keep report.json small."""
        names = {int(i): str(n) for i, n in (self.source.config.get("id2label") or {}).items()}
        ids, totals = np.unique(ref_top, return_counts=True)
        top = ids[np.argsort(-totals, kind="stable")][:most]
        return {names.get(int(c), str(int(c))): [int(np.sum(cand_top[ref_top == c] == c)), int(np.sum(ref_top == c))]
                for c in top}

    def compare(self, reference, candidate, labels):
        ref_top, cand_top = reference.argmax(axis=1), candidate.argmax(axis=1)
        details = {"top1_agreement": float(np.mean(ref_top == cand_top)), "samples": int(len(ref_top)),
                   "logits_max_abs_diff": float(np.abs(reference - candidate).max())}
        details["agreement_by_class"] = self.agreement_by_class(ref_top, cand_top)
        truth = self.label_ids(labels) if labels is not None else None
        if truth is not None:
            details["accuracy_source"] = float(np.mean(ref_top == truth))
            details["accuracy_artifact"] = float(np.mean(cand_top == truth))
            details["accuracy_drop"] = details["accuracy_source"] - details["accuracy_artifact"]
            details["macro_f1_artifact"] = macro_f1(truth, cand_top)  # what `compare` ranks beside accuracy
        elif labels is not None:
            details["labels_ignored"] = "the data's labels do not match the model's id2label names"
        # Agreement, not accuracy, is the headline: errors that cancel out keep accuracy but change predictions.
        return Accuracy("top1_agreement", details["top1_agreement"], 1.0 - details["top1_agreement"], details)


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The mean over the true classes of each class's F1: a rare class counts as much as a common one."""
    scores = []
    for cls in np.unique(truth):
        tp = float(np.sum((predicted == cls) & (truth == cls)))
        denominator = float(np.sum(predicted == cls) + np.sum(truth == cls))
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))
