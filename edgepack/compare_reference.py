"""`compare --metric fidelity`: rank by agreement with one reference model when the data has no labels. The
reference (the first candidate's source model, PyTorch fp32; a distilled candidate's teacher) labels the data, and
every candidate is then scored on those labels as on real ones:

- a classifier's label is the reference's predicted class, so the score is top-1 agreement with the reference;
- an embedder's label is the k-means cluster of the reference's embedding, so the score is how well a probe on the
  candidate's embeddings recovers the reference's clusters (the neighbourhoods a search or clustering app sees).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .config import DataSpec
from .progress import Progress

LABELS_FILE = "reference-labels.csv"
MAX_CLUSTERS = 8
MIN_CLUSTER = 3  # the probe cross-validates in min(5, smallest class) folds: at least 3 here


def clusters(embeddings: np.ndarray, seed: int = 0) -> list[str]:
    """k-means on the unit-normalised embeddings (cosine neighbourhoods), with the most clusters (2 to 8, about
    one per 25 samples) whose smallest still has MIN_CLUSTER samples."""
    from sklearn.cluster import KMeans

    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    for k in range(max(2, min(MAX_CLUSTERS, len(x) // 25)), 1, -1):
        ids = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
        if np.bincount(ids).min() >= MIN_CLUSTER:
            return [f"cluster-{i}" for i in ids]
    return ["cluster-0"] * len(x)  # too few samples to cluster: the probe reports nothing, said in the table


def reference_labels(p, progress: Progress) -> list[str]:
    """The reference plan's labels for its own evaluation texts."""
    progress.stage(f"Labelling {len(p.dataset.texts)} samples with the reference model (--metric fidelity)")
    outputs = p.task.reference(p.dataset.texts, p.sequence_length)
    if p.task.name.endswith("classification"):
        names = {int(i): str(n) for i, n in (p.source.config.get("id2label") or {}).items()}
        return [names.get(int(i), str(int(i))) for i in outputs.argmax(axis=1)]
    return clusters(outputs)


def write_labelled(texts: list[str], labels: list[str], folder: Path) -> DataSpec:
    """The reference's labels beside the texts, as a data file each candidate's pack reads like the user's."""
    path = folder / LABELS_FILE
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    return DataSpec(path=str(path), text_column="text", label_column="label")
