"""Greedy generation with the KV cache on onnxruntime, for one `text-generation-with-past` model.onnx: prefill the
prompt in one call, then one token per call feeding present.* back as past_key_values.*."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxLM:
    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names = [n for n in self.inputs if n.startswith("past_key_values.")]
        self.present_names = [o.name for o in self.session.get_outputs() if o.name.startswith("present")]
        shape = self.inputs[self.past_names[0]].shape if self.past_names else []
        self.kv_heads, self.head_dim = shape[1], shape[3]  # (batch, kv heads, past length, head dim)
        self.float_type = np.float16 if "float16" in (self.inputs[self.past_names[0]].type if self.past_names
                                                      else "") else np.float32

    def empty_cache(self) -> dict[str, np.ndarray]:
        return {n: np.zeros((1, self.kv_heads, 0, self.head_dim), self.float_type) for n in self.past_names}

    def step(self, ids: np.ndarray, past: dict[str, np.ndarray], start: int) -> tuple[np.ndarray, dict]:
        """Logits for `ids` (1-D) after `start` cached tokens, and the cache extended by them."""
        total = start + len(ids)
        feed = {"input_ids": ids[None].astype(np.int64), "attention_mask": np.ones((1, total), np.int64), **past}
        if "position_ids" in self.inputs:
            feed["position_ids"] = np.arange(start, total, dtype=np.int64)[None]
        out = self.session.run(None, feed)
        names = [o.name for o in self.session.get_outputs()]
        logits = out[names.index("logits")][0]
        cache = {p: out[names.index(q)] for p, q in zip(self.past_names, self.present_names)}
        return logits.astype(np.float32), cache

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """Teacher forcing: every position's next-token logits, in one prefill."""
        return self.step(ids, self.empty_cache(), 0)[0]

    def generate(self, ids: np.ndarray, max_new_tokens: int, stop: list[int] | tuple = ()) -> list[int]:
        """Greedy: at most `max_new_tokens`, ending after a stop token (which is returned, as transformers does)."""
        logits, cache = self.step(ids, self.empty_cache(), 0)
        done, position = [], len(ids)
        for _ in range(max_new_tokens):
            token = int(logits[-1].argmax())
            done.append(token)
            if token in stop:
                break
            logits, cache = self.step(np.array([token]), cache, position)
            position += 1
        return done
