"""What every task provides. A task is one file in this folder, registered with `@TASKS.register(name)`."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..errors import SourceError, one_line


@dataclass
class Accuracy:
    metric: str  # the headline metric's name
    value: float  # the artifact's value of it
    drop: float  # how much worse than the source (0 = as good as the source), in the metric's units
    details: dict = field(default_factory=dict)


@contextmanager
def preprocessor_errors(source, what: str):
    """A folder without (or with broken) tokenizer or image-processor files is bad input, not a crash."""
    try:
        yield
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise SourceError(f"cannot load the {what} of {source.model_id!r}: {one_line(exc)}",
                          f"the model folder needs its {what} files") from None


class Task:
    name: str
    optimum_task: str  # the task name optimum's exporter knows
    auto_model: str  # the transformers Auto class that loads the source model
    accuracy_details: tuple[str, ...] = ()  # the figures `compare` may report, which recipes can gate on
    output_name: str  # the artifact output the task reads

    def __init__(self, source):
        self.source = source
        self._tokenizer = None

    @classmethod
    def matches(cls, source) -> bool:
        raise NotImplementedError

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            with preprocessor_errors(self.source, "tokenizer"):
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.source.path),
                                                                trust_remote_code=self.source.trust_remote_code)
        return self._tokenizer

    @property
    def max_length(self) -> int:
        """The longest input the model takes, in tokens."""
        limits = [n for n in (self.source.config.get("max_position_embeddings"), self.tokenizer.model_max_length)
                  if isinstance(n, int) and 0 < n < 1_000_000]  # tokenizers with no limit report 1e30
        return min(limits, default=512)

    def save_preprocessor(self, dest) -> None:
        """The files an app needs beside the model: the tokenizer, and config.json (label names, sizes)."""
        import shutil

        self.tokenizer.save_pretrained(str(dest))
        shutil.copyfile(self.source.path / "config.json", dest / "config.json")

    def encode(self, texts: list[str], max_length: int, pad_to_max: bool = False) -> dict[str, np.ndarray]:
        enc = self.tokenizer(texts, truncation=True, max_length=max_length,
                             padding="max_length" if pad_to_max else True, return_tensors="np")
        return {k: v.astype(np.int64) for k, v in enc.items()}

    def latency_inputs(self, texts: list[str], seq_len: int) -> dict[str, np.ndarray]:
        """One batch-1 input of exactly `seq_len` real tokens: latency is measured at the recipe's length."""
        text = " ".join(texts[:64]) or "edgepack"
        feed = self.encode([text], seq_len, pad_to_max=True)
        while int(feed["attention_mask"].sum()) < seq_len:
            text = f"{text} {text}"
            feed = self.encode([text], seq_len, pad_to_max=True)
        return feed

    def workload_lengths(self, texts: list[str], max_length: int) -> dict | None:
        """Token lengths of the evaluation texts (p50, p90, max, each at most `max_length`): the length the device
        latency is gated at is the workload's p90, not the recipe's maximum, which few inputs reach."""
        if not texts:
            return None
        lengths = np.array([int(self.encode([t], max_length)["attention_mask"].sum()) for t in texts])
        return {"p50": int(np.percentile(lengths, 50)), "p90": int(np.ceil(np.percentile(lengths, 90))),
                "max": int(lengths.max()), "max_length": max_length, "samples": len(lengths)}

    def graph_pooling(self) -> tuple[str, bool] | None:
        """Post-processing a target should build into the graph: (pooling mode, normalise), or None."""
        return None

    def reference(self, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
        """The source model's outputs (PyTorch, fp32), the ground truth every artifact is compared with."""
        import torch
        import transformers

        model = self._load_torch(getattr(transformers, self.auto_model))
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = texts[start:start + batch_size]
                enc = self.encode(batch, max_length)
                raw = model(**{k: torch.from_numpy(v) for k, v in enc.items()})
                out.append(self.batch_outputs(raw, enc, batch, max_length))
        return np.concatenate(out)

    def batch_outputs(self, raw, feed: dict[str, np.ndarray], samples: list, max_length: int) -> np.ndarray:
        """source_outputs of one batch; a task whose comparison needs more of the samples than the model sees (word
        positions, gold answer spans) adds it here, once, in the source's rows."""
        return self.source_outputs(raw, feed)

    def source_outputs(self, raw, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The task's output from the PyTorch model's raw output for one batch."""
        raise NotImplementedError

    def read_outputs(self, outputs: dict[str, np.ndarray], feed: dict[str, np.ndarray]) -> np.ndarray:
        """The task's output from an artifact's raw outputs."""
        raise NotImplementedError

    def compare(self, reference: np.ndarray, candidate: np.ndarray, labels: list[str] | None) -> Accuracy:
        raise NotImplementedError

    # --- what targets that convert from PyTorch (TFLite, Core ML) take ---
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")  # the artifact's inputs, int32
    data_kind = "text"  # what the evaluation samples are: "text", or "image" (paths from an image folder)

    def torch_module(self):
        """The source model with the task's post-processing built in: named int32 inputs -> {output: tensor}."""
        import transformers

        from .torch_module import TextModule

        # Eager attention: the converters lower its plain matmul + softmax; fused SDPA kernels they may not.
        model = self._load_torch(getattr(transformers, self.auto_model), attn_implementation="eager")
        return TextModule(model, self.torch_head(), self.artifact_output).eval()

    artifact_output: str  # the output name of artifacts converted from PyTorch

    def torch_head(self):
        """The task's post-processing of the PyTorch model's raw output, as a torch module (raw, mask) -> tensor."""
        raise NotImplementedError

    def sample_inputs(self, length: int) -> dict:
        from .torch_module import sample_ids

        return sample_ids(self.input_names, length)

    def _load_torch(self, auto_class, **kwargs):
        import torch

        torch.manual_seed(0)
        # The same weight file the exporter reads: safetensors whenever the folder has them.
        safetensors = self.source.weights[0].endswith(".safetensors")
        model = auto_class.from_pretrained(str(self.source.path), use_safetensors=safetensors, dtype=torch.float32,
                                           trust_remote_code=self.source.trust_remote_code, **kwargs)
        return model.eval()
