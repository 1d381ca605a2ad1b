"""Per-op cost counting over an exported ONNX graph: FLOPs, bytes moved and precision of every node.

Concrete shapes come from running the model once: a copy of the graph lists every intermediate value as an output,
onnxruntime runs it on the caller's inputs, and each node is costed from the real shapes of what it read and wrote.
That works for any graph onnxruntime can run (plain, fp16, dynamic-int8, com.microsoft fused ops) without relying on
shape inference, which does not know the contrib ops.

Conventions: a multiply-add is 2 FLOPs; `bytes` is what the op reads (inputs, weights included) plus what it writes.
Nodes whose inputs are all constant are skipped, as onnxruntime folds them when it loads the model (it keeps
DequantizeLinear, so a dequantized weight table is paid on every run, as it is in onnxruntime, except in a QDQ
node unit: a MatMul/Gemm/Conv fed only by DequantizeLinear is fused with them into one int8 kernel). Identity is skipped
too, and so are a Pad feeding a Conv or pool and an activation right after a Conv or Gemm (onnxruntime fuses both when it
loads the model). Other load-time rewrites (Gelu/LayerNorm/attention fusion of decomposed graphs, ...) are not
modelled: those ops count as written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ..errors import ExportError, one_line
from .opcost import OpCost

SUFFIX = ".onnx"
RUNTIME = "onnxruntime"


INT8_OPS = {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearMatMul", "QGemm",
            "ConvInteger", "QLinearConv", "QAttention", "QEmbedLayerNormalization"}
MATMUL_OPS = {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "MatMulInteger", "MatMulIntegerToFloat",
              "DynamicQuantizeMatMul", "QLinearMatMul", "QGemm", "MatMulNBits"}
MATMUL_BIAS_INPUT = {"Gemm": 2, "FusedGemm": 2, "QGemm": 6, "DynamicQuantizeMatMul": 4, "MatMulIntegerToFloat": 6,
                     "MatMulNBits": 5}
CONV_OPS = {"Conv", "FusedConv", "NhwcConv", "ConvInteger", "QLinearConv", "ConvTranspose"}
ATTENTION_OPS = {"Attention", "QAttention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention",
                 "PackedMultiHeadAttention", "DecoderMaskedMultiHeadAttention"}
NORM_OPS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
            "SkipSimplifiedLayerNormalization", "RMSNormalization", "BatchNormalization", "InstanceNormalization",
            "GroupNormalization", "MeanVarianceNormalization", "LpNormalization", "Softmax", "LogSoftmax"}
EMBED_OPS = {"EmbedLayerNormalization", "QEmbedLayerNormalization"}
QUANT_OPS = {"DynamicQuantizeLinear": 4, "QuantizeLinear": 2, "DequantizeLinear": 2}
# Elementwise ops with their rough FLOPs per output element (transcendentals cost ~10).
ELEMENTWISE_OPS = {
    **dict.fromkeys(["Add", "Sub", "Mul", "Div", "Neg", "Abs", "Relu", "LeakyRelu", "PRelu", "Clip", "Min", "Max",
                     "Sum", "Mean", "Where", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not",
                     "And", "Or", "Xor", "Floor", "Ceil", "Round", "Sign", "Mod", "Reciprocal", "BiasAdd",
                     "HardSigmoid", "HardSwish", "IsNaN", "IsInf"], 1),
    **dict.fromkeys(["Sqrt", "Pow", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Sin", "Cos", "Softplus", "Softsign",
                     "Elu", "Selu", "Celu", "Mish", "Gelu", "FastGelu", "QuickGelu", "BiasGelu"], 10),
}
# Pooling and reductions: memory-bound like elementwise ops; FLOPs are counted from the input size.
REDUCE_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "ReduceMean", "ReduceSum",
              "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp",
              "ArgMax", "ArgMin", "CumSum"}
VIEW_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Shape", "Size", "Dropout"}  # metadata only: no bytes
MOVE_OPS = VIEW_OPS | {"Transpose", "Concat", "Slice", "Split", "Expand", "Pad", "Cast", "CastLike", "Tile",
                       "Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements", "ConstantOfShape",
                       "Range", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "Trilu", "NonZero", "OneHot",
                       "Compress", "TopK"}
SKIPPED_OPS = {"Constant", "Identity"}
FUSABLE_ACTIVATIONS = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh"}  # into a preceding Conv/Gemm
NEVER_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
                "DequantizeLinear"}  # onnxruntime keeps these even when their inputs are constant


@dataclass(frozen=True)
class _Value:
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


def count(path: str | Path, inputs: dict[str, np.ndarray], signature: str | None = None) -> list[OpCost]:
    return count_onnx_costs(path, inputs)


def input_specs(path: Path, sequence_length: int, signature: str | None = None) -> list[tuple]:
    from ..errors import UsageError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - missing file, not a protobuf
        raise UsageError(f"{path}: cannot read the ONNX model ({type(exc).__name__})") from None
    init = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in init:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        shape = [d if d else (1 if i == 0 else sequence_length) for i, d in enumerate(dims)]
        specs.append((value.name, shape, helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return specs


def count_onnx_costs(onnx_path: str | Path, inputs: dict[str, np.ndarray]) -> list[OpCost]:
    """Cost every node of the graph at `onnx_path` for one run on `inputs` (the model's feeds, by name)."""
    values, model = _run_for_shapes(Path(onnx_path), inputs)
    graph = model.graph
    const = {init.name for init in graph.initializer} - set(inputs)
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    costs = []
    for index, node in enumerate(graph.node):
        ins = [name for name in node.input if name]
        if node.op_type in SKIPPED_OPS or (ins and node.op_type not in NEVER_FOLDED
                                           and all(name in const for name in ins)):
            const.update(o for o in node.output if o)  # folded by onnxruntime at load time
            continue
        if _fused_at_load(node, producer, consumers, graph_outputs):
            continue
        users = consumers.get(node.output[0], []) if node.output else []
        if node.op_type == "DequantizeLinear" and users and all(_qdq_unit(u, producer, consumers) for u in users):
            continue  # part of a QDQ node unit that onnxruntime runs as one int8 kernel
        cost = _cost(node, node.name or f"{node.op_type}_{index}", values, const)
        costs.append(replace(cost, precision="int8") if _qdq_unit(node, producer, consumers) else cost)
    return costs


def _qdq_unit(node, producer, consumers) -> bool:
    """A MatMul/Gemm fed only by DequantizeLinear, or such a Conv whose output is quantized again (static int8 in
    QDQ form): onnxruntime's QDQ transformer fuses it with those DequantizeLinear into one int8 kernel
    (QLinearMatMul, MatMulIntegerToFloat, QGemm, QLinearConv) when it loads the model, so neither a float matmul nor
    a per-run weight dequantization is paid."""
    if node.op_type not in ("MatMul", "Gemm", "Conv"):
        return False
    data = [name for name in node.input[:2] if name]
    if not data or any(getattr(producer.get(name), "op_type", None) != "DequantizeLinear" for name in data):
        return False
    users = consumers.get(node.output[0], [])
    return node.op_type != "Conv" or (bool(users) and all(u.op_type == "QuantizeLinear" for u in users))


def _fused_at_load(node, producer, consumers, graph_outputs) -> bool:
    """The two load-time fusions of onnxruntime that matter most for conv nets (PadFusion, ConvActivationFusion)."""
    if node.op_type == "Pad":
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        users = consumers.get(node.output[0], [])
        return (mode == b"constant" and node.output[0] not in graph_outputs and bool(users)
                and all(u.op_type in ("Conv", "MaxPool", "AveragePool") for u in users))
    if node.op_type in FUSABLE_ACTIVATIONS and node.input:
        source = producer.get(node.input[0])
        return (source is not None and source.op_type in ("Conv", "Gemm") and node.input[0] not in graph_outputs
                and len(consumers.get(node.input[0], [])) == 1)
    return False


def _run_for_shapes(path: Path, inputs: dict[str, np.ndarray]) -> tuple[dict[str, _Value], onnx.ModelProto]:
    import onnxruntime as ort

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - missing file, bad protobuf
        raise ExportError(f"{path}: cannot read the ONNX model ({one_line(exc)})") from None
    values = {init.name: _Value(tuple(init.dims), helper.tensor_dtype_to_np_dtype(init.data_type))
              for init in model.graph.initializer}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    listed = {o.name for o in probe.graph.output} | {i.name for i in probe.graph.input}
    for node in probe.graph.node:
        for out in node.output:
            if out and out not in listed:
                probe.graph.output.append(onnx.ValueInfoProto(name=out))
                listed.add(out)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every node as written
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # a failed run is raised below as one line; no coloured log on stderr too
    options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                     str(path.resolve().parent))
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, inputs)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises many types
        raise ExportError(f"{path}: could not run the model on the given inputs to read its shapes "
                          f"({one_line(exc)})") from None
    for name, array in [*inputs.items(), *zip(names, results)]:
        if isinstance(array, np.ndarray):
            values[name] = _Value(tuple(array.shape), array.dtype)
    return values, model


def _precision(node: onnx.NodeProto, vals: list[_Value]) -> str:
    if node.op_type in INT8_OPS:
        return "int8"
    dtypes = {v.dtype for v in vals}
    if any(d == np.float16 or d.name == "bfloat16" for d in dtypes):
        return "fp16"
    if dtypes and all(d in (np.int8, np.uint8) for d in dtypes):
        return "int8"
    return "fp32"


def _cost(node: onnx.NodeProto, name: str, values: dict[str, _Value], const: set[str]) -> OpCost:
    op = node.op_type
    ins = [values.get(n) if n else None for n in node.input]
    outs = [values.get(n) for n in node.output if n]
    present = [v for v in ins + outs if v is not None]
    io_bytes = sum(v.nbytes for v in present)
    out = outs[0] if outs and outs[0] is not None else None
    out_numel = out.numel if out else 0
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    flops, known, variant = 0, True, ""
    if op in MATMUL_OPS:
        kind, flops = "matmul", _matmul_flops(op, ins, out_numel, attrs)
    elif op in CONV_OPS:
        weight = ins[3] if op == "QLinearConv" else ins[1]
        depthwise = attrs.get("group", 1) > 1 and weight is not None and weight.shape[1] == 1
        kind = "depthwise" if depthwise else "conv"
        if weight is not None and op == "ConvTranspose":
            flops = 2 * ins[0].numel * math.prod(weight.shape[1:])
        elif weight is not None:
            flops = 2 * out_numel * math.prod(weight.shape[1:])
        if (kind == "conv" and weight is not None and tuple(weight.shape[2:]) == (3, 3)
                and set(attrs.get("strides", [1])) == {1} and attrs.get("group", 1) == 1):
            variant = "3x3s1"
        bias = 8 if op == "QLinearConv" else 2
        if op != "ConvInteger" and len(ins) > bias and ins[bias] is not None:
            flops += out_numel
    elif op in ATTENTION_OPS:
        kind, flops = "attention", _attention_flops(op, ins, outs, attrs)
    elif op in NORM_OPS:
        kind, flops = "normalization", 8 * out_numel
    elif op in EMBED_OPS or (op == "Gather" and node.input[0] in const and ins[0] and len(ins[0].shape) == 2):
        kind, flops = "embedding", (10 * out_numel if op in EMBED_OPS else 0)
        # Only the looked-up rows are read, not the whole table.
        tables = {2, 3, 4} if op in EMBED_OPS else {0}
        rows = (len(tables) if op in EMBED_OPS else 1) * (out.nbytes if out else 0)
        io_bytes = rows + sum(v.nbytes for i, v in enumerate(ins) if v is not None and i not in tables)
        io_bytes += sum(v.nbytes for v in outs if v is not None)
    elif op in QUANT_OPS:
        kind, flops = "quantize", QUANT_OPS[op] * (ins[0].numel if ins[0] else out_numel)
    elif op in ELEMENTWISE_OPS:
        kind, flops = "elementwise", ELEMENTWISE_OPS[op] * out_numel
    elif op in REDUCE_OPS:
        kernel = math.prod(attrs.get("kernel_shape", [1]))
        if ins[0] is not None and len(ins[0].shape) > 2:  # a window larger than the input reads only the input
            kernel = min(kernel, math.prod(ins[0].shape[2:]))
        kind = "elementwise"
        flops = out_numel * kernel if op in ("MaxPool", "AveragePool", "LpPool") else (ins[0].numel if ins[0] else 0)
    elif op in MOVE_OPS:
        kind = "data-movement"
        if op in VIEW_OPS:
            io_bytes = 0
        elif op in ("Gather", "Slice", "GatherElements", "GatherND") and out:  # reads what it copies
            io_bytes = 2 * out.nbytes + sum(v.nbytes for v in ins[1:] if v is not None)
    else:
        kind, known = "other", False
    return OpCost(name, op, kind, int(flops), int(io_bytes), _precision(node, present), known, variant)


def _matmul_flops(op: str, ins: list[_Value | None], out_numel: int, attrs: dict) -> int:
    a = ins[0]
    if op == "MatMulNBits":
        k = attrs.get("K", 0)
    elif a is None:
        return 0
    elif op in ("Gemm", "FusedGemm", "QGemm"):
        k = a.shape[0] if attrs.get("transA", 0) else a.shape[-1]
    elif op == "FusedMatMul" and attrs.get("transA", 0):
        k = a.shape[-2]
    else:
        k = a.shape[-1] if a.shape else 1
    flops = 2 * out_numel * k
    bias = MATMUL_BIAS_INPUT.get(op)
    if bias is not None and len(ins) > bias and ins[bias] is not None:
        flops += out_numel
    return flops


def _attention_flops(op: str, ins: list[_Value | None], outs: list[_Value | None], attrs: dict) -> int:
    heads = attrs.get("num_heads", 1)
    out = outs[0]
    if out is None or len(out.shape) < 3:
        return 0
    batch, seq, hidden_v = out.shape[0], out.shape[1], out.shape[-1]
    flops = 0
    if op in ("Attention", "QAttention") and ins[0] is not None and ins[1] is not None:
        hidden_in, qkv = ins[0].shape[-1], ins[1].shape[-1]
        flops += 2 * batch * seq * hidden_in * qkv + batch * seq * qkv  # QKV projection + bias
        sizes = attrs.get("qkv_hidden_sizes") or [qkv // 3] * 3
        hidden_q, hidden_v = sizes[0], sizes[2]
    else:
        hidden_q = hidden_v
    total = seq  # key length: from a present/past output when there is one, else from the key input
    present = [v for v in outs[1:] if v is not None and len(v.shape) >= 4]
    key = ins[1] if op in ("MultiHeadAttention", "GroupQueryAttention") and len(ins) > 1 else None
    if present:
        total = present[0].shape[-2]
    elif key is not None and len(key.shape) in (3, 4):
        total = key.shape[1] if len(key.shape) == 3 else key.shape[2]
    flops += 2 * batch * seq * total * (hidden_q + hidden_v)  # Q.K^T and P.V
    flops += 5 * batch * heads * seq * total  # scale, mask, softmax
    return flops
