"""TFLite (LiteRT): litert-torch converts from PyTorch, ai-edge-quantizer builds every compressed precision.

litert-torch cannot export BERT-style models with a dynamic sequence axis, so a text model ships as one .tflite with
one signature per sequence-length bucket (`seq_16`, `seq_32`, ...); the weights are shared between signatures
(4 buckets of MiniLM: 1.01x the size of one). The runtime (runtimes/litert.py) picks the smallest bucket that fits.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from ..buckets import bucket_length, bucket_name
from ..errors import ExportError, one_line
from ..registry import TARGETS
from . import Exported, ExportSettings, Target, Tuning, no_kv_cache, quiet_toolchain, require
from .torch_export import export_program, preflight

# ai-edge-quantizer recipe per precision (fp16 and int8-static are built below). Chosen over litert-torch's PT2E
# quantizer: PT2E dynamic int8 converts but fails at run time on BERT's EMBEDDING_LOOKUP (zero point != 0).
QUANTIZER_RECIPES = {"int8-dynamic": "dynamic_wi8_afp32", "int8-weight": "weight_only_wi8_afp32",
                     "int4-weight": "weight_only_wi4_afp32", "int8-static": "static_wi8_ai8"}
CALIBRATION_SAMPLES = 100
WEIGHTED_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"}


@TARGETS.register("tflite")
class TfliteTarget(Target):
    precisions = ("fp32", "fp16", "int8-dynamic", "int8-weight", "int4-weight", "int8-static")
    suffix = ".tflite"
    runtime = "litert"
    tunable = ("int8-static",)

    @staticmethod
    def require() -> None:
        require("the tflite target", "tflite", "litert_torch", "ai_edge_litert.interpreter", "ai_edge_quantizer")

    @staticmethod
    def unsupported(source, task_name: str) -> str | None:
        return no_kv_cache("tflite", task_name)

    def export(self, source, task, settings: ExportSettings) -> Exported:
        """Convert the fp32 model, one signature per bucket, into a folder holding `model.tflite`."""
        self.require()
        import litert_torch
        from litert_torch.backend import lowerings
        from litert_torch.fx_infra import decomp, safe_run_decompositions

        out = self.workdir / "tflite-export"
        out.mkdir(parents=True, exist_ok=True)
        module = task.torch_module()
        samples = {name: task.sample_inputs(n or settings.sequence_length)
                   for name, n in signatures(task, settings).items()}
        with quiet_toolchain():
            # The same steps litert-torch takes before lowering; an op without a lowering is named here.
            program = export_program(module, next(iter(samples.values())), "tflite", strict=True)
            for table in (decomp.pre_convert_decomp(), decomp.pre_lower_decomp()):
                program = safe_run_decompositions(program, table)
            preflight(program, lambda node: lowerings.lookup(node.target) is not None, "tflite",
                      "try --target onnx or coreml for this model")
            try:
                converter = None
                for name, sample in samples.items():
                    converter = (litert_torch if converter is None else converter).signature(
                        name, module, sample_kwargs=sample)
                converter.convert().export(str(out / "model.tflite"))
            except Exception as exc:
                raise ExportError(f"tflite conversion of {source.model_id} failed: {one_line(exc)}",
                                  "try --target onnx or coreml") from exc
        return Exported(out, source, task, settings)

    def build(self, precision: str, exported: Exported, dest: Path, tuning: Tuning | None = None) -> dict:
        base = exported.folder / "model.tflite"
        task = exported.task
        about = {"signatures": list(signatures(task, exported.settings)),
                 "converter": "litert_torch.signature(...).convert()",
                 "inputs": "int32" if "input_ids" in task.input_names else "float32"}
        if precision == "fp32":
            shutil.copyfile(base, dest)
            return about
        if precision not in QUANTIZER_RECIPES and precision != "fp16":
            raise ExportError(f"tflite target has no precision {precision!r}")
        from ai_edge_quantizer import quantizer, recipe

        with quiet_toolchain():
            if precision == "fp16":
                used, qt = "FLOAT_CASTING 16-bit weights", quantizer.Quantizer(str(base), _fp16_recipe())
            else:
                used = QUANTIZER_RECIPES[precision]
                qt = quantizer.Quantizer(str(base), getattr(recipe, used)())
            calibration, excluded = None, []
            if qt.need_calibration:
                tuning = tuning or self.default_tuning(precision)
                for layer in tuning.exclude:  # an op's scope is its output tensor names, each followed by ";"
                    qt.update_quantization_recipe(regex=f"^{re.escape(layer)}(;\\d+)*;", operation_name=_all_ops(),
                                                  algorithm_key=_no_quantize())
                samples = self.calibration_samples(exported, tuning)
                calibration = qt.calibrate(_calibration_data(exported, samples))
                about["calibration"] = {"samples": len(samples), "from": exported.settings.calibration_origin,
                                        "method": "min/max"}
                excluded = list(tuning.exclude)
            qt.quantize(calibration).export_model(str(dest), overwrite=True)
        stored = weight_bytes_by_dtype(dest)
        if precision == "int8-static":  # what the file holds, not what was asked: a shared input keeps neighbours float
            in_float = float_layers(dest)
            about["layers_in_float"] = in_float
            if excluded:
                about["layers_excluded"] = excluded
        # A recipe that matches no op quantizes nothing, silently: check the file, not the call.
        if not any(dtype in stored for dtype in ("int8", "float16")):
            raise ExportError(f"ai-edge-quantizer's {used} left every weight in float32",
                              "this model has no op the recipe quantizes; try another precision")
        return about | {"tool": f"ai_edge_quantizer ({used})", "weights_by_dtype_bytes": stored}

    def default_tuning(self, precision: str) -> Tuning:
        return Tuning(samples=CALIBRATION_SAMPLES)

    def calibration_samples(self, exported: Exported, tuning: Tuning) -> list:
        return list(exported.settings.calibration[:tuning.samples])

    def quantizable_layers(self, precision: str, exported: Exported) -> list[str]:
        """The weighted ops static int8 quantizes (fully connected and convolutions), by output tensor name."""
        interpreter = _interpreter(exported.folder / "model.tflite")
        names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
        return list(dict.fromkeys(layer_name(names[op["outputs"][0]]) for op in interpreter._get_ops_details()
                                  if op["op_name"] in WEIGHTED_OPS and len(op["outputs"])))

    @staticmethod
    def check(path: Path, exported: Exported | None = None) -> str:
        from collections import Counter

        interpreter = _interpreter(path)
        for name in interpreter.get_signature_list():
            interpreter.get_signature_runner(name)  # allocates the signature's tensors
        ops = Counter(op["op_name"] for op in interpreter._get_ops_details())  # private, but stable
        top = ", ".join(f"{name} {n}" for name, n in ops.most_common(6))
        return (f"LiteRT interpreter loaded and allocated every signature "
                f"({', '.join(interpreter.get_signature_list())}); {sum(ops.values())} ops: {top}")

    @staticmethod
    def inputs_outputs(path: Path) -> dict:
        """Per signature and for the largest one (what an app must feed), names, dtypes and shapes."""
        signatures = describe_signatures(_interpreter(path))
        largest = list(signatures.values())[-1]
        return {"inputs": largest["inputs"], "outputs": largest["outputs"], "signatures": signatures,
                "usage": "feed the smallest signature whose length fits the tokens; pad with 0 and mask 0"
                if all(bucket_length(name) for name in signatures) else "one signature"}


def layer_name(tensor_name: str) -> str:
    """The module path of an op's output tensor, without the converter's ";N" suffixes (one name in every bucket)."""
    return re.sub(r"(;\d+)+$", "", tensor_name)


def signatures(task, settings: ExportSettings) -> dict[str, int | None]:
    """Signature name -> sequence length (None: the task's inputs have no sequence axis)."""
    if "input_ids" in task.input_names:
        return {bucket_name(n): n for n in settings.buckets}
    return {"serving_default": None}


def _calibration_data(exported: Exported, texts: list) -> dict:
    """Per signature, the calibration samples that fit it, at the bucket's length (as the runtime pads them)."""
    from ..buckets import pad_to

    task = exported.task
    samples = [{k: v.astype(np.int32) if v.dtype.kind in "iu" else v.astype(np.float32) for k, v in feed.items()}
               for feed in (task.encode([s], exported.settings.sequence_length) for s in texts)]
    data = {}
    for name, length in signatures(task, exported.settings).items():
        rows = [pad_to(feed, length, task.input_names) for feed in samples
                if length is None or feed["input_ids"].shape[1] <= length]
        data[name] = rows or [pad_to(samples[0], length, task.input_names)]
    return data


def _all_ops():
    from ai_edge_quantizer.qtyping import TFLOperationName

    return TFLOperationName.ALL_SUPPORTED


def _no_quantize():
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    return AlgorithmName.NO_QUANTIZE


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=1)


def describe_signatures(interpreter) -> dict[str, dict]:
    """Per signature (sequence buckets in length order): input and output names, dtypes and shapes, with the scale
    and zero point of quantized ones."""
    def rows(details):
        return [{"name": k, "dtype": np.dtype(d["dtype"]).name, "shape": [int(n) for n in d["shape"]]}
                | ({"quantization": {"scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])}}
                   if d["quantization"][0] else {}) for k, d in sorted(details.items())]

    out = {}
    for name in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(name)
        out[name] = {"inputs": rows(runner.get_input_details()), "outputs": rows(runner.get_output_details())}
    return dict(sorted(out.items(), key=lambda kv: bucket_length(kv[0]) or 0))


def _fp16_recipe():
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName
    from ai_edge_quantizer.recipe_manager import RecipeManager

    manager = RecipeManager()
    manager.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                   algorithm_key=AlgorithmName.FLOAT_CASTING)
    return manager.get_quantization_recipe()


def float_layers(path: Path) -> list[str]:
    """Weighted ops (fully connected, convolutions) whose weights the file holds as float32."""
    interpreter = _interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return list(dict.fromkeys(layer_name(tensors[op["outputs"][0]]["name"]) for op in interpreter._get_ops_details()
                              if op["op_name"] in WEIGHTED_OPS and len(op["inputs"]) > 1
                              and tensors[op["inputs"][1]]["dtype"] == np.float32))


def weight_bytes_by_dtype(path: Path) -> dict[str, int]:
    """Bytes of constant tensors (weights) per dtype as the interpreter holds them (int4 shows as int8): what the
    quantizer really did."""

    totals: dict[str, int] = {}
    interpreter = _interpreter(path)
    for tensor in interpreter.get_tensor_details():
        try:
            value = interpreter.get_tensor(tensor["index"])
        except ValueError:  # activations hold no data before a run
            continue
        totals[tensor["dtype"].__name__] = totals.get(tensor["dtype"].__name__, 0) + int(value.nbytes)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))
