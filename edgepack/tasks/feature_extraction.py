"""Sentence embeddings: the model's pooling and normalisation; fidelity is cosine similarity to the source."""

from __future__ import annotations

import json

import numpy as np

from ..errors import UsageError
from ..registry import TASKS
from .base import Accuracy, Task


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        return hidden[:, 0]
    m = mask[..., None].astype(hidden.dtype)
    if mode == "max":
        return np.where(m > 0, hidden, -np.inf).max(axis=1)
    summed = (hidden * m).sum(axis=1)
    count = np.clip(m.sum(axis=1), 1e-9, None)
    return summed / (np.sqrt(count) if mode == "mean_sqrt_len" else count)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


@TASKS.register("feature-extraction")
class FeatureExtraction(Task):
    optimum_task = "feature-extraction"
    auto_model = "AutoModel"
    accuracy_details = ("cosine_mean", "cosine_p1", "cosine_min", "probe_agreement", "probe_accuracy_source",
                        "probe_accuracy_artifact")

    # sentence-transformers modules this task reproduces; others (Dense, ...) would change the embeddings.
    SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")
    POOLING_MODES = (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                     ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"), ("pooling_mode_mean_tokens", "mean"))

    def __init__(self, source):
        super().__init__(source)
        for module in self._modules():
            kind = module.get("type", "").rsplit(".", 1)[-1]
            if kind not in self.SUPPORTED_MODULES:
                raise UsageError(f"{source.model_id!r} uses the sentence-transformers module {kind}, which edgepack "
                                 "does not reproduce yet", f"supported: {', '.join(self.SUPPORTED_MODULES)}")
        enabled = [k for k, v in self._pooling_config().items() if k.startswith("pooling_mode") and v]
        unsupported = [k for k in enabled if k not in dict(self.POOLING_MODES)]
        if unsupported:
            raise UsageError(f"{source.model_id!r} uses {unsupported[0]}, which edgepack does not reproduce yet",
                             "supported: cls, max, mean, mean_sqrt_len pooling")
        if len(enabled) > 1:  # sentence-transformers concatenates them
            raise UsageError(f"{source.model_id!r} concatenates several poolings ({', '.join(enabled)}), which "
                             "edgepack does not reproduce yet", "supported: one pooling mode")

    def _modules(self) -> list[dict]:
        path = self.source.path / "modules.json"
        return json.loads(path.read_text()) if path.is_file() else []

    def _pooling_config(self) -> dict:
        folder = next((m.get("path", "") for m in self._modules() if m.get("type", "").endswith("Pooling")),
                      "1_Pooling")
        path = self.source.path / folder / "config.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @classmethod
    def matches(cls, source) -> bool:
        if source.has_sentence_transformers_files:
            return True
        archs = source.config.get("architectures") or []
        return bool(archs) and all(a.endswith("Model") for a in archs)

    # --- what the model does after the transformer ---
    @property
    def pooling(self) -> str:
        cfg = self._pooling_config()
        return next((mode for key, mode in self.POOLING_MODES if cfg.get(key)), "mean")

    @property
    def normalize(self) -> bool:
        return any(m.get("type", "").endswith("Normalize") for m in self._modules())

    def graph_pooling(self) -> tuple[str, bool] | None:
        """(pooling mode, normalise) for targets to build into the graph, so the app gets embeddings directly."""
        return (self.pooling, self.normalize) if self.pooling in ("mean", "cls") else None

    @property
    def output_name(self) -> str:
        return "sentence_embedding" if self.graph_pooling() else "last_hidden_state"

    def describe_output(self) -> str:
        if self.graph_pooling():
            return f"sentence_embedding: {self.pooling} pooling{' and L2 normalisation' if self.normalize else ''} in the graph"
        return f"last_hidden_state: apply {self.pooling} pooling over attention_mask" + (
            ", then L2-normalise" if self.normalize else "")

    # --- source and artifact outputs ---
    def source_outputs(self, raw, feed):
        return self._finish(raw.last_hidden_state.numpy(), feed["attention_mask"])

    artifact_output = "sentence_embedding"

    def torch_head(self):
        from .torch_module import Pooler

        return Pooler(self.pooling, self.normalize)

    def _finish(self, hidden, mask):
        pooled = _pool(hidden.astype(np.float32), mask, self.pooling)
        return _normalize(pooled) if self.normalize else pooled

    def read_outputs(self, outputs, feed):
        if "sentence_embedding" in outputs:
            return np.asarray(outputs["sentence_embedding"], dtype=np.float32)
        return self._finish(np.asarray(outputs["last_hidden_state"]), feed["attention_mask"])

    # --- fidelity ---
    def compare(self, reference, candidate, labels):
        cos = np.sum(_normalize(reference) * _normalize(candidate), axis=1)
        details = {"cosine_mean": float(cos.mean()), "cosine_p1": float(np.percentile(cos, 1)),
                   "cosine_min": float(cos.min()), "samples": int(len(cos)),
                   "cosine_histogram": _histogram(cos)}  # per-sample spread, for report.html; 20 bins, not N floats
        if labels is not None and len(set(labels)) > 1:
            details.update(probe_check(reference, candidate, labels))
        return Accuracy(metric="cosine_mean", value=details["cosine_mean"], drop=1.0 - details["cosine_mean"],
                        details=details)


def _histogram(values: np.ndarray, bins: int = 20) -> dict:
    values = values.astype(np.float64)  # float32 cosines of an fp32 file can all be equal: give the bins some width
    lo, hi = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=bins, range=(lo, max(hi, lo + 1e-6)))
    return {"edges": [float(f"{e:.9g}") for e in edges], "counts": counts.tolist()}


def probe_check(reference: np.ndarray, candidate: np.ndarray, labels: list[str], seed: int = 0) -> dict:
    """Downstream check: logistic-regression probes trained on the source's embeddings, applied to held-out source
    and artifact embeddings; agreement is what an app would notice. Stratified 5-fold cross-validation, so every
    sample is scored once and the figure does not hinge on one lucky split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    folds = min(5, int(np.unique(y, return_counts=True)[1].min()))
    if folds < 2:
        return {}
    on_source, on_artifact = np.empty(len(y), dtype=y.dtype), np.empty(len(y), dtype=y.dtype)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(reference, y):
        probe = LogisticRegression(max_iter=1000).fit(reference[train], y[train])
        on_source[test], on_artifact[test] = probe.predict(reference[test]), probe.predict(candidate[test])
    return {"probe_agreement": float(np.mean(on_source == on_artifact)),
            "probe_accuracy_source": float(np.mean(on_source == y)),
            "probe_accuracy_artifact": float(np.mean(on_artifact == y)), "probe_folds": folds}
