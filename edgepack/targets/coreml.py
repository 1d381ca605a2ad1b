"""Core ML: coremltools converts the torch.export graph (its jit.trace path fails on BERT) to an ML program
(.mlpackage, a folder); coremltools.optimize compresses the weights.

Core ML models execute only on Apple platforms. Elsewhere the harness checks what it can on the saved package
(it loads; its inputs and outputs match the source model's; its op inventory; its weights, read back, agree with the
source weights within the precision's error) and says that accuracy and latency were not measured.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import ExportError, one_line
from ..registry import TARGETS
from . import Exported, ExportSettings, Target, Tuning, no_kv_cache, quiet_toolchain, require
from .torch_export import export_program, preflight

# The oldest OS each precision's ops exist on: ML programs need iOS 15; the compressed-weight ops (constexpr_affine_
# dequantize, constexpr_lut_to_dense) iOS 16. Per-block int4 and grouped palettization would need iOS 18.
MIN_TARGET = {"fp32": "iOS15", "fp16": "iOS15", "int8-weight": "iOS16", "int4-palettized": "iOS16"}
MACOS_OF = {"iOS15": "macOS12", "iOS16": "macOS13", "iOS17": "macOS14", "iOS18": "macOS15"}
# Largest relative L2 error of any weight read back from the package, per precision (measured on MiniLM: fp16
# ~5e-4, int8 per channel 0.021, 4-bit palettized per tensor 0.157).
WEIGHT_TOLERANCE = {"fp32": 1e-6, "fp16": 2e-3, "int8-weight": 0.05, "int4-palettized": 0.25}
WEIGHT_THRESHOLD = 2048  # coremltools.optimize leaves smaller tensors (biases, norms) in float


@TARGETS.register("coreml")
class CoreMlTarget(Target):
    precisions = ("fp32", "fp16", "int8-weight", "int4-palettized")
    suffix = ".mlpackage"
    runtime = "coreml"

    @staticmethod
    def require() -> None:
        require("the coreml target", "coreml", "coremltools")

    @staticmethod
    def unsupported(source, task_name: str) -> str | None:
        return no_kv_cache("coreml", task_name)

    @staticmethod
    def runs_here() -> str | None:
        if sys.platform == "darwin":
            return None
        return f"Core ML models execute only on macOS and iOS (this host is {sys.platform})"

    def deployment(self, precision: str, exported: Exported | None = None) -> dict:
        ios = MIN_TARGET[precision]
        shapes = {k: list(v.shape) for k, v in exported.state["sample"].items()} if exported else {}
        return {"minimum_deployment_target": {"iOS": ios.removeprefix("iOS"), "macOS": MACOS_OF[ios].removeprefix("macOS")},
                "input_shapes": shapes}

    def export(self, source, task, settings: ExportSettings) -> Exported:
        """Trace once (fixed input shape: the sequence length), check every op has a Core ML lowering, keep the
        program for the conversions."""
        self.require()
        import torch
        from coremltools.converters.mil.frontend.torch.torch_op_registry import is_torch_fx_node_supported

        sample = task.sample_inputs(settings.sequence_length)
        module = task.torch_module()
        with torch.no_grad():
            expected = {k: list(v.shape) for k, v in module(**sample).items()}
        weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
        with quiet_toolchain():
            program = export_program(module, sample, "coreml", strict=True).run_decompositions({})
            _drop_aliases(program)
            preflight(program, is_torch_fx_node_supported, "coreml", "try --target onnx or tflite for this model")
        out = self.workdir / "coreml-export"
        out.mkdir(parents=True, exist_ok=True)
        return Exported(out, source, task, settings,
                        state={"program": program, "sample": sample, "expected": expected, "weights": weights})

    @staticmethod
    def _convert(exported: Exported, precision: str, dest: Path) -> None:
        import coremltools as ct

        sample, expected = exported.state["sample"], exported.state["expected"]
        inputs = [ct.TensorType(name=k, shape=tuple(v.shape), dtype=np.int32 if not v.is_floating_point()
                                else np.float32) for k, v in sample.items()]
        # Outputs stay float32 at every precision (fp16 would otherwise make them fp16): apps read one dtype.
        outputs = [ct.TensorType(name=k, dtype=np.float32) for k in expected]
        compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
        try:
            with quiet_toolchain():
                model = ct.convert(exported.state["program"], inputs=inputs, outputs=outputs, convert_to="mlprogram",
                                   compute_precision=compute, skip_model_load=True,
                                   minimum_deployment_target=getattr(ct.target, MIN_TARGET[precision]))
        except Exception as exc:
            raise ExportError(f"coreml conversion failed: {one_line(exc)}", "try --target onnx or tflite") from exc
        _save(model, dest)

    def build(self, precision: str, exported: Exported, dest: Path, tuning: Tuning | None = None) -> dict:
        about = {"converter": "coremltools.convert (torch.export program, mlprogram)",
                 "minimum_deployment_target": MIN_TARGET[precision], "compute_units": "chosen by Core ML on device"}
        if precision in ("fp32", "fp16"):
            self._convert(exported, precision, dest)
            return about | {"compute_precision": "float16" if precision == "fp16" else "float32"}
        import coremltools as ct
        import coremltools.optimize.coreml as cto

        base = exported.folder / f"base-{MIN_TARGET[precision]}.mlpackage"
        if not base.exists():
            self._convert(exported, precision, base)
        model = ct.models.MLModel(str(base), skip_model_load=True)
        if precision == "int8-weight":
            config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                                 weight_threshold=WEIGHT_THRESHOLD)
            how = "coremltools.optimize.coreml.linear_quantize_weights (int8 symmetric, per channel)"
            with quiet_toolchain():
                compressed = cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=config))
        elif precision == "int4-palettized":
            config = cto.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_tensor",
                                            weight_threshold=WEIGHT_THRESHOLD)
            how = "coremltools.optimize.coreml.palettize_weights (4-bit k-means lookup table, per tensor)"
            with quiet_toolchain():
                compressed = cto.palettize_weights(model, cto.OptimizationConfig(global_config=config))
        else:
            raise ExportError(f"coreml target has no precision {precision!r}")
        _save(compressed, dest)
        return about | {"compression": how, "compute_precision": "float32 (weights decompressed on load)"}

    def check(self, path: Path, exported: Exported) -> list[tuple[str, str]]:
        """The checks that need no Apple runtime: load, inputs/outputs, op inventory, weights read back."""
        sample, expected = exported.state["sample"], exported.state["expected"]
        spec, program = _load(path)
        if spec.WhichOneof("Type") != "mlProgram":
            raise ExportError(f"{path.name} is not an ML program")
        io = self.inputs_outputs(path)
        want_in = {k: ("int32" if not v.is_floating_point() else "float32", list(v.shape)) for k, v in sample.items()}
        got_in = {i["name"]: (i["dtype"], i["shape"]) for i in io["inputs"]}
        if got_in != want_in:
            raise ExportError(f"{path.name}: inputs {got_in} differ from the source model's {want_in}")
        got_out = {o["name"]: o["shape"] for o in io["outputs"]}
        if set(got_out) != set(expected) or any(got_out[k] and got_out[k] != v for k, v in expected.items()):
            raise ExportError(f"{path.name}: outputs {got_out} differ from the source model's {expected}")
        ops = Counter(op.op_type for op in program.functions["main"].operations)
        # "model-fp16.mlpackage", or with --distill "teacher-model-fp16.mlpackage": the precision sets the tolerance
        precision = path.name.removesuffix(self.suffix).rpartition("model-")[2]
        matched, worst, name = _compare_weights(exported.state["weights"], program, WEIGHT_TOLERANCE[precision], path)
        top = ", ".join(f"{k} {n}" for k, n in ops.most_common(8))
        return [("package loads", f"ML program, spec version {spec.specificationVersion}, read by coremltools"),
                ("inputs/outputs match the source", ", ".join(f"{k} {t[0]} {t[1]}" for k, t in got_in.items())
                 + " -> " + ", ".join(f"{k} {v}" for k, v in got_out.items())),
                ("op inventory", f"{sum(ops.values())} ops: {top}"),
                ("weights read back", f"{matched} large source weights found, max relative error {worst:.2g} "
                 f"({name}; limit {WEIGHT_TOLERANCE[precision]:g})")]

    @staticmethod
    def inputs_outputs(path: Path) -> dict:
        from coremltools.proto import FeatureTypes_pb2 as ft

        spec, _ = _load(path, program=False)

        def rows(features):
            kinds = ft.ArrayFeatureType.ArrayDataType
            return [{"name": f.name, "dtype": kinds.Name(f.type.multiArrayType.dataType).lower(),
                     "shape": [int(n) for n in f.type.multiArrayType.shape]} for f in features]

        return {"inputs": rows(spec.description.input), "outputs": rows(spec.description.output)}


def _compare_weights(source_weights: dict, program, tolerance: float, path: Path) -> tuple[str, float, str]:
    """Every large source weight must be in the package: by name, or (converters fold batch norm into the
    preceding convolution) as a tensor of the same shape equal up to one scale per output channel. Error: the
    relative L2 error by name; the sine of the worst channel's angle otherwise."""
    big = {"p_" + k.replace(".", "_"): v for k, v in source_weights.items() if v.size >= WEIGHT_THRESHOLD}
    stored = dict(_weights(program))
    errors: dict[str, float] = {}
    for name, value in stored.items():
        key = max((k for k in big if name == k or name.startswith(k + "_")), key=len, default=None)
        if key is not None and key not in errors and value.size == big[key].size:
            errors[key] = _relative_error(value, big[key])
    by_name = len(errors)
    for key in [k for k in big if k not in errors]:
        source = big[key]
        best = min([_channel_error(v, source) for v in stored.values() if v.shape == source.shape] +
                   # a table sliced to the input length and folded (position embeddings[:S])
                   [_relative_error(v, source[:v.shape[-2]]) for v in stored.values()
                    if source.ndim == 2 and v.ndim >= 2 and v.shape[-1] == source.shape[1]
                    and v.size == v.shape[-2] * v.shape[-1] and v.shape[-2] < source.shape[0]], default=1.0)
        if best <= tolerance:
            errors[key] = best
    missing = [k for k in big if k not in errors]
    # Weights the task does not use (an embedding model's pooler) are dropped: tolerate a few absentees.
    if len(missing) > max(2, len(big) // 10):
        raise ExportError(f"{path.name}: {len(missing)} of {len(big)} source weights are not in the package "
                          f"(e.g. {missing[0].removeprefix('p_')})")
    worst_name = max(errors, key=errors.get, default="-")
    worst = errors.get(worst_name, 0.0)
    if worst > tolerance:
        raise ExportError(f"{path.name}: weight {worst_name.removeprefix('p_')} reads back with relative error "
                          f"{worst:.3g} (limit {tolerance:g} for this precision)")
    found = f"{by_name} by name" + (f", {len(errors) - by_name} by value (folded batch norm or sliced table)"
                                    if len(errors) > by_name else "")
    if missing:
        found += f"; not in the package: {', '.join(k.removeprefix('p_') for k in missing)} (dropped as unused, or folded past recognition)"
    return f"{len(errors)} of {len(big)} ({found})", worst, worst_name.removeprefix("p_")


def _relative_error(value: np.ndarray, source: np.ndarray) -> float:
    value, source = value.reshape(-1).astype(np.float64), source.reshape(-1).astype(np.float64)
    return float(np.linalg.norm(value - source) / max(np.linalg.norm(source), 1e-12))


def _channel_error(value: np.ndarray, source: np.ndarray) -> float:
    """Worst over output channels of the sine of the angle between stored and source weights (0: equal up to a
    per-channel scale, which is what folding batch norm does)."""
    v = value.reshape(value.shape[0], -1).astype(np.float64)
    w = source.reshape(source.shape[0], -1).astype(np.float64)
    cos = np.abs((v * w).sum(1)) / np.maximum(np.linalg.norm(v, axis=1) * np.linalg.norm(w, axis=1), 1e-12)
    return float(np.sqrt(np.clip(1 - cos.min() ** 2, 0, 1)))


def _save(model, dest: Path) -> None:
    model.save(str(dest))
    for path in Path(dest).rglob("*"):  # coremltools writes some files 0600; an app's build must read them
        path.chmod(0o755 if path.is_dir() else 0o644)


def _drop_aliases(program) -> None:
    """aten.alias is a no-op view (e.g. slicing a whole position-ids buffer) that coremltools cannot lower."""
    import torch

    graph = program.graph_module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target == torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    program.graph_module.recompile()


def _load(path: Path, program: bool = True):
    """The package's spec and (optionally) its MIL program with weights, read without Core ML itself."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto import load as milproto_load

    spec = ct.utils.load_spec(str(path))
    if not program:
        return spec, None
    weights = Path(path) / "Data" / "com.apple.CoreML" / "weights"
    return spec, milproto_load.load(spec, spec.specificationVersion, str(weights))


def _weights(program):
    """(name, value) of every weight as the device will see it: constants, and compressed constants decompressed."""
    for op in program.functions["main"].operations:
        if op.op_type == "const":
            children = op.outputs[0].child_ops
            if children and all(c.op_type.startswith("constexpr_") for c in children):
                continue  # raw int8 data, lookup table or scales of a compressed weight
            value = op.outputs[0].val
        elif op.op_type.startswith("constexpr_"):
            value = op.materialized_val_inference()
        else:
            continue
        if isinstance(value, np.ndarray) and value.size >= WEIGHT_THRESHOLD:
            yield op.outputs[0].name, value
