"""Per-op cost counting over an ExecuTorch program (.pte), from the file alone: the XNNPACK delegate graphs carry every
tensor's dims and dtype, and the kernel calls outside them the program's own tensor sizes. One method (sequence
bucket) is costed: the one whose inputs fit the given inputs. Conventions as edgepack.estimate.opcost; the runtime
family is XNNPACK's, whose published rows calibrate it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .opcost import OpCost

SUFFIX = ".pte"
RUNTIME = "xnnpack"

XNN_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "uint8": 1, "int32": 4, "int4": 0.5, "int8-dynamic": 1}
XNN_ELEMENTWISE = {"XNNAdd": 1, "XNNSubtract": 1, "XNNMultiply": 1, "XNNDiv": 1, "XNNMinimum": 1, "XNNMaximum": 1,
                   "XNNClamp": 1, "XNNNegate": 1, "XNNAbs": 1, "XNNSquare": 1, "XNNFloor": 1, "XNNCeiling": 1,
                   "XNNPReLU": 1, "XNNLeakyReLU": 1, "XNNSquareRoot": 10, "XNNReciprocalSquareRoot": 10,
                   "XNNGelu": 10, "XNNTanh": 10, "XNNSigmoid": 10, "XNNExp": 10, "XNNLog": 10, "XNNSin": 10,
                   "XNNCos": 10, "XNNELU": 10, "XNNHardswish": 10}
XNN_MOVE = {"XNNStaticTranspose", "XNNStaticSlice", "XNNStaticConstantPad", "XNNCopy", "XNNConcatenate2",
            "XNNConcatenate3", "XNNConcatenate4", "XNNConcatenate5", "XNNStaticResizeBilinear2D"}
# Kernels outside XNNPACK: (kernel class, FLOPs per output element).
PORTABLE_CLASS = {"native_layer_norm": ("normalization", 8), "_softmax": ("normalization", 8),
                  "embedding": ("embedding", 0), "embedding_byte": ("embedding", 2), "gelu": ("elementwise", 10),
                  "pow": ("elementwise", 10), "sqrt": ("elementwise", 10), "tanh": ("elementwise", 10),
                  **{op: ("elementwise", 1) for op in ("add", "mul", "sub", "div", "clamp", "sum", "mean", "where")}}
MOVES = {"expand_copy", "_to_dim_order_copy", "full_like", "slice_copy", "unsqueeze_copy", "permute_copy", "clone",
         "cat", "index", "select_copy"}
VIEWS = {"et_view", "sym_size", "view_copy", "_unsafe_view", "squeeze_copy"}


def _method(info: dict, inputs: dict, signature: str | None):
    methods = info["methods"]
    if signature:
        return methods[signature]
    length = next((v.shape[-1] for v in inputs.values()), None)
    ranked = sorted(methods.values(), key=lambda m: m.input_sizes[0][-1] if m.input_sizes else 0)
    fits = [m for m in ranked if length is None or (m.input_sizes and m.input_sizes[0][-1] >= length)]
    return (fits or ranked)[0 if length is not None else -1]


def input_specs(path: Path, sequence_length: int, signature: str | None = None) -> list[tuple]:
    from ..targets.executorch import read_pte

    info = read_pte(path)
    method = _method(info, {"x": np.zeros((1, sequence_length))}, signature)
    names = str(info["constants"].get("edgepack_inputs", "input_ids,attention_mask")).split(",")
    return [(name, sizes, np.dtype(np.int32)) for name, sizes in zip(names, method.input_sizes)]


def count(path: str | Path, inputs: dict, signature: str | None = None) -> list[OpCost]:
    """One run of the method that takes `inputs` (the smallest bucket that fits them), op by op."""
    from executorch.exir.schema import DelegateCall, KernelCall, Tensor

    from ..targets.executorch import SCALAR_BYTES, read_pte

    info = read_pte(Path(path))
    m = _method(info, inputs, signature)
    plan, graphs, costs = m.plan, iter(m.graphs), []
    for i, instr in enumerate(plan.chains[0].instructions):
        args = instr.instr_args
        if isinstance(args, DelegateCall):
            if "xnnpack" in plan.delegates[args.delegate_index].id.lower():
                costs += _xnn_costs(next(graphs), f"d{i}")
            continue
        if not isinstance(args, KernelCall):
            continue
        op = m.operators[args.op_index]
        short = op.split("::")[-1].split(".")[0]
        tensors = [plan.values[a].val for a in args.args if isinstance(plan.values[a].val, Tensor)]
        if short in VIEWS or not tensors:
            continue
        sizes = [(math.prod(t.sizes), SCALAR_BYTES.get(int(t.scalar_type), 4)) for t in tensors]
        out_numel, nbytes = sizes[-1][0], sum(n * b for n, b in sizes)
        kind, per = PORTABLE_CLASS.get(short, ("data-movement", 0))
        if kind == "embedding":  # only the looked-up rows are read
            nbytes += out_numel * sizes[0][1] - sizes[0][0] * sizes[0][1]
        if short == "native_layer_norm":  # outputs: normalized, mean, rstd
            out_numel = sizes[-3][0]
        precision = "int8" if short == "embedding_byte" else {1: "int8", 5: "fp16"}.get(int(tensors[0].scalar_type),
                                                                                       "fp32")
        costs.append(OpCost(f"{short}_{i}", op, kind, int(per * out_numel), int(nbytes), precision,
                            short in PORTABLE_CLASS or short in MOVES))
    return costs


def _xnn_costs(graph: dict, prefix: str) -> list[OpCost]:
    from ..targets.executorch import XNN_DTYPES, xnn_tensor

    values = {t["id_out"]: t for t in (xnn_tensor(v) for v in graph["xvalues"]) if t is not None}

    def numel(i):
        return math.prod(values[i]["dims"]) if i in values and values[i]["dims"] else 1

    def dtype(i):
        return XNN_DTYPES.get(values[i]["datatype"], "fp32") if i in values else "fp32"

    def nbytes(i):
        return numel(i) * XNN_BYTES.get(dtype(i), 4) if i in values else 0

    costs = []
    for j, node in enumerate(graph["xnodes"]):
        kind, body = node["xnode_union_type"], node["xnode_union"]
        ins = [body[k] for k in ("input1_id", "input2_id", "filter_id", "bias_id", "input_id") if body.get(k) in values]
        out = body.get("output_id")
        io = sum(nbytes(i) for i in ins) + nbytes(out)
        name, precision = f"{prefix}.{kind.removeprefix('XNN')}_{j}", "fp16" if dtype(out) == "fp16" else "fp32"
        if kind == "XNNFullyConnected":
            weight = dtype(body["filter_id"])
            flops = 2 * numel(out) * values[body["filter_id"]]["dims"][-1] + (
                numel(out) if body.get("bias_id") in values else 0)
            costs.append(OpCost(name, kind, "matmul", flops, io, "int8" if weight in ("int8", "int4") else weight))
        elif kind == "XNNBatchMatrixMultiply":
            costs.append(OpCost(name, kind, "matmul", 2 * numel(out) * values[body["input1_id"]]["dims"][-1], io,
                                precision))
        elif kind == "XNNSoftmax":
            costs.append(OpCost(name, kind, "normalization", 8 * numel(out), io, precision))
        elif kind == "XNNConvert":
            costs.append(OpCost(name, kind, "quantize", 2 * numel(out), io,
                                "int8" if dtype(out).startswith("int8") else precision))
        elif kind in XNN_ELEMENTWISE:
            costs.append(OpCost(name, kind, "elementwise", XNN_ELEMENTWISE[kind] * numel(out), io, precision))
        elif kind == "XNNStaticReshape":
            costs.append(OpCost(name, kind, "data-movement", 0, 0, precision))
        elif kind in XNN_MOVE:
            costs.append(OpCost(name, kind, "data-movement", 0, io, precision))
        else:
            costs.append(OpCost(name, kind, "other", 0, io, precision, False))
    return costs
