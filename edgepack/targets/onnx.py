"""ONNX: optimum's task-aware exporter for fp32; onnxruntime's tools for fp16 and dynamic int8."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ExportError, one_line
from ..registry import TARGETS
from . import ExportSettings, Target, quiet_toolchain

SMOOTHING_ALPHA = 0.65  # 0.5 (SmoothQuant's default) was worse than no smoothing on MiniLM; 0.65-0.85 all work
# Each inserted Mul costs ~1% of MiniLM's int8 latency; outlier-free activations (max/median channel range < 10)
# gain little from smoothing. On MiniLM this keeps 9 of 18 Muls: mean cosine 0.9954 instead of 0.9964.
SMOOTHING_MIN_OUTLIER_RATIO = 10.0


@TARGETS.register("onnx")
class OnnxTarget(Target):
    precisions = ("fp32", "fp16", "int8-dynamic", "int8-static", "int4-weight")
    suffix = ".onnx"
    runtime = "onnxruntime"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.task = None
        self.calibration_texts: list[str] = []  # int8-static calibrates on these (the build path sets them)
        self.calibration_origin = "texts given by the caller"
        self.calibration_length = 128  # tokens per calibration text at most: the run's sequence length
        self.static_settings = None  # an onnx_quant.StaticSettings; None = its defaults
        self._static_source = None

    @staticmethod
    def unsupported(source, task_name: str) -> str | None:
        """Why optimum's ONNX exporter cannot export this model for this task, or None when it can."""
        import optimum.exporters.onnx.model_configs  # noqa: F401 - registers the exportable model types
        from optimum.exporters.tasks import TasksManager

        model_type = str(source.config.get("model_type", "")).replace("_", "-")
        try:
            tasks = TasksManager.get_supported_tasks_for_model_type(model_type, "onnx", library_name="transformers")
        except KeyError:
            return f"optimum's ONNX exporter does not know model type {model_type!r}"
        if task_name not in tasks:
            return f"optimum exports {model_type} for {', '.join(sorted(tasks))}, not {task_name}"
        return None

    def export(self, source, task, settings: ExportSettings | None = None) -> Path:
        """Export with dynamic batch and sequence axes; returns a folder with the raw export and the fp32 graph the
        artifacts derive from (`model.onnx`, with the task's post-processing built in)."""
        import onnx
        from optimum.exporters.onnx import main_export

        if settings is not None and settings.calibration:  # int8-static calibrates on these
            self.calibration_texts, self.calibration_origin = settings.calibration, settings.calibration_origin
            self.calibration_length = settings.sequence_length

        self.task = task
        out = self.workdir / "onnx-export"
        try:
            with quiet_toolchain():
                main_export(str(source.path), output=out / "raw", task=task.optimum_task, opset=settings and settings.opset,
                            library_name="transformers", do_validation=False,
                            trust_remote_code=source.trust_remote_code, local_files_only=True)
        except Exception as exc:  # the exporter's own errors are long stack traces; keep the last line
            raise ExportError(f"ONNX export of {source.model_id} failed: {one_line(exc)}",
                              "try --opset 17, or another --task") from exc
        raw = out / "raw" / "model.onnx"
        if not raw.is_file():
            raise ExportError(f"ONNX export of {source.model_id} wrote no model.onnx")
        model = onnx.load(str(raw))
        self._postprocess(model)
        onnx.save(model, str(out / "model.onnx"))
        return out

    def _postprocess(self, model) -> None:
        from .onnx_passes import add_pooling

        pooling = self.task.graph_pooling()
        if pooling is not None:
            add_pooling(model, model.graph.output[0].name, *pooling)

    def build(self, precision: str, exported: Path, dest: Path) -> dict:
        """Write `precision`'s artifact to `dest`; returns the settings used, for the report."""
        base = exported / "model.onnx"
        if precision == "fp32":
            shutil.copyfile(base, dest)
            return {"exporter": "optimum.exporters.onnx.main_export", "dynamic_axes": ["batch", "sequence"],
                    "postprocessing_in_graph": self.task.graph_pooling() is not None}
        with quiet_toolchain():
            if precision == "fp16":
                return _to_fp16(base, dest)
            if precision == "int8-dynamic":
                return self._to_int8_dynamic(exported, dest)
            if precision == "int8-static":
                return self.build_static(exported, dest, self.static_settings)
            if precision == "int4-weight":
                from .onnx_quant import quantize_int4_weight

                return quantize_int4_weight(base, dest)
        raise ExportError(f"onnx target has no precision {precision!r}")

    def _to_int8_dynamic(self, exported: Path, dest: Path) -> dict:
        """Fuse (when onnxruntime knows the architecture), smooth activations, then quantize weights per channel."""
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from .onnx_passes import CALIBRATION_TEXTS, fuse_transformer, smooth_activations

        raw = exported / "raw" / "model.onnx"
        names = {i.name for i in onnx.load(str(raw), load_external_data=False).graph.input}
        fusion, smoothing = None, "none (not a text model)"
        model = onnx.load(str(exported / "model.onnx"))
        if self.task.data_kind == "text":  # transformer fusions and activation smoothing are for text encoders
            feeds = [{k: v for k, v in self.task.encode([text], 128).items() if k in names}
                     for text in CALIBRATION_TEXTS]
            fused_path = self.workdir / "fused.onnx"
            fusion = fuse_transformer(raw, fused_path, self.task.source.config, feeds[:4])
            if fusion is not None:
                model = onnx.load(str(fused_path))
                self._postprocess(model)
            smoothing = smooth_activations(model, feeds, SMOOTHING_ALPHA, SMOOTHING_MIN_OUTLIER_RATIO)
        smoothed = self.workdir / "smoothed.onnx"
        onnx.save(model, str(smoothed))
        # MatMulConstBOnly: activation x activation products (attention scores) stay float.
        # DefaultTensorType: fused com.microsoft ops carry no type info the quantizer can read without it.
        extra = {"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT}
        quantize_dynamic(str(smoothed), str(dest), per_channel=True, reduce_range=False,
                         weight_type=QuantType.QInt8, extra_options=extra)
        return {"tool": "onnxruntime.quantization.quantize_dynamic", "weights": "int8 symmetric, per channel",
                "activations": "uint8, dynamic per tensor", "op_types": "default (MatMul, Attention, Gather, "
                "EmbedLayerNormalization)", "matmul_const_b_only": True,
                "fusion": fusion or "none (not a fusable encoder)", "smoothing": smoothing,
                "runtime_note": "needs onnxruntime (com.microsoft contrib ops)" if fusion else "standard ONNX ops"}

    def static_source(self, exported: Path, samples: int) -> tuple[Path, list[dict], dict]:
        """The float graph static int8 quantizes (activations smoothed) and its calibration feeds; made once."""
        import onnx

        from ..errors import UsageError
        from .onnx_passes import smooth_activations
        from .onnx_quant import calibration_feeds

        if self._static_source is None or len(self._static_source[1]) != min(samples, len(self.calibration_texts)):
            if not self.calibration_texts:
                raise UsageError("int8-static needs calibration text", "pass --data FILE or use a recipe with data")
            model = onnx.load(str(exported / "model.onnx"))
            feeds = calibration_feeds(self.task, self.calibration_texts, {i.name for i in model.graph.input},
                                      samples, self.calibration_length)
            # Static scales are fixed per tensor, so an outlier channel costs every other channel its precision:
            # smooth every activation that feeds a weight, not only the worst ones as dynamic int8 does.
            smoothing = smooth_activations(model, feeds[:32], SMOOTHING_ALPHA, 0.0)
            path = self.workdir / f"static-source-{len(feeds)}.onnx"
            onnx.save(model, str(path))
            self._static_source = (path, feeds, smoothing)
        return self._static_source

    def build_static(self, exported: Path, dest: Path, settings=None) -> dict:
        """Static int8 (QDQ) of the exported graph; `settings` picks the calibration method and variant."""
        from .onnx_quant import StaticSettings, quantize_static_int8

        settings = settings or StaticSettings()
        src, feeds, smoothing = self.static_source(exported, settings.samples)
        with quiet_toolchain():
            info = quantize_static_int8(src, dest, feeds, settings, self.workdir)
        return info | {"smoothing": smoothing, "calibration_data": f"a seeded sample of {self.calibration_origin}"}

    @staticmethod
    def check(path: Path) -> str:
        import onnx

        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path), load_external_data=False)
        domains = sorted({n.domain for n in model.graph.node if n.domain})
        extra = f", contrib domains {domains}" if domains else ""
        return f"onnx.checker passed; opset {model.opset_import[0].version}, {len(model.graph.node)} nodes{extra}"

    @staticmethod
    def inputs_outputs(path: Path) -> dict:
        """Names, dtypes and shapes of the graph's inputs and outputs, for the manifest (what an app must feed)."""
        import onnx

        model = onnx.load(str(path), load_external_data=False)

        def describe(values):
            return [{"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                     "shape": [d.dim_param or d.dim_value or None for d in v.type.tensor_type.shape.dim]}
                    for v in values]

        return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


def _to_fp16(base: Path, dest: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    # Inputs and outputs stay fp32 so an app feeds the same tensors to every precision.
    model = OnnxModel(convert_float_to_float16(onnx.load(str(base)), keep_io_types=True))
    model.topological_sort()  # the converter appends the casts it inserts at the end of the graph
    onnx.save(model.model, str(dest))
    return {"tool": "onnxruntime.transformers.float16.convert_float_to_float16", "keep_io_types": True,
            "note": "fp16 weights and math; CPUs without fp16 arithmetic run it through casts"}
