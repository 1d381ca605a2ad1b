"""Graph passes on ONNX models: in-graph pooling, onnxruntime's transformer fusions, activation smoothing.

Smoothing is what lets dynamic int8 keep sentence embeddings: BERT's activations have a few outlier channels, and
dynamic quantization gives each activation tensor one uint8 scale, so the outliers crush every other channel.
Following SmoothQuant (Xiao et al., 2023), each activation channel j feeding a weight MatMul is divided by
s_j = amax(X_j)^alpha / amax(W_j)^(1-alpha) and the weight row j multiplied by it: the product is unchanged in float,
but both sides become easy to quantize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Encoders onnxruntime's "bert" fusions handle (Attention, SkipLayerNormalization, EmbedLayerNormalization, Gelu).
FUSABLE_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "mpnet"}

# Generic sentences for the smoothing statistics: a fixed set, not the evaluation data, so no test sample leaks in.
CALIBRATION_TEXTS = [
    "The quick brown fox jumps over the lazy dog.", "I can't believe how good this new phone is!",
    "Traffic was terrible this morning, took me two hours to get to work.", "What time does the store open on Sundays?",
    "The committee will publish its final report next week.", "lol that movie was sooo bad but i loved it anyway",
    "Scientists have discovered a new species of frog in the rainforest.",
    "Please remember to bring your passport and boarding pass.", "My flight got cancelled again. Worst airline ever. #fail",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Stock markets rallied after the central bank held interest rates steady.",
    "Happy birthday!!! Hope you have an amazing day :)", "He scored twice in the second half to win the match.",
    "How do I reset my password if I no longer have access to my email?",
    "The museum's new exhibit features paintings from the 18th century.", "ugh monday again... need coffee",
    "Self-driving cars could reduce accidents, but many people don't trust them yet.",
    "The hotel room was clean, quiet and the staff were very friendly.",
    "Heavy rain is expected across the region tomorrow afternoon.",
    "Check out our latest blog post: 10 tips for better sleep http://t.co/xyz",
    "I'm not sure this is the right approach, let's discuss it at the meeting.",
    "The battery life is disappointing and the screen scratches easily.",
    "Volunteers cleaned up the beach and collected over 200 kg of plastic.",
    "Can someone explain why my code throws a null pointer exception?",
    "Thank you so much for your help, I really appreciate it.", "The concert was postponed due to the singer's illness.",
    "RT @news: Breaking - earthquake of magnitude 6.1 hits the coast", "Electric vehicles are becoming cheaper every year.",
    "I have been waiting on hold for forty minutes. Unacceptable.",
    "She graduated with honors and started her first job in September.",
    "Google unveils new prototype of its driverless car with no steering wheel",
    "This is fine. Everything is fine. Nothing is on fire.",
]


def add_pooling(model: onnx.ModelProto, hidden: str, mode: str, normalize: bool,
                output: str = "sentence_embedding") -> None:
    """Append pooling over `attention_mask` ("mean" or "cls") and optional L2 normalisation as output `output`."""
    g = model.graph
    consts = {"_pool_axis_last": np.array([-1], np.int64), "_pool_axis_seq": np.array([1], np.int64),
              "_pool_eps_count": np.array(1e-9, np.float32), "_pool_eps_norm": np.array(1e-12, np.float32)}
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    pooled = "_pool_out" if normalize else output
    if mode == "mean":
        nodes = [
            helper.make_node("Cast", ["attention_mask"], ["_pool_mask"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["_pool_mask", "_pool_axis_last"], ["_pool_mask3"]),
            helper.make_node("Mul", [hidden, "_pool_mask3"], ["_pool_masked"]),
            helper.make_node("ReduceSum", ["_pool_masked", "_pool_axis_seq"], ["_pool_sum"], keepdims=0),
            helper.make_node("ReduceSum", ["_pool_mask3", "_pool_axis_seq"], ["_pool_count"], keepdims=0),
            helper.make_node("Max", ["_pool_count", "_pool_eps_count"], ["_pool_count_safe"]),
            helper.make_node("Div", ["_pool_sum", "_pool_count_safe"], [pooled]),
        ]
    elif mode == "cls":
        g.initializer.append(numpy_helper.from_array(np.array(0, np.int64), "_pool_first"))
        nodes = [helper.make_node("Gather", [hidden, "_pool_first"], [pooled], axis=1)]
    else:
        raise ValueError(f"in-graph pooling supports mean and cls, not {mode}")
    if normalize:
        nodes += [
            helper.make_node("ReduceL2", [pooled, "_pool_axis_last"], ["_pool_norm"], keepdims=1),
            helper.make_node("Max", ["_pool_norm", "_pool_eps_norm"], ["_pool_norm_safe"]),
            helper.make_node("Div", [pooled, "_pool_norm_safe"], [output]),
        ]
    for i, node in enumerate(nodes):
        node.name = f"Pooling_{i}_{node.op_type}"
    g.node.extend(nodes)
    g.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch_size", None]))


def fuse_transformer(path: Path, dest: Path, config: dict, feeds: list[dict]) -> dict | None:
    """onnxruntime's BERT fusions; returns the fused-op counts, or None when the model is not a fusable encoder or
    the fused graph does not reproduce the plain one on `feeds` (the fuser guesses some roles from tensor sizes)."""
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = config.get("num_attention_heads") or config.get("n_heads"), config.get("hidden_size") or config.get("dim")
    layers = config.get("num_hidden_layers") or config.get("n_layers")
    if config.get("model_type") not in FUSABLE_MODEL_TYPES or not (heads and hidden):
        return None
    fused = optimize_model(str(path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    if stats.get("Attention", 0) != layers:
        return None  # a partial fusion is worse than none: keep the plain graph
    fused.save_model_to_file(str(dest))  # adds the com.microsoft opset import that .model lacks
    plain, merged = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (path, dest))
    for feed in feeds:
        expected, got = plain.run(None, feed)[0], merged.run(None, feed)[0]
        if not np.allclose(expected, got, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max())):
            return None
    return stats


def _activation_absmax(model: onnx.ModelProto, names: list[str], feeds: list[dict]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n not in have)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the tensors we ask for
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    amax: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed)):
            channel_max = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            amax[name] = np.maximum(amax[name], channel_max) if name in amax else channel_max
    return amax


def smooth_activations(model: onnx.ModelProto, feeds: list[dict], alpha: float, min_outlier_ratio: float = 0.0) -> dict:
    """SmoothQuant in place on every activation that feeds constant-weight MatMul or Attention nodes.

    X / s is folded exactly into the V projection when X is an Attention output (attention is linear in V);
    elsewhere a Mul is inserted before the consumers. Each Mul costs an extra pass over the activation, so those
    are only inserted where the activation has outliers: max over channels of amax / median >= `min_outlier_ratio`.
    """
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {out: n for n in g.node for out in n.output}
    uses: dict[str, int] = {}
    for n in g.node:
        for name in n.input:
            uses[name] = uses.get(name, 0) + 1
    groups: dict[str, list] = {}
    for n in g.node:
        if n.op_type in ("MatMul", "Attention") and n.input[1] in inits and len(inits[n.input[1]].dims) == 2:
            groups.setdefault(n.input[0], []).append(n)
    amax = _activation_absmax(model, list(groups), feeds)
    inserted, folded, skipped, order = 0, 0, 0, list(g.node)
    for name, consumers in groups.items():
        source = producer.get(name)
        foldable = source is not None and source.op_type == "Attention" and uses.get(name) == len(consumers) == 1
        if not foldable and amax[name].max() < min_outlier_ratio * np.median(amax[name]):
            skipped += 1
            continue
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in consumers]
        w_max = np.max(np.stack([np.abs(w).max(axis=1) for w in weights]), axis=0)
        s = np.clip(np.maximum(amax[name], 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha), 1e-3, 1e3)
        s = s.astype(np.float32)
        for n, w in zip(consumers, weights):
            inits[n.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), n.input[1]))
        if foldable:
            qkv_w, qkv_b = inits[source.input[1]], inits[source.input[2]]
            w, b = numpy_helper.to_array(qkv_w).copy(), numpy_helper.to_array(qkv_b).copy()
            third = w.shape[1] // 3
            w[:, 2 * third:] /= s[None, :]
            b[2 * third:] /= s
            qkv_w.CopyFrom(numpy_helper.from_array(w.astype(np.float32), qkv_w.name))
            qkv_b.CopyFrom(numpy_helper.from_array(b.astype(np.float32), qkv_b.name))
            folded += 1
            continue
        g.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), f"{name}_smooth_inv"))
        mul = helper.make_node("Mul", [name, f"{name}_smooth_inv"], [f"{name}_smoothed"], name=f"{name}_SmoothMul")
        for n in consumers:
            n.input[0] = f"{name}_smoothed"
        order.insert(min(order.index(n) for n in consumers), mul)
        inserted += 1
    del g.node[:]
    g.node.extend(order)
    return {"alpha": alpha, "calibration_texts": len(feeds), "min_outlier_ratio": min_outlier_ratio,
            "smoothed_activations": inserted + folded, "mul_inserted": inserted, "folded_into_v": folded,
            "left_alone": skipped}
