"""edgepack's int4 file (from `pack`, benchmarks/llm_pack.py) against onnxruntime-genai's own int4 model builder
on SmolLM2-135M-Instruct: fidelity to the source on the recipe's text, and decode tokens/s in one interleaved run.

    pip install --no-deps --target /tmp/ortgenai onnxruntime-genai==0.18.0   # kept out of the venv
    flock /tmp/edgepack-heavy.lock env ORT_GENAI=/tmp/ortgenai python benchmarks/llm_genai.py > benchmarks/llm_genai.md

onnxruntime-genai 0.18's builder is written for transformers 5. With the pinned 4.57 it needs two shims, both here
and nothing of edgepack's: placeholder classes for the two Qwen3.5 classes its base module imports by name (used
only for those models), and `rope_scaling: {rope_type: default}` in a copy of config.json (it iterates rope_scaling,
which 4.57 writes as null; "default" is what null means).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACK = Path(os.environ.get("LLM_PACK_OUT", "/tmp/edgepack-llm-bench/pack"))
WORK = Path(os.environ.get("LLM_GENAI_DIR", "/tmp/edgepack-llm-bench/genai"))
GENAI = os.environ.get("ORT_GENAI", "")
THREADS, PROMPT, NEW, ROUNDS, TEXTS = 1, 128, 64, 5, 100

SHIM = """
import runpy, sys, transformers
for name in ("Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"):
    if name not in transformers.__dict__:
        setattr(transformers, name, type(name, (), {}))
models = sys.argv.pop(1)
sys.path.insert(0, models)
import builders  # while the placeholders are in place
sys.argv[0] = models + "/builder.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def build_genai(hf: Path, precision: str = "int4") -> Path:
    """onnxruntime-genai's CPU model of the HF folder: int4 (its defaults: RTN, block 32, lm_head int4) or fp32 (its
    fused graph, which edgepack's own int4 is then applied to)."""
    out = WORK / precision
    if (out / "model.onnx").is_file():
        return out
    src = WORK / "src"
    src.mkdir(parents=True, exist_ok=True)
    for item in hf.iterdir():
        if item.name != "config.json" and not (src / item.name).exists():
            (src / item.name).symlink_to(item)
    config = json.loads((hf / "config.json").read_text())
    config["rope_scaling"] = config.get("rope_scaling") or {"rope_type": "default", "rope_theta": config["rope_theta"]}
    (src / "config.json").write_text(json.dumps(config, indent=1))
    models = str(Path(GENAI) / "onnxruntime_genai" / "models")
    done = subprocess.run([sys.executable, "-c", SHIM, models, "-m", "HuggingFaceTB/SmolLM2-135M-Instruct",
                           "-i", str(src), "-o", str(out), "-p", precision, "-e", "cpu", "-c", str(WORK / "cache")],
                          capture_output=True, text=True, env=os.environ | {"PYTHONPATH": GENAI})
    if done.returncode:
        sys.exit(f"onnxruntime-genai's builder failed:\n{done.stderr[-3000:]}")
    return out


class GenaiRunner:
    """onnxruntime-genai's own generator on its model, `THREADS` intra-op threads: its decode rate as it ships."""

    def __init__(self, folder: Path):
        import onnxruntime_genai as og

        self.og = og
        cfg = json.loads((folder / "genai_config.json").read_text())
        cfg["model"]["decoder"]["session_options"]["intra_op_num_threads"] = THREADS
        cfg["model"]["decoder"]["session_options"]["inter_op_num_threads"] = 1
        (folder / "genai_config.json").write_text(json.dumps(cfg, indent=4))
        self.model = og.Model(str(folder))

    def timing(self, ids: np.ndarray) -> tuple[float, float]:
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + NEW + 1, do_sample=False)
        gen = self.og.Generator(self.model, params)
        t0 = time.perf_counter()
        gen.append_tokens(ids.tolist())  # the prefill; the first token is the argmax of its logits
        ttft = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _ in range(NEW):
            gen.generate_next_token()
        return ttft * 1e3, NEW / (time.perf_counter() - t1)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    if not GENAI:
        sys.exit("set ORT_GENAI to the folder onnxruntime-genai was installed into (see the docstring)")
    sys.path.insert(0, GENAI)
    from llm_int4 import hf_folder, timing

    from edgepack import data
    from edgepack.plan import load_recipe
    from edgepack.registry import TASKS
    from edgepack.runtimes.onnx_lm import OnnxLM
    from edgepack.source import resolve
    from edgepack.targets.onnx_lm import quantize_weights

    hf = hf_folder()
    genai = build_genai(hf)
    report = json.loads((PACK / "report.json").read_text())
    paths = {a["precision"]: PACK / a["path"] for a in report["artifacts"] if a["path"]}
    fused = build_genai(hf, "fp32") / "model.onnx"
    files = {"edgepack fp32": paths["fp32"], "edgepack int4-weight": paths["int4-weight"],
             "onnxruntime-genai int4": genai / "model.onnx", "onnxruntime-genai fp32 graph": fused}
    for head in (8, None):  # edgepack's int4 recipe (affine, int4 embeddings) on genai's fused graph
        name = f"genai fp32 graph + edgepack affine int4, lm_head int{head or 4}"
        out = WORK / f"fp32-affine-head{head or 4}"
        if not (out / "model.onnx").is_file():
            quantize_weights(fused, out, "int4-weight", block_size=32, method="affine", embeddings=True,
                             lm_head_bits=head)
        files[name] = out / "model.onnx"
    settings = next(a["settings"] for a in report["artifacts"] if a["precision"] == "int4-weight")

    task = TASKS.get("text-generation")(resolve(str(hf)))
    recipe = load_recipe(None, "text-generation")
    texts = data.load(recipe.data.model_copy(update={"limit": TEXTS})).texts
    fidelity, reference = {}, task.reference(texts, recipe.sequence_length)
    for name, path in files.items():
        lm = OnnxLM(path, THREADS)
        if not isinstance(lm.head_dim, int):  # genai's graph names the head size symbolically (kv_cache_dim)
            lm.head_dim = task.cache_shape()[2]
        fidelity[name] = task.compare_artifact(reference, lm).details

    ids = task.token_ids(" ".join(texts), 4096)[:PROMPT]
    runners = {}
    for name, path in files.items():
        lm = OnnxLM(path, THREADS)
        lm.head_dim = task.cache_shape()[2]
        runners[f"{name} (edgepack's OnnxLM loop)"] = lambda lm=lm: timing(lm, ids)
    og_runner = GenaiRunner(genai)
    runners["onnxruntime-genai int4 (its own generator)"] = lambda: og_runner.timing(ids)
    for run in runners.values():
        run()  # warm-up
    rounds = {name: [] for name in runners}
    for _ in range(ROUNDS):  # interleaved: a busy moment on the shared host hits every file, not one
        for name, run in runners.items():
            rounds[name].append(run())

    size = lambda p: sum(f.stat().st_size for f in p.parent.glob(p.name + "*"))  # noqa: E731 - + external data
    print("# edgepack int4 vs onnxruntime-genai's int4 builder: SmolLM2-135M-Instruct\n")
    print("Command: `flock /tmp/edgepack-heavy.lock env ORT_GENAI=/tmp/ortgenai python benchmarks/llm_genai.py > "
          "benchmarks/llm_genai.md` after `benchmarks/llm_pack.py` (its pack output holds edgepack's files).\n")
    print(f"Fidelity: the recipe's text ({len(texts)} tweets, seed {recipe.data.seed}: the same sample as `pack "
          f"--limit {TEXTS}`), context {recipe.sequence_length}, the first 8 as prompts for 32 greedy tokens, all "
          "through edgepack's own fidelity code. Timing: onnxruntime 1 thread, a "
          f"{PROMPT}-token prompt, {NEW} decoded tokens, median of {ROUNDS} interleaved rounds after a warm-up, in "
          "one process. Host shared with other work (the heavy-work lock keeps other benchmarks off it).\n")
    print("| file | size MB | % of fp32 | ppl ratio | next-token agree | mean KL | greedy-32 agree |")
    print("|---|---|---|---|---|---|---|")
    base = size(files["edgepack fp32"])
    for name, path in files.items():
        f = fidelity[name]
        print(f"| {name} | {size(path) / 1e6:.1f} | {100 * size(path) / base:.1f}% | {f['perplexity_ratio']:.4f} | "
              f"{f['next_token_agreement']:.3f} | {f['mean_kl']:.4f} | {f['continuation_agreement']:.3f} |")
    print("\n| runner | TTFT ms (p50) | decode tok/s (median) | min-max tok/s | x edgepack fp32 |")
    print("|---|---|---|---|---|")
    base_tps = float(np.median([r[1] for r in rounds["edgepack fp32 (edgepack's OnnxLM loop)"]]))
    for name, runs in rounds.items():
        tps = [r[1] for r in runs]
        print(f"| {name} | {np.median([r[0] for r in runs]):.0f} | {np.median(tps):.1f} | {min(tps):.1f}-"
              f"{max(tps):.1f} | {np.median(tps) / base_tps:.2f} |")
    print("\nThe fused graph (GroupQueryAttention, SkipSimplifiedLayerNormalization, packed qkv: ~340 nodes against "
          "optimum's ~8000) is what makes genai's file decode faster; its int4 (symmetric RTN, lm_head int4) is what "
          "costs its fidelity on this source (itself a dequantized Q4_1 file).")
    print(f"\nedgepack int4-weight settings (from pack's report): `{json.dumps(settings)}`. onnxruntime-genai: "
          "`builder -p int4 -e cpu` defaults (RTN block 32 with its own fused GroupQueryAttention, SkipLayerNorm and "
          "rotary ops; see its genai_config.json).")


if __name__ == "__main__":
    main()
