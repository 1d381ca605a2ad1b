"""Decoder LMs to ONNX with a KV cache: optimum's `text-generation-with-past` export (one model.onnx that does
prefill and decode), then weight-only quantization to MatMulNBits (int8 / int4; RTN or HQQ, block size given)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ExportError, UsageError, one_line

PRECISIONS = ("fp32", "int8-weight", "int4-weight")
METHODS = ("rtn", "hqq", "affine")


def export_kv(source, task, dest: Path, opset: int = 17) -> Path:
    """`dest/model.onnx` (+ external data when large), and the tokenizer, chat template and generation config."""
    from optimum.exporters.onnx import main_export

    dest.mkdir(parents=True, exist_ok=True)
    try:
        main_export(str(source.path), output=str(dest), task=task.optimum_task, opset=opset, device="cpu",
                    trust_remote_code=source.trust_remote_code)
    except Exception as exc:  # the exporter raises anything from ValueError to KeyError on unsupported models
        raise ExportError(f"optimum could not export {source.model_id!r} with a KV cache: {one_line(exc)}",
                          "check the model family is supported by optimum's ONNX exporter") from None
    task.save_preprocessor(dest)
    return dest / "model.onnx"


def fold_weight_transposes(model) -> int:
    """A tied lm_head is exported as MatMul(x, Transpose(embedding table)): the quantizer skips a MatMul whose
    weight is not a constant, so the transposed table becomes its own constant. Returns how many were folded."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    folded = []
    for node in model.graph.node:
        if node.op_type == "Transpose" and len(node.input) == 1 and node.input[0] in inits:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            data = numpy_helper.to_array(inits[node.input[0]], base_dir="")
            model.graph.initializer.append(numpy_helper.from_array(data.transpose(perm), node.output[0]))
            folded.append(node)
    for node in folded:
        model.graph.node.remove(node)
    return len(folded)


def lm_head(model) -> str | None:
    """The MatMul that writes the `logits` output (the lm_head), by node name; None when there is none."""
    return next((n.name for n in model.graph.node if n.op_type == "MatMul" and "logits" in n.output), None)


def _nbits(model, bits: int, block_size: int, method: str, ops: tuple, symmetric: bool, accuracy_level, exclude=()):
    """One MatMulNBitsQuantizer pass over `ops` (nodes in `exclude` kept as they are); returns the new ModelProto."""
    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    axes = (("MatMul", 0), ("Gather", 1))
    if method == "hqq":
        config = nbits.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits, op_types_to_quantize=ops)
    else:  # onnxruntime's default is blockwise round-to-nearest (its "RTN" config is neural-compressor's)
        config = nbits.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric, bits=bits,
                                                    accuracy_level=accuracy_level, op_types_to_quantize=ops,
                                                    quant_axes=axes)
    quant = nbits.MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=symmetric, bits=bits,
                                       accuracy_level=accuracy_level, algo_config=config, op_types_to_quantize=ops,
                                       quant_axes=axes, nodes_to_exclude=list(exclude))
    quant.process()
    if accuracy_level:  # HQQ's quantizer does not pass it on
        for node in quant.model.model.graph.node:
            if node.op_type == "MatMulNBits" and not any(a.name == "accuracy_level" for a in node.attribute):
                node.attribute.append(onnx.helper.make_attribute("accuracy_level", accuracy_level))
    return quant.model.model


def affine_int4(model, block_size: int, accuracy_level: int | None = 4, exclude=()):
    """int4 as llama.cpp's Q4_1: per block of `block_size` inputs a scale and a float minimum (w ~ d*q + m, q in
    0..15). onnxruntime's fast MatMulNBits kernels take integer zero points only (HQQ's float ones fall back to a
    slow path), so the weights go in as symmetric int4, d*(q-8), and the offsets m+8d as a second float MatMul on
    the block sums of the input: 1/block_size of the weight's size. Returns the number of MatMuls converted."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    nodes, sums, summed, converted = [], {}, {}, 0
    for node in model.graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        w = numpy_helper.to_array(weight) if weight is not None and node.name not in exclude else None
        if w is None or w.ndim != 2 or w.dtype != np.float32 or w.shape[0] % block_size:
            nodes.append(node)
            continue
        k, n = w.shape
        blocks = w.T.reshape(n, k // block_size, block_size)
        low = blocks.min(-1, keepdims=True)
        scale = (blocks.max(-1, keepdims=True) - low) / 15
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)  # a constant block: q = 0, the offset carries it
        q = np.clip(np.rint((blocks - low) / scale), 0, 15).astype(np.uint8)
        packed = q[..., 0::2] | (q[..., 1::2] << 4)  # MatMulNBits layout: (N, blocks, block_size / 2), low nibble first
        if k not in sums:  # (K, blocks) ones: x @ it sums x over each block of inputs
            sums[k] = numpy_helper.from_array(np.kron(np.eye(k // block_size, dtype=np.float32),
                                                      np.ones((block_size, 1), np.float32)), f"affine_block_sums_{k}")
            model.graph.initializer.append(sums[k])
        base = weight.name
        model.graph.initializer.extend([
            numpy_helper.from_array(packed, f"{base}_Q4"), numpy_helper.from_array(scale.reshape(-1), f"{base}_scales"),
            numpy_helper.from_array((low + 8 * scale).reshape(n, -1).T.copy(), f"{base}_offsets")])
        x, y = node.input[0], node.output[0]
        attrs = {"K": k, "N": n, "bits": 4, "block_size": block_size} | (
            {"accuracy_level": accuracy_level} if accuracy_level else {})
        if (x, k) not in summed:  # q/k/v (and gate/up) read the same input: its block sums are computed once
            summed[x, k] = f"{y}_block_sums"
            nodes.append(helper.make_node("MatMul", [x, sums[k].name], [summed[x, k]], name=f"{node.name}_block_sums"))
        nodes += [helper.make_node("MatMulNBits", [x, f"{base}_Q4", f"{base}_scales"], [f"{y}_q4"],
                                   name=f"{node.name}_Q4", domain="com.microsoft", **attrs),
                  helper.make_node("MatMul", [summed[x, k], f"{base}_offsets"], [f"{y}_offsets"],
                                   name=f"{node.name}_offsets"),
                  helper.make_node("Add", [f"{y}_q4", f"{y}_offsets"], [y], name=f"{node.name}_affine")]
        if uses.get(base) == 1:
            model.graph.initializer.remove(weight)
        converted += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if converted and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return converted


def quantize_weights(fp32: Path, dest: Path, precision: str, block_size: int = 32, method: str = "rtn",
                     embeddings: bool = True, accuracy_level: int | None = 4, symmetric: bool = True,
                     lm_head_bits: int | None = None) -> Path:
    """MatMulNBits weights (bits 8 or 4, one scale per `block_size` inputs) for every MatMul with a constant weight,
    written to `dest/model.onnx`. With `embeddings`, int4 also quantizes the embedding table (GatherBlockQuantized,
    always RTN: onnxruntime's gather kernel takes no float zero points). `lm_head_bits` (e.g. 8) quantizes the
    lm_head apart from the other MatMuls. `accuracy_level` 4 lets onnxruntime's CPU kernels compute in int8 (its
    fast path); None keeps float math."""
    if precision not in PRECISIONS[1:]:
        raise UsageError(f"no weight-only quantization named {precision!r}", f"choose from {PRECISIONS[1:]}")
    if method not in METHODS:
        raise UsageError(f"no int4 method named {method!r}", f"choose from {METHODS}")
    bits = 8 if precision == "int8-weight" else 4
    import onnx

    model = onnx.load(str(fp32))
    fold_weight_transposes(model)
    head = lm_head(model)
    apart = [head] if head and lm_head_bits and lm_head_bits != bits else []
    gathers = bits == 4 and embeddings
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 21)
    if gathers and opset < 21:  # the quantizer needs opset 21 (int4 tensors) for gathers: convert the graph first
        from onnx import version_converter

        model = version_converter.convert_version(model, 21)
    if method == "affine" and bits == 4:
        affine_int4(model, block_size, accuracy_level, apart)
    else:
        model = _nbits(model, bits, block_size, method, ("MatMul",), symmetric, accuracy_level, apart)
    if apart:  # the lm_head alone: affine's offset and block-sum MatMuls have constant weights too, and stay float
        others = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name != head]
        model = _nbits(model, lm_head_bits, block_size, "rtn", ("MatMul",), symmetric, accuracy_level, others)
    if gathers:  # the embedding table is a fifth of a small LM
        model = _nbits(model, 4, block_size, "rtn", ("Gather",), True, accuracy_level)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "model.onnx"
    from onnxruntime.quantization.onnx_model import ONNXModel

    ONNXModel(model).save_model_to_file(str(out), use_external_data_format=model.ByteSize() > 1_900_000_000)
    for item in fp32.parent.iterdir():  # the tokenizer and configs travel with every artifact
        if item.suffix in (".json", ".jinja", ".txt") and not (dest / item.name).exists():
            shutil.copyfile(item, dest / item.name)
    return out


WEIGHT_ONLY_DEFAULTS = {"method": "rtn", "block_size": 32, "embeddings": True, "symmetric": True, "lm_head_bits": None}


def build_weight_only(fp32: Path, dest: Path, precision: str, options: dict, workdir: Path, tied: bool = False) -> dict:
    """`pack`'s int8-weight / int4-weight artifact at `dest` with the recipe's `weight_only` options; returns the
    settings for the report, the precision of the embeddings and the lm_head said."""
    import onnx

    given = {k: v for k, v in (options or {}).items() if v is not None}
    opts = WEIGHT_ONLY_DEFAULTS | given
    if precision == "int8-weight":
        opts |= {"method": "rtn", "lm_head_bits": None}
    folder = workdir / f"weight-only-{precision}"
    out = quantize_weights(fp32, folder, precision, block_size=opts["block_size"], method=opts["method"],
                           embeddings=opts["embeddings"], symmetric=opts["symmetric"],
                           lm_head_bits=opts["lm_head_bits"])
    shutil.move(str(out), str(dest))
    shutil.rmtree(folder, ignore_errors=True)
    model = onnx.load(str(dest), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    if "MatMulNBits" not in ops:
        raise ExportError(f"{precision}: no MatMul was quantized (the graph has no MatMul with a constant weight)")
    bits = 8 if precision == "int8-weight" else 4
    gathered = "GatherBlockQuantized" in ops
    return {"tool": "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer",
            "algorithm": opts["method"].upper(), "weights": f"int{bits}, blocks of {opts['block_size']}: " + {
                "rtn": "round to nearest, " + ("symmetric" if opts["symmetric"] else "integer zero points"),
                "hqq": "HQQ, float zero points (onnxruntime's slower MatMulNBits path)",
                "affine": "scale and float minimum per block (llama.cpp Q4_1-style) as symmetric MatMulNBits plus a "
                          "float offset MatMul on the input's block sums"}[opts["method"]],
            "matmuls_converted": ops.count("MatMulNBits"), "accuracy_level": 4,
            "embeddings": f"int4 blocks of {opts['block_size']} (GatherBlockQuantized)" if gathered else "float32",
            "lm_head": f"int{opts['lm_head_bits'] or bits}" + (" (tied: its own quantized copy of the embedding "
                                                                "table)" if tied else ""),
            "activations": "float32 (int8 compute inside MatMulNBits)"}

