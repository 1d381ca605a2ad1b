"""`pack`'s checks of one text-generation artifact (the KV-cache ONNX file), in place of the batch comparison other
tasks get: fidelity to the source (perplexity ratio, next-token agreement, KL, greedy continuations), time to first
token and decode tokens/s in fresh processes, peak memory with the cache at the maximum context, and each device's
decode / prefill estimate with its range and RAM verdict."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from . import devices as devices_mod
from .bench import latency
from .gates import device_checks, gate_checks, unmeasured
from .report import DeviceLatency, HostLatency

NEW_TOKENS = 64  # decoded after the prompt for the decode rate
DECODE_ROUNDS = 3


def check_generation(p, path: Path, result, reference: dict, timing_inputs: dict, progress):
    """Fill `result` for the artifact at `path`; yields each stage's name as it starts (pack names a failure by it)."""
    from .runtimes.onnx_lm import OnnxLM

    label, task = f"{result.target}/{result.precision}", p.task
    yield "accuracy run"
    with progress.bar(len(reference["texts"]), f"{label}: fidelity to the source") as step:
        acc = task.compare_artifact(reference, OnnxLM(path, p.threads), step)
    result.accuracy = acc

    yield "latency run"
    prompt = timing_inputs["input_ids"][0]
    context = p.context_length or len(prompt) + NEW_TOKENS
    progress.stage(f"{label}: time to first token ({p.options.runs} runs, {p.threads} threads)")
    host = latency.measure(path, timing_inputs, p.threads, p.options.warmup, p.options.runs)
    result.latency_ms.host = HostLatency(**{k: host[k] for k in ("p50", "p90", "threads", "runs", "warmup")},
                                         histogram=host.get("histogram"))
    progress.stage(f"{label}: decode tokens/s and memory at a {context}-token cache")
    decode = measure_decode(path, prompt, p.threads, NEW_TOKENS, context, DECODE_ROUNDS)
    result.memory_mb = decode["peak_memory_mb_at_context"]
    result.generation = {"ttft_ms": {"p50": host["p50"], "p90": host["p90"]}, **decode, "devices": {}}
    result.checks += gate_checks(p.gates, acc, host["p50"], result.size_bytes / 1e6, result.memory_mb)
    result.notes += unmeasured(p.gates, acc)

    yield "device estimate"
    from .devices.fit import RAM_SHARE
    from .estimate.llm import device_estimate
    from .source import count_parameters

    params = count_parameters(task.source) or 0
    for profile in p.profiles:
        est = device_estimate(profile, result.size_bytes, params, task.source.config, len(prompt), context, RAM_SHARE,
                              result.memory_mb * 1e6)
        result.generation["devices"][profile.name] = est
        need = est["ram"]["need_mb"]  # the measured peak with the cache at `context`, or weights + cache if larger
        fit = devices_mod.fits(profile, result.size_bytes, int(need * 1e6))
        ttft = est["ttft_ms"]
        checks = device_checks(profile.name, ttft["estimate"], result.size_bytes / 1e6, need, profile.budgets, fit)
        result.checks += checks
        if not est["ram"]["fits"]:
            result.notes.append(f"{profile.name}: {est['ram']['verdict']} at a {context}-token context")
        result.latency_ms.devices[profile.name] = DeviceLatency(
            ttft["estimate"], profile.budgets.max_latency_ms, all(c.passed for c in checks), ttft["low"], ttft["high"],
            est["threads"], note=f"time to first token at {len(prompt)} tokens; " + est["basis"], length=len(prompt))


def measure_decode(path: Path, prompt: np.ndarray, threads: int, new_tokens: int, context: int, rounds: int) -> dict:
    """edgepack.bench.lm_probe in a fresh process (PyTorch's memory and threads stay out of the numbers)."""
    with tempfile.TemporaryDirectory() as tmp:
        ids = Path(tmp) / "prompt.npy"
        np.save(ids, prompt.astype(np.int64))
        return latency.run_probe("edgepack.bench.lm_probe", path, ids, threads, new_tokens, context, rounds)
