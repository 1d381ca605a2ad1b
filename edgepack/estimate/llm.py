"""Device estimate for decoder LMs: prefill is bounded by compute (2 ops per weight per token), decode by memory
bandwidth (every weight and the KV cache read once per generated token). One efficiency each, fitted on published
CPU figures (shared/device-calibration/llm-published.csv); the fit's leave-one-out error is the estimate's range."""

from __future__ import annotations

import math
import re

# Bytes per weight of the published formats, block scales included (llama.cpp Q4_0/Q8_0: 32 weights share one fp16
# scale; ExecuTorch 8da4w: groups of 32 with an fp16 scale; onnxruntime MatMulNBits block 32: fp32 scale).
FORMAT_BYTES = {"q4_0": 18 / 32, "q4_1": 20 / 32, "q8_0": 34 / 32, "8da4w": 18 / 32, "int4-weight": 20 / 32,
                "int8-weight": 36 / 32, "fp16": 2.0, "fp32": 4.0}


def bytes_per_weight(weights: str) -> float | None:
    """The format's bytes per weight, from a name like 'GGUF Q4_0' or '8da4w (...)'; None when not said."""
    text = weights.lower()
    for name, size in FORMAT_BYTES.items():
        if re.search(rf"(^|[^a-z0-9]){re.escape(name)}([^a-z0-9]|$)", text):
            return size
    return None


def kv_cache_bytes(config: dict, context: int, element_bytes: int = 4) -> int:
    """Keys and values of every layer at `context` tokens (grouped-query attention: kv heads, not query heads)."""
    layers = config.get("num_hidden_layers") or config.get("n_layer") or 0
    heads = config.get("num_attention_heads") or config.get("n_head") or 1
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (config.get("hidden_size") or config.get("n_embd") or 0) // heads
    return int(2 * layers * kv_heads * head_dim * context * element_bytes)


def decode_tokens_per_s(weight_bytes: float, kv_bytes: float, bandwidth_gbps: float, efficiency: float) -> float:
    return efficiency * bandwidth_gbps * 1e9 / (weight_bytes + kv_bytes)


def prefill_tokens_per_s(params: float, peak_gops: float, efficiency: float) -> float:
    return efficiency * peak_gops * 1e9 / (2 * params)


def fit_efficiency(ratios: list[float]) -> float:
    """Geometric mean of measured/roofline: the errors are ratios, so the fit is in log space."""
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def leave_one_out(ratios: list[float]) -> list[float]:
    """For each row, |predicted/measured - 1| with the efficiency fitted on the other rows."""
    return [abs(fit_efficiency(ratios[:i] + ratios[i + 1:]) / r - 1) for i, r in enumerate(ratios)]


def ram_verdict(weight_bytes: float, kv_bytes: float, ram_mb: int, usable: float = 0.6) -> dict:
    """Does the model fit: weights + KV cache at the maximum context vs the share of RAM an app gets (the OS, other
    apps and the runtime's buffers take the rest). A clear failed verdict, not an error."""
    need_mb = (weight_bytes + kv_bytes) / 2**20
    budget_mb = ram_mb * usable
    fits = need_mb <= budget_mb
    return {"fits": fits, "need_mb": round(need_mb, 1), "budget_mb": round(budget_mb, 1),
            "verdict": (f"fits: {need_mb:.0f} MB of weights and KV cache in {budget_mb:.0f} MB usable" if fits else
                        f"does not fit: {need_mb:.0f} MB of weights and KV cache > {budget_mb:.0f} MB usable "
                        f"({usable:.0%} of {ram_mb} MB RAM)")}
