"""Decode rate and peak memory of one KV-cache language model, in a fresh process that imports only onnxruntime.

Run as `python -m edgepack.bench.lm_probe MODEL.onnx PROMPT.npy THREADS NEW_TOKENS CONTEXT ROUNDS`; prints one JSON
line: decode tokens/s after the prompt (its median over rounds, greedy, cache fed back), decode tokens/s with the
cache at CONTEXT tokens, and the process's peak memory with that cache (weights, cache and activations).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

AT_CONTEXT_TOKENS = 16  # decoded with the cache at the maximum context: enough for a rate, few enough to be quick


def decode_rate(lm, logits, cache, position: int, tokens: int) -> float:
    token, start = int(logits[-1].argmax()), time.perf_counter()
    for _ in range(tokens):
        logits, cache = lm.step(np.array([token]), cache, position)
        token, position = int(logits[-1].argmax()), position + 1
    return tokens / (time.perf_counter() - start)


def measure(path: str, prompt: np.ndarray, threads: int, new_tokens: int, context: int, rounds: int) -> dict:
    from ..runtimes.onnx_lm import OnnxLM
    from .probe import _status_mb

    baseline = _status_mb("VmRSS")
    lm = OnnxLM(path, threads)
    rates = []
    for _ in range(rounds + 1):  # the first round warms up
        logits, cache = lm.step(prompt, lm.empty_cache(), 0)
        rates.append(decode_rate(lm, logits, cache, len(prompt), new_tokens))
    past = context - AT_CONTEXT_TOKENS
    full = {name: np.zeros((1, lm.kv_heads, past, lm.head_dim), lm.float_type) for name in lm.past_names}
    logits, cache = lm.step(prompt[-1:], full, past)  # zeros: the cache's size sets the cost, not its content
    at_context = decode_rate(lm, logits, cache, past + 1, AT_CONTEXT_TOKENS - 1)
    peak = _status_mb("VmHWM")
    return {"decode_tokens_per_s": float(np.median(rates[1:])), "decode_rounds": [round(r, 2) for r in rates[1:]],
            "prompt_tokens": int(len(prompt)), "new_tokens": new_tokens, "threads": threads,
            "decode_tokens_per_s_at_context": at_context, "context": context,
            "peak_memory_mb_at_context": max(peak - baseline, 0.0), "peak_rss_mb": peak}


if __name__ == "__main__":
    artifact, prompt_path, threads, new_tokens, context, rounds = sys.argv[1:7]
    print(json.dumps(measure(artifact, np.load(prompt_path), int(threads), int(new_tokens), int(context),
                             int(rounds))))
