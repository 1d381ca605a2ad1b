"""Decoder-only language models (Llama, Qwen2/3, SmolLM, Mistral, Phi, Gemma, GPT-2): next-token logits with a
KV cache. Fidelity on real text: perplexity vs the source's, next-token agreement and KL under teacher forcing, and
greedy continuation agreement on prompts."""

from __future__ import annotations

import json
import shutil

import numpy as np

from ..errors import UsageError
from ..registry import TASKS
from .base import Accuracy, Task

# config.json model_type of the decoder-only families edgepack exports with a KV cache.
DECODER_FAMILIES = ("llama", "qwen2", "qwen3", "mistral", "phi", "phi3", "gemma", "gemma2", "gemma3_text", "gpt2",
                    "smollm3")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def teacher_forcing_figures(ids: np.ndarray, source_logits: np.ndarray, artifact_logits: np.ndarray) -> dict:
    """Perplexity of each model on the same tokens (logits at t predict token t+1), the ratio, top-1 agreement
    of the next-token predictions and mean KL(source || artifact) of the next-token distributions."""
    targets = ids[1:]
    src, art = log_softmax(source_logits[:-1]), log_softmax(artifact_logits[:-1])
    rows = np.arange(len(targets))
    ppl_src = float(np.exp(-src[rows, targets].mean()))
    ppl_art = float(np.exp(-art[rows, targets].mean()))
    kl = float((np.exp(src) * (src - art)).sum(axis=-1).mean())
    return {"perplexity_source": ppl_src, "perplexity_artifact": ppl_art, "perplexity_ratio": ppl_art / ppl_src,
            "next_token_agreement": float(np.mean(src.argmax(-1) == art.argmax(-1))), "mean_kl": max(kl, 0.0),
            "tokens": int(len(targets))}


def continuation_agreement(source_tokens: list[int], artifact_tokens: list[int], first: int = 32) -> float:
    """Share of the source's first `first` greedy tokens the artifact reproduces at the same position."""
    want = source_tokens[:first]
    if not want:
        return 1.0
    return sum(a == b for a, b in zip(want, artifact_tokens[:first])) / len(want)


@TASKS.register("text-generation")
class TextGeneration(Task):
    optimum_task = "text-generation-with-past"  # one file: past key/values in and out, prefill and decode
    auto_model = "AutoModelForCausalLM"
    accuracy_details = ("next_token_agreement", "continuation_agreement", "perplexity_ratio", "mean_kl")
    output_name = "logits"
    artifact_output = "logits"

    def __init__(self, source):
        super().__init__(source)
        if not self.matches(source):
            kind = source.config.get("model_type", "unknown")
            archs = ", ".join(source.config.get("architectures") or ["none"])
            raise UsageError(f"{source.model_id!r} ({kind}, {archs}) is not a decoder-only language model",
                             f"text-generation takes causal LMs of the families {', '.join(DECODER_FAMILIES)}")

    @classmethod
    def matches(cls, source) -> bool:
        archs = source.config.get("architectures") or []
        return (source.config.get("model_type") in DECODER_FAMILIES
                and any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs))

    @property
    def max_length(self) -> int:
        """The context the model was trained for; the tokenizer's model_max_length is often a placeholder."""
        n = self.source.config.get("max_position_embeddings") or self.source.config.get("n_positions")
        return int(n) if isinstance(n, int) and n > 0 else super().max_length

    def check_context(self, context: int) -> None:
        if context > self.max_length:
            raise UsageError(f"context length {context} exceeds the model's maximum of {self.max_length} tokens",
                             f"use a context of {self.max_length} or less")

    def describe_output(self) -> str:
        return "logits: next-token scores; feed present.* back as past_key_values.* for the next step"

    def save_preprocessor(self, dest) -> None:
        """Tokenizer (its chat template included), config.json and generation_config.json (stop tokens, limits)."""
        super().save_preprocessor(dest)
        for name in ("generation_config.json", "chat_template.jinja", "chat_template.json"):
            if (self.source.path / name).is_file() and not (dest / name).is_file():
                shutil.copyfile(self.source.path / name, dest / name)

    def stop_tokens(self) -> list[int]:
        """eos ids from generation_config.json, else config.json, else the tokenizer's."""
        path = self.source.path / "generation_config.json"
        eos = json.loads(path.read_text()).get("eos_token_id") if path.is_file() else None
        eos = eos if eos is not None else self.source.config.get("eos_token_id", self.tokenizer.eos_token_id)
        return [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]

    def token_ids(self, text: str, max_length: int) -> np.ndarray:
        return np.asarray(self.tokenizer(text, truncation=True, max_length=max_length)["input_ids"], dtype=np.int64)

    def encode(self, texts: list[str], max_length: int, pad_to_max: bool = False) -> dict[str, np.ndarray]:
        """As for the other tasks; decoder tokenizers often have no pad token (SmolLM2, Llama), and then the padding
        is id 0 behind a zero mask, on the right as transformers pads, without changing the shipped tokenizer."""
        if self.tokenizer.pad_token is not None:
            return super().encode(texts, max_length, pad_to_max)
        rows = [self.token_ids(t, max_length) for t in texts]
        width = max_length if pad_to_max else max(len(r) for r in rows)
        ids, mask = np.zeros((len(rows), width), np.int64), np.zeros((len(rows), width), np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        return {"input_ids": ids, "attention_mask": mask}

    # --- the source model ---
    def source_model(self):
        import transformers

        return self._load_torch(getattr(transformers, self.auto_model))

    def source_logits(self, model, ids: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(ids[None])).logits[0].float().numpy()

    def source_generate(self, model, ids: np.ndarray, max_new_tokens: int) -> list[int]:
        import torch

        with torch.inference_mode():
            out = model.generate(torch.from_numpy(ids[None]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self.stop_tokens(),
                                 pad_token_id=self.stop_tokens()[0] if self.stop_tokens() else 0)
        return out[0, len(ids):].tolist()

    # --- what `pack` times and compares (edgepack/lm_checks.py) ---
    generative = True  # pack measures fidelity and tokens/s itself instead of comparing batch outputs

    def cache_shape(self) -> tuple[int, int, int]:
        return cache_shape(self.source.config)

    def latency_inputs(self, texts: list[str], seq_len: int) -> dict[str, np.ndarray]:
        """A prefill of `seq_len` real tokens with an empty cache: its time is the time to first token."""
        feed = super().latency_inputs(texts, seq_len)
        layers, kv_heads, head_dim = self.cache_shape()
        empty = np.zeros((1, kv_heads, 0, head_dim), np.float32)
        feed["position_ids"] = np.arange(seq_len, dtype=np.int64)[None]
        return feed | {f"past_key_values.{i}.{kind}": empty for i in range(layers) for kind in ("key", "value")}

    def reference(self, texts: list[str], max_length: int) -> dict:
        """The source side of `compare_artifact`, once per run: greedy continuations of the first 8 texts."""
        return self._reference(texts, texts[:8], max_length, 32)

    def fidelity(self, texts: list[str], prompts: list[str], artifact, context: int, new_tokens: int = 32) -> Accuracy:
        return self.compare_artifact(self._reference(texts, prompts, context, new_tokens), artifact)

    def _reference(self, texts: list[str], prompts: list[str], context: int, new_tokens: int) -> dict:
        # The source model is kept, not its logits: all of them at once would be texts x tokens x vocabulary floats.
        model = self.source_model()
        ids = [self.token_ids(p, context) for p in prompts]
        return {"model": model, "texts": texts, "context": context, "new_tokens": new_tokens,
                "prompts": [(i, self.source_generate(model, i, new_tokens)) for i in ids]}

    def compare_artifact(self, reference: dict, artifact, step=None) -> Accuracy:
        """Fidelity of `artifact` (its runtime: `logits(ids)`, `generate(ids, max_new_tokens, stop)`) to the source
        on the reference's texts (teacher forcing) and prompts (greedy continuations). `step()` after each text."""
        model, context, new_tokens = reference["model"], reference["context"], reference["new_tokens"]
        per = []
        for text in reference["texts"]:
            ids = self.token_ids(text, context)
            if len(ids) >= 2:
                per.append(teacher_forcing_figures(ids, self.source_logits(model, ids), artifact.logits(ids)))
            if step:
                step()
        if not per:
            raise UsageError("no evaluation text of two tokens or more", "pass --data with longer texts")
        # Per text, then weighted by tokens: concatenating would join one text's end to the next text's start.
        weights = np.array([p["tokens"] for p in per], dtype=np.float64)
        nll = lambda key: float(np.exp(np.average([np.log(p[key]) for p in per], weights=weights)))  # noqa: E731
        details = dict(perplexity_source=nll("perplexity_source"), perplexity_artifact=nll("perplexity_artifact"),
                       next_token_agreement=float(np.average([p["next_token_agreement"] for p in per], weights=weights)),
                       mean_kl=float(np.average([p["mean_kl"] for p in per], weights=weights)),
                       tokens=int(weights.sum()), texts=len(per))
        details["perplexity_ratio"] = details["perplexity_artifact"] / details["perplexity_source"]
        agreements = [continuation_agreement(want, artifact.generate(ids, new_tokens, self.stop_tokens()), new_tokens)
                      for ids, want in reference["prompts"]]
        details["continuation_agreement"] = float(np.mean(agreements)) if agreements else None
        details["prompts"] = len(agreements)
        return Accuracy("next_token_agreement", details["next_token_agreement"],
                        1.0 - details["next_token_agreement"], details)


def cache_shape(config: dict) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a decoder's KV cache (grouped-query attention: fewer kv heads than heads)."""
    layers = config.get("num_hidden_layers") or config.get("n_layer") or 0
    heads = config.get("num_attention_heads") or config.get("n_head") or 1
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (config.get("hidden_size") or config.get("n_embd") or 0) // heads
    return int(layers), int(kv_heads), int(head_dim)
