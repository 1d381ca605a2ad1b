"""Device estimate for decoder LMs: prefill is bounded by compute (2 ops per weight per token), decode by memory
bandwidth (every weight and the KV cache read once per generated token). One efficiency each, fitted on published
CPU figures (shared/device-calibration/llm-published.csv); the fit's leave-one-out error is the estimate's range."""

from __future__ import annotations

import math
import re

from ..tasks.text_generation import cache_shape  # the task owns the config reading; re-exported here

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
    """Keys and values of every layer at `context` tokens."""
    layers, kv_heads, head_dim = cache_shape(config)
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


def ram_verdict(weight_bytes: float, kv_bytes: float, ram_mb: int, usable: float = 0.5,
                measured_bytes: float | None = None) -> dict:
    """Does the model fit: weights + KV cache at the maximum context (or the measured peak with that cache, when
    larger: activations and the runtime's buffers come on top) vs the share of RAM an app gets (the OS and other
    apps take the rest; edgepack.devices.fit's share). A clear failed verdict, not an error. Decimal MB."""
    need_mb = max(weight_bytes + kv_bytes, measured_bytes or 0) / 1e6
    what = "measured peak with the KV cache" if (measured_bytes or 0) > weight_bytes + kv_bytes else \
        "weights and KV cache"
    budget_mb = ram_mb * usable
    fits = need_mb <= budget_mb
    return {"fits": fits, "need_mb": round(need_mb, 2), "budget_mb": round(budget_mb, 1),
            "verdict": (f"fits: {need_mb:.1f} MB ({what}) in {budget_mb:.0f} MB usable" if fits else
                        f"does not fit: {need_mb:.1f} MB ({what}) > {budget_mb:.0f} MB usable "
                        f"({usable:.0%} of {ram_mb} MB RAM)")}


# Fitted by benchmarks/llm_estimate.py on shared/device-calibration/llm-published.csv (benchmarks/llm_estimate.md):
# efficiency and median leave-one-out error, which is the estimate's range (x or / by 1 + error).
DECODE_FIT = {"efficiency": 0.314, "loo_median": 0.49, "rows": 6}
PREFILL_FIT = {"efficiency": 0.213, "loo_median": 3.79, "rows": 2}  # two rows: a guess with a wide range, said so


def device_estimate(profile, weight_bytes: float, params: float, config: dict, prompt: int, context: int,
                    ram_share: float, measured_bytes: float | None = None) -> dict:
    """Time to first token at `prompt` tokens, decode tokens/s after the prompt and at `context`, each with its range,
    and the RAM verdict at `context` for one device profile."""
    def spread(value: float, fit: dict) -> dict:
        return {"estimate": value, "low": value / (1 + fit["loo_median"]), "high": value * (1 + fit["loo_median"])}

    bandwidth, eff = profile.memory_bandwidth_gbps, DECODE_FIT["efficiency"]
    prefill = prefill_tokens_per_s(params, profile.peak_gflops.int8, PREFILL_FIT["efficiency"])
    ttft = spread(1000 * prompt / prefill, PREFILL_FIT)
    return {
        "decode_tokens_per_s": spread(decode_tokens_per_s(weight_bytes, kv_cache_bytes(config, prompt), bandwidth,
                                                          eff), DECODE_FIT),
        "decode_tokens_per_s_at_context": spread(decode_tokens_per_s(weight_bytes, kv_cache_bytes(config, context),
                                                                     bandwidth, eff), DECODE_FIT),
        "ttft_ms": ttft, "prompt_tokens": prompt, "context": context, "threads": profile.default_threads,
        "ram": ram_verdict(weight_bytes, kv_cache_bytes(config, context), profile.ram_mb, ram_share, measured_bytes),
        "basis": f"decode: {eff} x {bandwidth} GB/s / (file bytes + KV cache bytes), range from the leave-one-out "
                 f"error ({DECODE_FIT['loo_median']:.0%}, {DECODE_FIT['rows']} published rows); prefill: "
                 f"{PREFILL_FIT['efficiency']} x int8 peak {profile.peak_gflops.int8} GOP/s / (2 x params), only "
                 f"{PREFILL_FIT['rows']} published rows (error {PREFILL_FIT['loo_median']:.0%})"}
