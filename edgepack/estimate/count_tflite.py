"""Per-op cost counting over a TFLite (LiteRT) flatbuffer: FLOPs, bytes and precision of every operator.

TFLite files store static shapes for every tensor, so the file is read with the flatbuffer schema that ai-edge-litert
ships (lazily: weights are never copied into Python) and nothing is run. One file may hold several signatures (one
subgraph each, e.g. a sequence-length bucket per signature); `signature` picks one, else the one whose input shapes
match the given inputs, else the first. Conventions follow edgepack.estimate.opcost: a multiply-add is 2 FLOPs; bytes = what an
op reads (weights included) plus what it writes; reshapes move nothing; DEQUANTIZE of a constant (fp16 weights) is
folded when the interpreter prepares the model, so it is skipped, except int4: XNNPACK (ai-edge-litert 2.3) does not
take int4 DEQUANTIZE, so the interpreter's own kernel expands those weights to fp32 on every run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ExportError, MissingExtra
from .opcost import OpCost

SUFFIX = ".tflite"
# LiteRT runs float and dynamic-int8 graphs through XNNPACK by default: the published XNNPACK rows are its family
# ("tflite" there are pre-XNNPACK TFLite kernels).
RUNTIME = "xnnpack"

TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 12: 8, 15: 4, 16: 2, 17: 0.5, 18: 2}
FLOAT16, INT4, INT8_TYPES = 1, 17, {3, 9, 17}  # INT8_TYPES: uint8, int8, int4

CONV = {"CONV_2D", "CONV_3D", "TRANSPOSE_CONV"}
MATMUL = {"FULLY_CONNECTED", "BATCH_MATMUL"}
NORM = {"SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION"}
QUANT = {"QUANTIZE", "DEQUANTIZE"}
VIEW = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "RANK"}
MOVE = VIEW | {"TRANSPOSE", "CONCATENATION", "SLICE", "STRIDED_SLICE", "PAD", "PADV2", "MIRROR_PAD", "CAST", "SPLIT",
               "SPLIT_V", "PACK", "UNPACK", "TILE", "BROADCAST_TO", "GATHER", "GATHER_ND", "SCATTER_ND", "FILL",
               "ZEROS_LIKE", "ONES_LIKE", "RANGE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "DEPTH_TO_SPACE",
               "SPACE_TO_DEPTH", "ONE_HOT", "DYNAMIC_UPDATE_SLICE", "REVERSE_V2", "SELECT", "SELECT_V2"}
TRANSCENDENTAL = {"EXP", "LOG", "LOGISTIC", "TANH", "GELU", "RSQRT", "SQRT", "POW", "SIN", "COS", "ELU", "HARD_SWISH"}
ELEMENTWISE = TRANSCENDENTAL | {"ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
                                "LEAKY_RELU", "PRELU", "MAXIMUM", "MINIMUM", "NEG", "ABS", "SQUARE",
                                "SQUARED_DIFFERENCE", "FLOOR", "CEIL", "ROUND", "SIGN", "FLOOR_DIV", "FLOOR_MOD",
                                "EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "LOGICAL_AND",
                                "LOGICAL_OR", "LOGICAL_NOT", "ADD_N", "CUMSUM"}
REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "ARG_MAX", "ARG_MIN", "AVERAGE_POOL_2D",
          "MAX_POOL_2D", "L2_POOL_2D"}
SKIPPED = {"DELEGATE", "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise MissingExtra("counting the costs of a .tflite file", "tflite") from None
    return schema


def signatures(path: str | Path) -> dict[str, dict[str, tuple[tuple[int, ...], str]]]:
    """{signature: {input name: (shape, dtype name)}} of a TFLite file (one "main" entry when it has none)."""
    schema = _schema()
    model = _load(path, schema)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    out = {}
    for key, index, inputs in _signature_defs(model):
        graph = model.Subgraphs(index)
        out[key] = {name: (tuple(int(d) for d in graph.Tensors(t).ShapeAsNumpy()), names.get(graph.Tensors(t).Type(),
                    "?").lower()) for name, t in inputs}
    return out


def count(path: str | Path, inputs: dict[str, np.ndarray], signature: str | None = None) -> list[OpCost]:
    return count_tflite_costs(path, inputs, signature)


def input_specs(path: Path, sequence_length: int, signature: str | None = None) -> list[tuple]:
    """The named signature's inputs, else the first signature's (TFLite shapes are static)."""
    from ..errors import UsageError

    sigs = signatures(path)
    chosen = sigs.get(signature) if signature else next(iter(sigs.values()))
    if chosen is None:
        raise UsageError(f"{path}: no signature {signature!r} (has: {', '.join(sigs)})")
    return [(name, list(shape), np.dtype(dtype)) for name, (shape, dtype) in chosen.items()]


def count_tflite_costs(path: str | Path, inputs: dict[str, np.ndarray] | None = None,
                       signature: str | None = None) -> list[OpCost]:
    schema = _schema()
    model = _load(path, schema)
    defs = _signature_defs(model)
    if signature is not None:
        chosen = [d for d in defs if d[0] == signature]
        if not chosen:
            raise ExportError(f"{path}: no signature {signature!r} (has: {', '.join(d[0] for d in defs)})")
    else:
        chosen = [d for d in defs if inputs and _shapes_match(model.Subgraphs(d[1]), d[2], inputs)] or defs[:1]
    graph = model.Subgraphs(chosen[0][1])
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    costs = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, "CUSTOM") if builtin != 32 else f"CUSTOM:{(code.CustomCode() or b'').decode()}"
        cost = _cost(model, graph, op, name, schema, f"{name}_{i}")
        if cost is not None:
            costs.append(cost)
    return costs


def _load(path, schema):
    try:
        buf = Path(path).read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the TFLite file ({exc.strerror or exc})") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ExportError(f"{path}: not a TFLite flatbuffer")
    return schema.Model.GetRootAs(buf, 0)


def _signature_defs(model) -> list[tuple[str, int, list[tuple[str, int]]]]:
    defs = []
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        ins = [(sig.Inputs(j).Name().decode(), sig.Inputs(j).TensorIndex()) for j in range(sig.InputsLength())]
        defs.append((sig.SignatureKey().decode(), sig.SubgraphIndex(), ins))
    if not defs:
        graph = model.Subgraphs(0)
        defs.append(("main", 0, [((graph.Tensors(t).Name() or b"").decode(), int(t)) for t in graph.InputsAsNumpy()]))
    return defs


def _shapes_match(graph, inputs: list[tuple[str, int]], feeds: dict[str, np.ndarray]) -> bool:
    shapes = {name: tuple(int(d) for d in graph.Tensors(t).ShapeAsNumpy()) for name, t in inputs}
    common = [n for n in feeds if n in shapes]
    if common:
        return all(tuple(np.shape(feeds[n])) == shapes[n] for n in common)
    # Converters often name signature inputs args_0, args_1...: match the shapes instead.
    return sorted(tuple(np.shape(v)) for v in feeds.values()) == sorted(shapes.values())


def _tensor(model, graph, index: int) -> tuple[tuple[int, ...], int, bool]:
    """(shape, dtype code, is constant) of tensor `index`."""
    t = graph.Tensors(index)
    buffer = model.Buffers(t.Buffer()) if t.Buffer() > 0 else None
    constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return shape, t.Type(), constant


def _table(name: str, ins) -> int | None:
    """Index of the constant 2-D lookup table of a GATHER (input 0) or EMBEDDING_LOOKUP (input 1), if any."""
    index = 1 if name == "EMBEDDING_LOOKUP" else 0
    value = ins[index] if len(ins) > index else None
    return index if value is not None and value[2] and len(value[0]) == 2 else None


def _cost(model, graph, op, name: str, schema, label: str) -> OpCost | None:
    if name in SKIPPED:
        return None
    ins = [_tensor(model, graph, int(t)) if t >= 0 else None for t in op.InputsAsNumpy()]
    outs = [_tensor(model, graph, int(t)) for t in op.OutputsAsNumpy()]
    if name == "DEQUANTIZE" and ins and ins[0] and ins[0][2] and ins[0][1] != INT4:
        return None  # constant fp16/int8 weights: dequantized once at load
    present = [v for v in ins + outs if v is not None]
    nbytes = sum(math.prod(s) * TYPE_BYTES.get(dt, 4) for s, dt, _ in present)
    out_numel = math.prod(outs[0][0]) if outs else 0
    flops, known, variant = 0, True, ""
    if name in CONV or name == "DEPTHWISE_CONV_2D":
        weight = ins[1][0] if len(ins) > 1 and ins[1] else ()
        kind = "depthwise" if name == "DEPTHWISE_CONV_2D" else "conv"
        if weight:
            per_out = math.prod(weight[1:3]) if kind == "depthwise" else math.prod(weight[1:])
            flops = 2 * out_numel * per_out
        if name == "CONV_2D" and len(weight) == 4 and weight[1:3] == (3, 3) and op.BuiltinOptions() is not None:
            options = schema.Conv2DOptions()
            table = op.BuiltinOptions()
            options.Init(table.Bytes, table.Pos)
            if options.StrideH() == options.StrideW() == 1 and options.DilationHFactor() == 1:
                variant = "3x3s1"
    elif name in MATMUL:
        kind, a = "matmul", ins[0][0] if ins[0] else ()
        k = a[-1] if a else 0
        if name == "BATCH_MATMUL" and op.BuiltinOptions() is not None and len(a) >= 2:
            options = schema.BatchMatMulOptions()
            table = op.BuiltinOptions()
            options.Init(table.Bytes, table.Pos)
            k = a[-2] if options.AdjX() else a[-1]
        elif name == "FULLY_CONNECTED" and len(ins) > 1 and ins[1]:
            k = ins[1][0][-1]
        flops = 2 * out_numel * k
    elif name in NORM:
        kind, flops = "normalization", 8 * out_numel
    elif name in QUANT:
        kind, flops = "quantize", 2 * out_numel
    elif name in ("GATHER", "EMBEDDING_LOOKUP") and _table(name, ins) is not None:
        kind, table = "embedding", _table(name, ins)  # only the looked-up rows are read
        nbytes = 2 * out_numel * TYPE_BYTES.get(ins[table][1], 4) + sum(
            math.prod(v[0]) * TYPE_BYTES.get(v[1], 4) for i, v in enumerate(ins) if v is not None and i != table)
    elif name in ELEMENTWISE:
        kind, flops = "elementwise", (10 if name in TRANSCENDENTAL else 1) * out_numel
    elif name in REDUCE:
        kind = "elementwise"
        flops = math.prod(ins[0][0]) if ins and ins[0] else out_numel
    elif name in MOVE:
        kind = "data-movement"
        if name in VIEW:
            nbytes = 0
    else:
        kind, known = "other", False
    types = {dt for _, dt, _ in present}
    weight_types = {ins[1][1]} if len(ins) > 1 and ins[1] else set()
    precision = ("int8" if kind in ("conv", "depthwise", "matmul") and weight_types & INT8_TYPES
                 else "int8" if types and types <= INT8_TYPES | {2} and types & INT8_TYPES
                 else "fp16" if FLOAT16 in types and name != "DEQUANTIZE" else "fp32")
    return OpCost(label, name, kind, int(flops), int(nbytes), precision, known, variant)
