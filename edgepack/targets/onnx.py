"""ONNX: optimum's task-aware exporter for fp32; onnxruntime's tools for fp16 and dynamic int8."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ExportError, one_line
from ..memo import remembered
from ..registry import TARGETS
from . import Exported, ExportSettings, Target, Tuning, quiet_toolchain

SMOOTHING_ALPHA = 0.65  # 0.5 (SmoothQuant's default) was worse than no smoothing on MiniLM; 0.65-0.85 all work
# Each inserted Mul costs ~1% of MiniLM's int8 latency; outlier-free activations (max/median channel range < 10)
# gain little from smoothing. On MiniLM this keeps 9 of 18 Muls: mean cosine 0.9954 instead of 0.9964.
SMOOTHING_MIN_OUTLIER_RATIO = 10.0


@TARGETS.register("onnx")
class OnnxTarget(Target):
    precisions = ("fp32", "fp16", "int8-dynamic", "int8-static", "int8-weight", "int4-weight")
    # weight-only int8 quantizes MatMul weights: a CNN has none (image recipes name int8-weight for Core ML)
    not_for_tasks = {"int8-weight": ("image-classification",)}
    suffix = ".onnx"
    runtime = "onnxruntime"
    tunable = ("int8-static",)

    @staticmethod
    def unsupported(source, task_name: str) -> str | None:
        """Why optimum's ONNX exporter cannot export this model for this task, or None when it can. Remembered per
        (model type, optimum and transformers versions): importing optimum's model configs takes seconds."""
        model_type = str(source.config.get("model_type", ""))
        key = {"model_type": model_type, **{name: _version(name) for name in ("optimum", "optimum-onnx",
                                                                                "transformers")}}
        tasks = remembered("optimum-onnx-tasks", key, lambda: _optimum_tasks(model_type))
        if tasks is None:
            return f"optimum's ONNX exporter does not know model type {model_type.replace('_', '-')!r}"
        if task_name not in tasks:
            return f"optimum exports {model_type} for {', '.join(sorted(tasks))}, not {task_name}"
        return None

    def export(self, source, task, settings: ExportSettings) -> Exported:
        """Export with dynamic batch and sequence axes: a folder with the raw export and the fp32 graph the artifacts
        derive from (`model.onnx`, with the task's post-processing built in)."""
        import onnx
        from optimum.exporters.onnx import main_export

        out = self.workdir / "onnx-export"
        try:
            with quiet_toolchain():
                main_export(str(source.path), output=out / "raw", task=task.optimum_task, opset=settings.opset,
                            library_name="transformers", do_validation=False,
                            trust_remote_code=source.trust_remote_code, local_files_only=True)
        except Exception as exc:  # the exporter's own errors are long stack traces; keep the last line
            raise ExportError(f"ONNX export of {source.model_id} failed: {one_line(exc)}",
                              "try --opset 17, or another --task") from exc
        raw = out / "raw" / "model.onnx"
        if not raw.is_file():
            raise ExportError(f"ONNX export of {source.model_id} wrote no model.onnx")
        model = onnx.load(str(raw))
        _postprocess(model, task)
        onnx.save(model, str(out / "model.onnx"))
        return Exported(out, source, task, settings)

    def build(self, precision: str, exported: Exported, dest: Path, tuning: Tuning | None = None) -> dict:
        """Write `precision`'s artifact to `dest`; returns the settings used, for the report."""
        base = exported.folder / "model.onnx"
        if precision == "fp32":
            shutil.copyfile(base, dest)
            return {"exporter": "optimum.exporters.onnx.main_export", "dynamic_axes": ["batch", "sequence"],
                    "postprocessing_in_graph": exported.task.graph_pooling() is not None}
        with quiet_toolchain():
            if precision == "int8-weight" or (precision == "int4-weight" and getattr(exported.task, "generative", 0)):
                from .onnx_lm import build_weight_only  # MatMulNBits; for LMs also the embeddings and lm_head

                return build_weight_only(base, dest, precision, exported.settings.weight_only, self.workdir,
                                         bool(exported.source.config.get("tie_word_embeddings")))
            if precision == "fp16":
                return _to_fp16(base, dest)
            if precision == "int8-dynamic":
                return self._to_int8_dynamic(exported, dest)
            if precision == "int8-static":
                return self._to_int8_static(exported, dest, tuning or self.default_tuning(precision))
            if precision == "int4-weight":
                from .onnx_quant import quantize_int4_weight

                return quantize_int4_weight(base, dest)
        raise ExportError(f"onnx target has no precision {precision!r}")

    def _to_int8_dynamic(self, exported: Exported, dest: Path) -> dict:
        """Fuse (when onnxruntime knows the architecture), smooth activations, then quantize weights per channel."""
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from .onnx_passes import CALIBRATION_TEXTS, fuse_transformer, smooth_activations

        task = exported.task
        raw = exported.folder / "raw" / "model.onnx"
        names = {i.name for i in onnx.load(str(raw), load_external_data=False).graph.input}
        fusion, smoothing = None, "none (not a text model)"
        model = onnx.load(str(exported.folder / "model.onnx"))
        if task.data_kind == "text":  # transformer fusions and activation smoothing are for text encoders
            feeds = [{k: v for k, v in task.encode([text], 128).items() if k in names}
                     for text in CALIBRATION_TEXTS]
            fused_path = self.workdir / "fused.onnx"
            fusion = fuse_transformer(raw, fused_path, exported.source.config, feeds[:4])
            if fusion is not None:
                model = onnx.load(str(fused_path))
                _postprocess(model, task)
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

    def default_tuning(self, precision: str) -> Tuning:
        from .onnx_quant import DEFAULT_STATIC

        return DEFAULT_STATIC

    def tuning_variants(self, tuning: Tuning) -> list[Tuning]:
        """The other calibration methods, then per-tensor weights, then symmetric activations."""
        from .onnx_quant import CALIBRATION_METHODS

        method = tuning.knob("method")
        return ([tuning] + [tuning.with_knob("method", m) for m in CALIBRATION_METHODS if m != method]
                + [tuning.with_knob("per_channel", not tuning.knob("per_channel")),
                   tuning.with_knob("symmetric_activations", not tuning.knob("symmetric_activations"))])

    def quantizable_layers(self, precision: str, exported: Exported) -> list[str]:
        from .onnx_quant import quantizable_nodes

        return quantizable_nodes(self._static_source(exported, self.default_tuning(precision).samples)[0])

    def _static_source(self, exported: Exported, samples: int) -> tuple[Path, list[dict], dict]:
        """The float graph static int8 quantizes (activations smoothed) and its calibration feeds; made once per
        sample count and kept in the export's state."""
        import onnx

        from ..errors import UsageError
        from .onnx_passes import smooth_activations
        from .onnx_quant import calibration_feeds

        texts = exported.settings.calibration
        if not texts:
            raise UsageError("int8-static needs calibration text", "pass --data FILE or use a recipe with data")
        cache = exported.state.setdefault("static_source", {})
        if samples not in cache:
            model = onnx.load(str(exported.folder / "model.onnx"))
            feeds = calibration_feeds(exported.task, texts, {i.name for i in model.graph.input}, samples,
                                      exported.settings.sequence_length)
            # Static scales are fixed per tensor, so an outlier channel costs every other channel its precision:
            # smooth every activation that feeds a weight, not only the worst ones as dynamic int8 does.
            smoothing = smooth_activations(model, feeds[:32], SMOOTHING_ALPHA, 0.0)
            path = self.workdir / f"static-source-{len(feeds)}.onnx"
            onnx.save(model, str(path))
            cache[samples] = (path, feeds, smoothing)
        return cache[samples]

    def _to_int8_static(self, exported: Exported, dest: Path, tuning: Tuning) -> dict:
        """Static int8 (QDQ) of the exported graph; `tuning` picks the calibration method and variant."""
        from .onnx_quant import quantize_static_int8

        src, feeds, smoothing = self._static_source(exported, tuning.samples)
        with quiet_toolchain():
            info = quantize_static_int8(src, dest, feeds, tuning, self.workdir)
        return info | {"smoothing": smoothing,
                       "calibration_data": f"a seeded sample of {exported.settings.calibration_origin}"}

    def deployment(self, precision: str, exported: Exported | None = None) -> dict:
        """For a language model: how an app drives the KV cache, and its stop tokens (the manifest)."""
        task = exported.task if exported else None
        if not getattr(task, "generative", False):
            return {}
        layers, kv_heads, head_dim = task.cache_shape()
        return {"generation": {
            "kv_cache": f"feed present.N.key/value back as past_key_values.N.key/value (N < {layers}), float32, shape "
                        f"(batch, {kv_heads}, past tokens, {head_dim}); start with past tokens = 0",
            "inputs_each_step": "input_ids (new tokens), attention_mask (past + new ones), position_ids",
            "stop_tokens": task.stop_tokens(), "chat_template": "tokenizer/ (tokenizer_config.json or "
                                                                  "chat_template.jinja)"}}

    @staticmethod
    def check(path: Path, exported: Exported | None = None) -> str:
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


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _optimum_tasks(model_type: str) -> list[str] | None:
    """The tasks optimum's ONNX exporter supports for `model_type`; None for a type it does not know."""
    import optimum.exporters.onnx.model_configs  # noqa: F401 - registers the exportable model types
    from optimum.exporters.tasks import TasksManager

    # optimum spells most types with dashes (blenderbot-small), some as transformers does (mobilenet_v2).
    for spelling in dict.fromkeys((model_type.replace("_", "-"), model_type)):
        try:
            return sorted(TasksManager.get_supported_tasks_for_model_type(spelling, "onnx", library_name="transformers"))
        except KeyError:
            continue
    return None


def _postprocess(model, task) -> None:
    from .onnx_passes import add_pooling

    pooling = task.graph_pooling()
    if pooling is not None:
        add_pooling(model, model.graph.output[0].name, *pooling)


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
