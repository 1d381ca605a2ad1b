"""ONNX: optimum's task-aware exporter for fp32; onnxruntime's tools for fp16 and dynamic int8."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ExportError
from ..registry import TARGETS
from . import quiet_toolchain

# Files an app needs next to the model to turn text into input ids.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "merges.txt", "sentencepiece.bpe.model", "spiece.model", "config.json")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


@TARGETS.register("onnx")
class OnnxTarget:
    precisions = ("fp32", "fp16", "int8-dynamic")
    suffix = ".onnx"
    runtime = "onnxruntime"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)

    def export(self, source, task, opset: int | None = None) -> Path:
        """fp32 export with dynamic batch and sequence axes; returns the folder holding model.onnx and tokenizer."""
        from optimum.exporters.onnx import main_export

        out = self.workdir / "onnx-export"
        try:
            with quiet_toolchain():
                main_export(str(source.path), output=out, task=task.optimum_task, opset=opset,
                            do_validation=False, trust_remote_code=False, local_files_only=True,
                            **task.export_options())
        except Exception as exc:  # the exporter's own errors are long stack traces; keep the last line
            raise ExportError(f"ONNX export of {source.model_id} failed: {_one_line(exc)}",
                              "try --opset 17, or another --task") from exc
        if not (out / "model.onnx").is_file():
            raise ExportError(f"ONNX export of {source.model_id} wrote no model.onnx")
        return out

    def build(self, precision: str, exported: Path, dest: Path) -> dict:
        """Write `precision`'s artifact to `dest`; returns the settings used, for the report."""
        base = exported / "model.onnx"
        if precision == "fp32":
            shutil.copyfile(base, dest)
            return {"exporter": "optimum.exporters.onnx.main_export", "dynamic_axes": ["batch", "sequence"]}
        with quiet_toolchain():
            if precision == "fp16":
                return _to_fp16(base, dest)
            if precision == "int8-dynamic":
                return _to_int8_dynamic(base, dest)
        raise ExportError(f"onnx target has no precision {precision!r}")

    @staticmethod
    def check(path: Path) -> str:
        import onnx

        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path), load_external_data=False)
        return f"opset {model.opset_import[0].version}, {len(model.graph.node)} nodes"

    @staticmethod
    def inputs_outputs(path: Path) -> dict:
        """Names, dtypes and shapes of the graph's inputs and outputs, for the manifest (what an app must feed)."""
        import onnx

        model = onnx.load(str(path), load_external_data=False)

        def describe(values):
            return [{"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                     "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]} for v in values]

        return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


def _to_fp16(base: Path, dest: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # Inputs and outputs stay fp32 so an app feeds the same tensors to every precision.
    model = convert_float_to_float16(onnx.load(str(base)), keep_io_types=True)
    onnx.save(model, str(dest))
    return {"tool": "onnxruntime.transformers.float16.convert_float_to_float16", "keep_io_types": True,
            "note": "fp16 weights and math; CPUs without fp16 arithmetic run it through casts"}


def _to_int8_dynamic(base: Path, dest: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8", "per_channel": True,
                "op_types": ["MatMul", "Gather"], "extra_options": {"MatMulConstBOnly": True}}
    quantize_dynamic(str(base), str(dest), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=settings["op_types"], extra_options=settings["extra_options"])
    return settings
