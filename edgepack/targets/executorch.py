"""ExecuTorch (.pte): torch.export, executorch's XNNPACK partitioner and lowering; run by executorch.runtime.

A text model ships as one .pte with one method per sequence-length bucket (`seq_16`, `seq_32`, ...), as the TFLite
target does (the weights are shared between methods); the runtime runs an input on the smallest bucket that fits.
XNNPACK takes what it can and leaves the rest to ExecuTorch's portable kernels, silently: the file is read back
after every build (the delegated share, the kernels left outside, the dtype of every fully-connected weight), so a
precision that quantized nothing, or a model that fell back to slow portable kernels, is caught and said.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import subprocess
import tempfile
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..buckets import bucket_name
from ..errors import ExportError, one_line
from ..precisions import Precision
from ..registry import TARGETS
from . import (Exported, ExportSettings, Target, Tuning, calibration_sample, no_kv_cache, quiet_toolchain,
               require)
from .torch_export import layer_of

CALIBRATION_SAMPLES = 100  # int8-static: rows of the data file that are not evaluation samples
GROUP_SIZE = 32  # 8da4w: int4 weights in groups of 32 along the input dimension (torchao's default for XNNPACK)
# Share of compute ops in XNNPACK under which the report warns. Layer norms, embedding lookups and casts stay on
# portable kernels in executorch 1.5.1 (MiniLM: 82-88% of nodes, 99.8% of FLOPs in XNNPACK); a matmul outside
# XNNPACK always warns.
LOW_DELEGATION = 0.6
MATMUL_KERNELS = ("linear", "addmm", "mm", "bmm", "matmul", "convolution")
QUANTIZED_WEIGHTS = {"int8-dynamic": {"int8"}, "int8-static": {"int8"}, "8da4w": {"int4"}, "fp16": {"fp16"},
                     "fp32": {"fp32"}}


@TARGETS.register("executorch")
class ExecuTorchTarget(Target):
    precisions = ("fp32", "fp16", "int8-dynamic", "int8-static", "8da4w")
    new_precisions = {"8da4w": Precision("8da4w", "int4 weights in groups of 32, int8 activations quantized at run "
                                         "time (torchao, ExecuTorch's XNNPACK kernels)", 0.5)}
    suffix = ".pte"
    runtime = "executorch"

    @staticmethod
    def require() -> None:
        require("the executorch target", "executorch", "executorch.exir", "executorch.runtime", "torchao")

    @staticmethod
    def unsupported(source, task_name: str) -> str | None:
        return no_kv_cache("executorch", task_name)  # other limits are refused in export(), the op named

    def export(self, source, task, settings: ExportSettings) -> Exported:
        """Trace the float model once per bucket and check every op: XNNPACK's partitioner says what it leaves to
        the portable kernels, and an op the runtime has no kernel for is refused here, naming it and its layer."""
        self.require()
        module = task.torch_module()
        buckets = _buckets(task, settings)
        with _quiet():
            programs = {name: _export(module, task, length or settings.sequence_length)
                        for name, length in buckets.items()}
            found = _preflight(next(iter(programs.values())))
        if found["missing_kernel"]:
            op, layer = found["missing_kernel"][0]
            raise ExportError(f"executorch has no kernel for op {op} in layer {layer}",
                              "try --target onnx or tflite for this model")
        out = self.workdir / "executorch-export"
        out.mkdir(parents=True, exist_ok=True)
        return Exported(out, source, task, settings,
                        state={"module": module, "buckets": buckets, "float_programs": programs,
                               "portable": found["portable"]})

    def build(self, precision: str, exported: Exported, dest: Path, tuning: Tuning | None = None) -> dict:
        if precision not in self.precisions:
            raise ExportError(f"executorch target has no precision {precision!r}")
        state, task = exported.state, exported.task
        samples = self.calibration_samples(exported, tuning or self.default_tuning(precision))
        with _quiet(), quiet_toolchain():
            if precision == "fp32":
                programs = state["float_programs"]
            else:
                prepared = _prepare(state["module"], task, precision, exported.settings, samples)
                programs = {name: _export(prepared, task, length or exported.settings.sequence_length)
                            for name, length in state["buckets"].items()}
            try:
                lowered = _lower(programs, {"edgepack_inputs": ",".join(task.input_names),
                                            "edgepack_outputs": task.artifact_output, "edgepack_precision": precision})
            except Exception as exc:
                raise ExportError(f"executorch lowering failed: {one_line(exc)}", "try --target onnx or tflite") \
                    from exc
        with dest.open("wb") as handle:
            lowered.write_to_file(handle)
        info = read_pte(dest)
        problems = check_quantized(info, precision)
        if problems:  # a quantizer that matched nothing still exports and runs: the file says what it holds
            raise ExportError(f"executorch {precision}: {problems[0]}", "this model's layers are not quantized by "
                              "XNNPACK's quantizer; try another precision or target")
        share = min(m.delegated_share for m in info["methods"].values())
        about = {"exporter": "torch.export + executorch.exir.to_edge_transform_and_lower (XnnpackPartitioner)",
                 "methods": list(state["buckets"]), "shapes": "one fixed-shape method per sequence bucket"
                 if "input_ids" in task.input_names else "one fixed-shape method (the processor's image size)",
                 "delegated_share": round(share, 4), "weights_by_dtype_bytes": info["weights_by_dtype"],
                 "outside_xnnpack": dict(sum((m.kernel_calls for m in info["methods"].values()), Counter())),
                 **_HOW[precision]}
        if precision == "int8-static":
            about["calibration"] = {"samples": len(samples), "from": exported.settings.calibration_origin,
                                    "method": "min/max (PT2E observers)"}
        return about

    def calibration_samples(self, exported: Exported, tuning: Tuning) -> list:
        return calibration_sample(exported.settings.calibration, CALIBRATION_SAMPLES)

    def check(self, path: Path, exported: Exported | None = None) -> list[tuple[str, str]]:
        """Read back from the file alone: each method's XNNPACK graphs and the kernels outside them; every kernel
        the file needs is in this runtime (a missing one ends the process at load, with no error)."""
        info = read_pte(path)
        missing = missing_kernels(info)
        if missing:
            method, ops = next(iter(missing.items()))
            raise ExportError(f"{path.name}: method {method} needs kernels this ExecuTorch runtime lacks: {ops}")
        share = min(m.delegated_share for m in info["methods"].values())
        worst = min(info["methods"].values(), key=lambda m: m.delegated_share)
        matmuls_outside = {k: v for m in info["methods"].values() for k, v in m.kernel_calls.items()
                           if k.split("::")[-1].split(".")[0] in MATMUL_KERNELS}
        delegated = (f"{share:.0%} of the compute ops run in XNNPACK (worst method {worst.name}), "
                     f"{'not every matmul' if matmuls_outside else 'every matmul'}; outside: "
                     + (", ".join(f"{k.split('::')[-1]} {v}" for k, v in worst.kernel_calls.most_common(6)) or "none"))
        if share < LOW_DELEGATION or matmuls_outside:
            delegated = (f"warning: {delegated}; ops on the portable kernels are slow, expect this file slower than "
                         "the other targets")
        return [("program loads", f"{len(info['methods'])} methods ({', '.join(info['methods'])}), "
                                  f"{info['bytes']:,} bytes, every kernel registered in this runtime"),
                ("delegated to XNNPACK", delegated),
                ("weights by dtype", ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in info["weights_by_dtype"].items()))]

    @staticmethod
    def inputs_outputs(path: Path) -> dict:
        """Per method (bucket) and for the largest one, the names, dtypes and shapes an app feeds and reads."""
        info = read_pte(path)
        names = str(info["constants"].get("edgepack_inputs", "")).split(",")
        output = str(info["constants"].get("edgepack_outputs", "output"))
        signatures = {}
        for name, m in sorted(info["methods"].items(), key=lambda kv: kv[1].input_sizes[0][-1]):
            signatures[name] = {"inputs": [{"name": n, "dtype": "int32", "shape": s}
                                           for n, s in zip(names, m.input_sizes)],
                                "outputs": [{"name": output, "dtype": "float32", "shape": m.output_sizes[0]}]}
        largest = list(signatures.values())[-1]
        return {"inputs": largest["inputs"], "outputs": largest["outputs"], "signatures": signatures,
                "usage": "run the smallest method whose length fits the tokens; pad with 0 and mask 0"}


_HOW = {
    "fp32": {"weights": "float32"},
    "fp16": {"tool": "model.half() before export; LayerNorm kept float32 (the portable fp16 layer norm is wrong "
             "for wide rows)", "weights": "float16", "inputs_outputs": "int32 in, float32 out"},
    "int8-dynamic": {"tool": "XNNPACKQuantizer (symmetric, per channel, dynamic) + torchao PT2E",
                     "weights": "int8 per channel", "activations": "int8, quantized per call",
                     "embeddings": "int8 per row (quantized_decomposed.embedding_byte)"},
    "int8-static": {"tool": "XNNPACKQuantizer (symmetric, per channel, static) + torchao PT2E",
                    "weights": "int8 per channel", "activations": "int8, scales fixed by calibration",
                    "embeddings": "int8 per row (quantized_decomposed.embedding_byte)"},
    "8da4w": {"tool": "torchao quantize_(Int8DynamicActivationIntxWeightConfig(int4, PerGroup(32)))",
              "weights": f"int4, groups of {GROUP_SIZE} (linears whose input width is a multiple of it)",
              "activations": "int8, quantized per call",
              "embeddings": "int8 per row (quantized_decomposed.embedding_byte)"},
}


def _buckets(task, settings: ExportSettings) -> dict[str, int | None]:
    if "input_ids" in task.input_names:
        return {bucket_name(n): n for n in settings.buckets}
    return {"forward": None}


@contextmanager
def _quiet():
    """The toolchain warns on every export (pytree LeafSpec, experimental runtime, symbolic shapes)."""
    loggers = [logging.getLogger(n) for n in ("torch._export", "torch.export", "torchao", "executorch",
                                              "torch._dynamo", "torch.fx.experimental.symbolic_shapes")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _args(task, length: int) -> tuple:
    sample = task.sample_inputs(length)
    return tuple(sample[name] for name in task.input_names)


def _export(module, task, length: int):
    import torch

    try:
        return torch.export.export(module, _args(task, length), strict=False)
    except Exception as exc:
        raise ExportError(f"executorch: torch.export cannot trace the model: {one_line(exc)}",
                          "try --target onnx") from exc


def _prepare(module, task, precision: str, settings: ExportSettings, texts: list):
    """The module to export for a compressed precision (a copy; the float module is kept for the others)."""
    import torch

    module = copy.deepcopy(module)
    if precision == "fp16":
        class Fp32LayerNorm(torch.nn.Module):
            def __init__(self, ln):
                super().__init__()
                self.ln = copy.deepcopy(ln).float()

            def forward(self, x):
                return self.ln(x.float()).to(x.dtype)

        module = module.half()
        for child in list(module.modules()):
            for attr, sub in list(child.named_children()):
                if isinstance(sub, torch.nn.LayerNorm):
                    setattr(child, attr, Fp32LayerNorm(sub))
        if "input_ids" not in task.input_names:  # pixels come in float32: the app's buffer; the graph runs fp16
            class HalfInputs(torch.nn.Module):
                def __init__(self, inner):
                    super().__init__()
                    self.inner = inner

                def forward(self, *args):
                    out = self.inner(*(a.half() for a in args))
                    return torch.utils._pytree.tree_map(lambda t: t.float() if t.is_floating_point() else t, out)

            module = HalfInputs(module)
        return module
    _quantize_embeddings(module)  # XNNPACK's quantizers take linears only: the word table would stay fp32 (47 MB)
    if precision == "8da4w":
        from torchao.quantization.granularity import PerGroup
        from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig, quantize_

        def groupable(layer, name) -> bool:  # XNNPACK takes int4 groups of 32 only
            return isinstance(layer, torch.nn.Linear) and layer.in_features % GROUP_SIZE == 0

        quantize_(module, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                                weight_granularity=PerGroup(GROUP_SIZE)),
                  filter_fn=groupable)
        return module
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    dynamic = precision == "int8-dynamic"
    if not dynamic and not texts:
        raise ExportError("int8-static needs calibration text", "pass --data FILE or use a recipe with data")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True,
                                                                                is_dynamic=dynamic))
    if "input_ids" in task.input_names:  # calibration runs at natural lengths
        seq = torch.export.Dim("seq", min=2, max=settings.sequence_length)
        captured = torch.export.export(module, _args(task, min(32, settings.sequence_length)), strict=False,
                                       dynamic_shapes=tuple({1: seq} for _ in task.input_names)).module()
    else:  # images: one fixed shape
        captured = torch.export.export(module, _args(task, 0), strict=False).module()
    graph = prepare_pt2e(captured, quantizer)
    samples = texts if not dynamic else texts[:1]
    if not samples and "input_ids" not in task.input_names:
        samples = None  # no image to hand: the all-zero sample (dynamic scales are computed per call anyway)
    with torch.no_grad():
        for sample in samples or (["edgepack"] if samples is not None else [None]):
            feed = task.encode([sample], settings.sequence_length) if sample is not None else \
                {k: v.numpy() for k, v in task.sample_inputs(0).items()}
            graph(*(as_tensor(feed[n]) for n in task.input_names))
    return convert_pt2e(graph)


def as_tensor(array):
    """A feed array as the exported program takes it: token ids as int32, pixels as float32."""
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int32 if array.dtype.kind in "iu" else np.float32))


def _quantize_embeddings(module) -> None:
    """Every nn.Embedding -> int8 per row with an fp32 scale, looked up by quantized_decomposed::embedding_byte (a
    kernel of executorch.kernels.quantized; XNNPACK takes no embedding). torchao's IntxWeightOnlyConfig on embeddings
    fails to lower in executorch 1.5.1 (no out variant of torchao::dequantize_affine)."""
    import torch

    import executorch.exir.passes._quant_patterns_and_replacements  # noqa: F401 - defines embedding_byte

    class Int8Embedding(torch.nn.Module):
        def __init__(self, embedding):
            super().__init__()
            weight = embedding.weight.detach().float()
            scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-10)
            self.register_buffer("weight", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
            self.register_buffer("scales", scale)

        def forward(self, indices):
            return torch.ops.quantized_decomposed.embedding_byte.dtype(self.weight, self.scales, None, -128, 127,
                                                                       indices, dtype=torch.float32)

    for child in list(module.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, torch.nn.Embedding):
                setattr(child, attr, Int8Embedding(sub))


def _lower(programs: dict, metadata: dict):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.utils.configs import get_transform_passes, get_xnnpack_edge_compile_config
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(programs, transform_passes=get_transform_passes(),
                                       partitioner=[XnnpackPartitioner()],
                                       compile_config=get_xnnpack_edge_compile_config(), constant_methods=metadata)
    return edge.to_executorch(ExecutorchBackendConfig(extract_delegate_segments=True))


def _preflight(program) -> dict:
    """On the float program, before lowering: which ops XNNPACK leaves to the portable kernels (with why), and which
    have no kernel in this runtime at all (to_executorch does not notice; loading the method would end the
    process)."""
    import operator

    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.utils.configs import get_transform_passes, get_xnnpack_edge_compile_config
    from executorch.exir import to_edge

    edge = to_edge(copy.deepcopy(program), compile_config=get_xnnpack_edge_compile_config())
    edge = edge.transform(get_transform_passes())
    tagged = XnnpackPartitioner().partition(edge.exported_program()).tagged_exported_program
    registered = set(_runtime().operator_registry.operator_names)
    portable, missing = Counter(), []
    for node in tagged.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem or "delegation_tag" in node.meta:
            continue
        schema = getattr(node.target, "_schema", None)
        name = f"{schema.name}.{schema.overload_name or 'default'}" if schema else str(node.target)
        portable[name] += 1
        kernel = _out_kernel(node.target)
        if kernel and kernel not in registered and name not in [m for m, _ in missing]:
            missing.append((name, layer_of(node)))
    return {"portable": dict(portable.most_common()), "missing_kernel": missing}


def _out_kernel(target) -> str | None:
    """The runtime kernel an edge op becomes (`ns::op.out`), as executorch's ToOutVarPass maps it."""
    schema = getattr(target, "_schema", None)
    if schema is None or schema.name.startswith("executorch_prim") or "sym_size" in schema.name:
        return None
    try:
        from executorch.exir.operator.convert import to_out_variant

        out, _ = to_out_variant(getattr(target, "_op", target))
        return f"{out._schema.name}.{out._schema.overload_name}"
    except Exception:  # noqa: BLE001 - a few ops trip the mapping; they are checked on the file after lowering
        return None


def _runtime():
    import executorch.kernels.quantized  # noqa: F401 - registers the quantized_decomposed kernels
    from executorch.runtime import Runtime

    return Runtime.get()


# ---- reading a .pte back, from the file alone (the runtime and the cost counter use this too) ----------------------

XNN_DTYPES = {"xnn_datatype_fp32": "fp32", "xnn_datatype_fp16": "fp16", "xnn_datatype_bf16": "bf16",
              "xnn_datatype_qint8": "int8", "xnn_datatype_quint8": "uint8", "xnn_datatype_qint32": "int32",
              "xnn_datatype_qcint8": "int8", "xnn_datatype_qcint32": "int32", "xnn_datatype_qcint4": "int4",
              "xnn_datatype_qdint8": "int8-dynamic", "xnn_datatype_qbint4": "int4", "xnn_datatype_qpint8": "int8",
              "xnn_datatype_int32": "int32", "xnn_datatype_pfp32": "fp32"}
SCALAR_NAMES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "fp16", 6: "fp32", 7: "fp64",
                11: "bool", 12: "int8", 13: "uint8", 14: "int32", 15: "bf16"}
SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 4, 4: 8, 5: 2, 6: 4, 7: 8, 11: 1, 12: 1, 13: 1, 14: 4, 15: 2}
XNN_FREE = {"XNNStaticReshape"}  # views: counted on neither side of the delegated share
PORTABLE_FREE = {"executorch_prim::et_view", "aten::sym_size", "aten::view_copy", "aten::_unsafe_view",
                 "aten::squeeze_copy", "aten::unsqueeze_copy"}


@dataclass
class PteMethod:
    name: str
    kernel_calls: Counter  # kernels run outside any delegate: op -> count
    delegate_calls: int
    xnnpack_nodes: Counter  # node type -> count over the method's XNNPACK graphs
    input_sizes: list
    output_sizes: list
    graphs: list  # the decoded XNNPACK graphs (flatbuffer JSON), in delegate order
    plan: object  # executorch.exir.schema.ExecutionPlan
    operators: list  # every kernel the method needs from the runtime

    @property
    def delegated_share(self) -> float:
        """Compute ops inside XNNPACK over all compute ops."""
        inside = sum(n for op, n in self.xnnpack_nodes.items() if op not in XNN_FREE)
        outside = sum(n for op, n in self.kernel_calls.items() if op.split(".")[0] not in PORTABLE_FREE)
        return inside / max(1, inside + outside)


def read_pte(path: Path) -> dict:
    """Per method: kernel calls outside delegates, the XNNPACK graphs (node types, tensor dtypes), shapes; constant
    methods (edgepack's metadata); weights by dtype (each named buffer counted once per file)."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall, KernelCall, String, Tensor

    data = Path(path).read_bytes()
    try:
        pte = deserialize_pte_binary(data)
    except Exception as exc:  # noqa: BLE001 - not a program file
        raise ExportError(f"{Path(path).name}: not an ExecuTorch program ({one_line(exc)})") from exc
    program, named = pte.program, pte.named_data
    named_size = {k: len(named.buffers[e.buffer_index]) for k, e in named.pte_data.items()} if named else {}
    methods, constants, weights, counted = {}, {}, Counter(), set()
    for plan in program.execution_plan:
        ops = [f"{o.name}.{o.overload}" if o.overload else o.name for o in plan.operators]
        instructions = plan.chains[0].instructions if plan.chains else []
        if not instructions and not plan.delegates:  # a constant method: metadata
            vals = [plan.values[i].val for i in plan.outputs]
            vals = [v.string_val if isinstance(v, String) else getattr(v, "int_val", getattr(v, "double_val", v))
                    for v in vals]
            constants[plan.name] = vals[0] if len(vals) == 1 else vals
            continue
        kernels, delegates = Counter(), []
        for instr in instructions:
            if isinstance(instr.instr_args, KernelCall):
                kernels[ops[instr.instr_args.op_index]] += 1
            elif isinstance(instr.instr_args, DelegateCall):
                delegates.append(instr.instr_args.delegate_index)
        blobs = [bytes(program.backend_delegate_data[plan.delegates[i].processed.index].data) for i in delegates
                 if "xnnpack" in plan.delegates[i].id.lower()]
        graphs = _xnnpack_graphs(blobs)
        for graph in graphs:
            for value in graph["xvalues"]:
                tensor = xnn_tensor(value)
                if tensor is None or not tensor["constant_buffer_idx"]:
                    continue
                entry = graph["constant_data"][tensor["constant_buffer_idx"]]
                key = entry.get("named_key") or f"inline{id(graph)}:{tensor['constant_buffer_idx']}"
                if key not in counted:
                    counted.add(key)
                    size = named_size.get(entry.get("named_key"), int(entry.get("size", 0)))
                    weights[XNN_DTYPES.get(tensor["datatype"], tensor["datatype"])] += size
        for value in plan.values:
            val = value.val
            if isinstance(val, Tensor) and val.data_buffer_idx > 0 and val.allocation_info is None \
                    and ("portable", val.data_buffer_idx) not in counted:
                counted.add(("portable", val.data_buffer_idx))
                weights[SCALAR_NAMES.get(int(val.scalar_type), str(val.scalar_type))] += \
                    len(program.constant_buffer[val.data_buffer_idx].storage)

        def sizes(indices):
            return [list(plan.values[i].val.sizes) for i in indices if isinstance(plan.values[i].val, Tensor)]

        methods[plan.name] = PteMethod(plan.name, kernels, len(delegates),
                                       Counter(n["xnode_union_type"] for g in graphs for n in g["xnodes"]),
                                       sizes(plan.inputs), sizes(plan.outputs), graphs, plan, ops)
    return {"bytes": len(data), "methods": methods, "constants": constants,
            "weights_by_dtype": dict(weights.most_common())}


def xnn_tensor(value: dict) -> dict | None:
    kind, body = value.get("xvalue_union_type"), value.get("xvalue_union") or {}
    if kind == "XNNTensorValue":
        return body
    if kind == "XNNQuantizedTensorValue":
        return body.get("tensor_value")
    return None


def _xnnpack_graphs(blobs: list[bytes]) -> list[dict]:
    """Each XNNPACK payload (header + flatbuffer + constants) as JSON, decoded by the flatc and the schema that ship in
    the executorch wheel (the payload's format is XNNPACK's, not the program's)."""
    import executorch
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader

    root = Path(list(executorch.__path__)[0])
    flatc, schema = root / "data" / "bin" / "flatc", root / "backends" / "xnnpack" / "serialization" / "schema.fbs"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, blob in enumerate(blobs):
            header = XNNHeader.from_bytes(blob[:XNNHeader.EXPECTED_LENGTH])
            files.append(Path(tmp) / f"d{i}.bin")
            files[-1].write_bytes(blob[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size])
        if files:
            subprocess.run([str(flatc), "--json", "--strict-json", "--defaults-json", "--raw-binary", "-o", tmp,
                            str(schema), "--", *map(str, files)], check=True, capture_output=True)
        for path in files:
            text = path.with_suffix(".json").read_text()  # flatc writes clamp bounds as bare inf / nan
            text = re.sub(r"(?<=[:\[,\s])(-?)inf\b", r"\1Infinity", text)
            out.append(json.loads(re.sub(r"(?<=[:\[,\s])-?nan\b", "NaN", text)))
    return out


def missing_kernels(info: dict) -> dict[str, list[str]]:
    """{method: kernels or backends the file needs that this runtime lacks}. Checked before loading: executorch
    1.5.1's Python bindings end the process (exit status 0, no exception) when a method's kernel is missing."""
    runtime = _runtime()
    registered = set(runtime.operator_registry.operator_names)
    backends = set(runtime.backend_registry.registered_backend_names)
    out = {}
    for m in info["methods"].values():
        missing = [op for op in m.operators if op not in registered]
        missing += [f"backend {d.id}" for d in m.plan.delegates if d.id not in backends]
        if missing:
            out[m.name] = sorted(set(missing))
    return out


def check_quantized(info: dict, precision: str) -> list[str]:
    """What the precision must not have, read from the file: every XNNPACK fully-connected weight in the
    precision's dtype, dynamic int8 inputs for the dynamic precisions, no matmul kernel left outside XNNPACK."""
    want, problems = QUANTIZED_WEIGHTS[precision], []
    for m in info["methods"].values():
        filters, inputs, convs = Counter(), Counter(), Counter()
        for graph in m.graphs:
            values = {(xnn_tensor(v) or {}).get("id_out"): xnn_tensor(v) for v in graph["xvalues"]}
            for node in graph["xnodes"]:
                kind, body = node["xnode_union_type"], node["xnode_union"]
                if kind == "XNNFullyConnected":
                    filters[XNN_DTYPES.get(values[body["filter_id"]]["datatype"], "?")] += 1
                    inputs[XNN_DTYPES.get(values[body["input1_id"]]["datatype"], "?")] += 1
                elif kind in ("XNNConv2d", "XNNDepthwiseConv2d") and precision in ("fp32", "fp16"):
                    convs[XNN_DTYPES.get(values[body["filter_id"]]["datatype"], "?")] += 1
        total = sum(filters.values())
        wrong = {k: v for k, v in (filters + convs).items() if k not in want}
        if not total and not convs:
            problems.append(f"{m.name}: no fully-connected or convolution layer runs in XNNPACK")
        elif wrong:  # a CNN's convolutions count for the float precisions (int8 ones are checked on its linears)
            problems.append(f"{m.name}: {sum(wrong.values())} of {total + sum(convs.values())} weight layers hold "
                            f"{', '.join(wrong)} weights, not {'/'.join(sorted(want))}")
        if precision in ("int8-dynamic", "8da4w") and inputs.get("int8-dynamic", 0) < total:
            problems.append(f"{m.name}: only {inputs.get('int8-dynamic', 0)} of {total} fully-connected layers take "
                            "dynamically quantized int8 inputs")
        outside = {k: v for k, v in m.kernel_calls.items() if k.split("::")[-1].split(".")[0] in MATMUL_KERNELS}
        if outside:
            problems.append(f"{m.name}: matmul kernels outside XNNPACK: {outside}")
    return problems

