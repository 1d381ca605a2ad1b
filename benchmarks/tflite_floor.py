"""Benchmark: how fast can dynamic-int8 MiniLM run in LiteRT on this host, at best? (issue 3's speed point)

    .venv/bin/python benchmarks/tflite_floor.py --artifacts DIR [--threads 2] [--rounds 5] [--runs 300]

DIR holds a pack of all-MiniLM-L6-v2 with onnx fp32 and tflite int8-dynamic (e.g. `minilm_targets.py --out DIR`).
The int8 artifact's time splits into two parts that no graph rewrite removes:

- its 36 linear layers, int8 weights with int8-quantized activations (XNNPACK's qd8 kernels): a LiteRT model of
  only those layers, the real MiniLM weights, quantized by the same ai-edge-quantizer recipe;
- its attention products (Q·Kᵀ, scale, mask, softmax, ·V), which stay float32 in a dynamic-range model (LiteRT
  quantizes activations only where one operand is a constant weight): a LiteRT model of only those.

Their sum is a floor for the whole artifact; its ratio to the fp32 ONNX artifact says whether 0.3x is reachable
on this CPU. What the rest costs in place is shown by removing it: the same model rebuilt with one signature
(seq_128), then without its GELUs, then without its LayerNorms (wrong outputs, timing only).
Everything is timed as `pack` times it: each model in a fresh process, in turn, `rounds` times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEQ = 128


def linear_layers(encoder):
    import torch

    class Linears(torch.nn.Module):
        """Every linear layer of the encoder, each fed its right-sized input, chained so none is dead code."""

        def __init__(self):
            super().__init__()
            self.layers = encoder.layer

        def forward(self, hidden):
            for layer in self.layers:
                att = layer.attention
                mixed = att.self.query(hidden) + att.self.key(hidden) + att.self.value(hidden)
                hidden = layer.output.dense(layer.intermediate.dense(att.output.dense(mixed)))
            return hidden

    return Linears()


def attention_products(config):
    import torch

    heads, size = config.num_attention_heads, config.hidden_size // config.num_attention_heads

    class Products(torch.nn.Module):
        """The float part of each layer's attention, as the eager BERT attention in the artifact computes it."""

        def forward(self, q, k, v, mask):
            out = v
            for _ in range(config.num_hidden_layers):
                scores = torch.matmul(q, k.transpose(2, 3)) * (size ** -0.5) + mask
                out = torch.matmul(torch.softmax(scores, dim=-1), out)
            return out

    shape = (1, heads, SEQ, size)
    return Products(), {"q": torch.randn(shape), "k": torch.randn(shape), "v": torch.randn(shape),
                        "mask": torch.zeros(1, 1, 1, SEQ)}


def convert(module, sample: dict, path: Path) -> Path:
    import litert_torch

    litert_torch.signature("serving_default", module.eval(), sample_kwargs=sample).convert().export(str(path))
    return path


def without(module, kind: str):
    """`module` with its GELUs or LayerNorms replaced by identity: only to time what they cost in place."""
    import torch

    for parent in list(module.modules()):
        if kind == "gelu" and hasattr(parent, "intermediate_act_fn"):
            parent.intermediate_act_fn = torch.nn.Identity()
        for name, child in parent.named_children():
            if kind == "layernorm" and isinstance(child, torch.nn.LayerNorm):
                setattr(parent, name, torch.nn.Identity())
    return module


def dynamic_int8(path: Path) -> Path:
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(path), recipe.dynamic_wi8_afp32())
    out = path.with_name(path.stem + "-int8-dynamic.tflite")
    qt.quantize().export_model(str(out), overwrite=True)
    return out


def main() -> None:
    import torch

    from edgepack.bench.latency import cpu_name, measure
    from edgepack.targets import quiet_toolchain

    sys.path.insert(0, str(HERE))
    from minilm_targets import minilm_task

    parser = argparse.ArgumentParser()
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()

    task = minilm_task()
    torch.manual_seed(0)
    model = task.torch_module()
    bert = next(m for m in model.modules() if hasattr(m, "encoder") and hasattr(m, "config"))
    config = bert.config
    tmp = Path(tempfile.mkdtemp())
    with quiet_toolchain(), torch.inference_mode():
        hidden = torch.randn(1, SEQ, config.hidden_size)
        linears = dynamic_int8(convert(linear_layers(bert.encoder), {"hidden": hidden}, tmp / "linears.tflite"))
        products_module, products_sample = attention_products(config)
        products = convert(products_module, products_sample, tmp / "attention-products.tflite")
        one_bucket = task.sample_inputs(SEQ)
        variants = {name: dynamic_int8(convert(module, one_bucket, tmp / f"{name}.tflite"))
                    for name, module in [("whole", task.torch_module()),
                                         ("no-gelu", without(task.torch_module(), "gelu")),
                                         ("no-layernorm", without(task.torch_module(), "layernorm"))]}

    text = task.encode([" ".join(["edge"] * 200)], SEQ)
    assert int(text["attention_mask"].sum()) == SEQ
    runs = {
        "onnx fp32 (artifact)": (args.artifacts / "onnx/model-fp32.onnx", text),
        "tflite int8-dynamic (artifact)": (args.artifacts / "tflite/model-int8-dynamic.tflite", text),
        "its 36 linear layers, int8-dynamic": (linears, {"hidden": hidden.numpy()}),
        "its attention products, float32": (products, {k: v.numpy() for k, v in products_sample.items()}),
        "the artifact rebuilt, one signature": (variants["whole"], text),
        "  the same without its 6 GELUs": (variants["no-gelu"], text),
        "  the same without its 13 LayerNorms": (variants["no-layernorm"], text),
    }
    p50s: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(args.rounds):  # each round starts one model later: no model always follows the same one
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            path, feed = runs[name]
            p50s[name].append(measure(Path(path), feed, args.threads, 20, args.runs)["p50"])
    median = {name: float(np.median(v)) for name, v in p50s.items()}

    layers, hidden_size, inter = config.num_hidden_layers, config.hidden_size, config.intermediate_size
    linear_macs = layers * SEQ * (4 * hidden_size * hidden_size + 2 * hidden_size * inter)
    product_macs = layers * 2 * SEQ * SEQ * hidden_size
    onnx, artifact = median["onnx fp32 (artifact)"], median["tflite int8-dynamic (artifact)"]
    floor = median["its 36 linear layers, int8-dynamic"] + median["its attention products, float32"]
    rate = {"onnx fp32 (artifact)": (linear_macs + product_macs) / onnx,
            "tflite int8-dynamic (artifact)": (linear_macs + product_macs) / artifact,
            "its 36 linear layers, int8-dynamic": linear_macs / median["its 36 linear layers, int8-dynamic"],
            "its attention products, float32": product_macs / median["its attention products, float32"]}
    lines = ["# How fast can dynamic-int8 MiniLM run in LiteRT here? (issue 3's speed point)", "",
             f"Command: `.venv/bin/python benchmarks/tflite_floor.py --artifacts DIR --threads {args.threads} "
             f"--rounds {args.rounds} --runs {args.runs}`. Host: {cpu_name()}, {args.threads} threads. Batch 1, "
             f"sequence {SEQ}; each model in a fresh process ({args.runs} timed runs after 20 warm-up), "
             f"{args.rounds} rounds (models in turn, each round starting one model later); the table gives the "
             "median of the rounds' p50.", "",
             "| model | median p50 ms | p50 of each round | multiply-adds per second |", "|---|---|---|---|"]
    for name, values in p50s.items():
        lines.append(f"| {name} | {median[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} "
                     f"| {f'{rate[name] / 1e6:.0f} G' if name in rate else '-'} |")
    whole = median["the artifact rebuilt, one signature"]
    lines += ["", f"- Linear layers: {linear_macs / 1e9:.2f} G multiply-adds; attention products "
              f"{product_macs / 1e9:.3f} G.",
              f"- Floor (linear layers + attention products): **{floor:.2f} ms = {floor / onnx:.3f}x** the fp32 ONNX "
              f"artifact; the int8 artifact itself: {artifact:.2f} ms = **{artifact / onnx:.3f}x** (limit 0.30x).",
              f"- Everything else in the artifact (layer norms, GELU, reshapes, embeddings, pooling): "
              f"{artifact - floor:.2f} ms. In place, removing the GELUs saves "
              f"{whole - median['  the same without its 6 GELUs']:.2f} ms and removing the LayerNorms "
              f"{whole - median['  the same without its 13 LayerNorms']:.2f} ms (of {whole:.2f} ms)."]
    (HERE / "tflite_floor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
