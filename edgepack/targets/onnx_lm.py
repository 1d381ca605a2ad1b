"""Decoder LMs to ONNX with a KV cache: optimum's `text-generation-with-past` export (one model.onnx that does
prefill and decode), then weight-only quantization to MatMulNBits (int8 / int4; RTN or HQQ, block size given)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ExportError, UsageError, one_line

PRECISIONS = ("fp32", "int8-weight", "int4-weight")
METHODS = ("rtn", "hqq")


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


def quantize_weights(fp32: Path, dest: Path, precision: str, block_size: int = 32, method: str = "rtn",
                     embeddings: bool = True, accuracy_level: int | None = 4) -> Path:
    """MatMulNBits weights (bits 8 or 4, one scale per `block_size` inputs) for every MatMul with a constant weight;
    with `embeddings`, int4 RTN also quantizes the embedding table (GatherBlockQuantized). `accuracy_level` 4 lets
    onnxruntime's CPU kernels compute in int8 (its fast path); None keeps float math."""
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    if precision not in PRECISIONS[1:]:
        raise UsageError(f"no weight-only quantization named {precision!r}", f"choose from {PRECISIONS[1:]}")
    if method not in METHODS:
        raise UsageError(f"no int4 method named {method!r}", f"choose from {METHODS}")
    bits = 8 if precision == "int8-weight" else 4
    import onnx

    # The embedding table too (GatherBlockQuantized, blocks along the hidden axis): it is a fifth of a small LM.
    # onnxruntime quantizes gathers to 4 bits only, and HQQ does not cover them.
    ops = ("MatMul", "Gather") if bits == 4 and embeddings and method == "rtn" else ("MatMul",)
    axes = (("MatMul", 0), ("Gather", 1))
    model = onnx.load(str(fp32))
    fold_weight_transposes(model)
    if "Gather" in ops:  # the quantizer sets opset 21 (int4 tensors) when it quantizes gathers: convert the graph first
        from onnx import version_converter

        model = version_converter.convert_version(model, 21)
    if method == "hqq":
        config = nbits.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits, op_types_to_quantize=("MatMul",))
    else:  # onnxruntime's default is blockwise round-to-nearest (its "RTN" config is neural-compressor's)
        config = nbits.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, bits=bits,
                                                    accuracy_level=accuracy_level, op_types_to_quantize=ops,
                                                    quant_axes=axes)
    quant = nbits.MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=True, bits=bits,
                                       accuracy_level=accuracy_level, algo_config=config,
                                       op_types_to_quantize=config.op_types_to_quantize, quant_axes=axes)
    quant.process()
    if accuracy_level:  # HQQ's quantizer does not pass it on
        for node in quant.model.model.graph.node:
            if node.op_type == "MatMulNBits" and not any(a.name == "accuracy_level" for a in node.attribute):
                node.attribute.append(onnx.helper.make_attribute("accuracy_level", accuracy_level))
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "model.onnx"
    quant.model.save_model_to_file(str(out), use_external_data_format=quant.model.model.ByteSize() > 1_900_000_000)
    for item in fp32.parent.iterdir():  # the tokenizer and configs travel with every artifact
        if item.suffix in (".json", ".jinja", ".txt", ".model") and not (dest / item.name).exists():
            shutil.copyfile(item, dest / item.name)
    return out
