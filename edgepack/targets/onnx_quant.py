"""ONNX quantizers that need more than the graph: static int8 (QDQ, calibrated on real text) and int4 weight-only
(MatMulNBits). The accuracy-aware search (edgepack/search.py) drives `quantize_static_int8` through the ONNX
target with layer exclusions and variants; calibration runs once per graph and method and is cached."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from . import Tuning, calibration_sample

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")


# The default static-int8 variant: the best trade-off measured on the fine-tuned MiniLM tweet classifier.
DEFAULT_STATIC = Tuning(samples=128, knobs=(("method", "minmax"), ("per_channel", True),
                                            ("symmetric_activations", False)))


def calibration_feeds(task, texts: list[str], input_names: set[str], samples: int, max_length: int = 128,
                      seed: int = 0) -> list[dict]:
    """calibration_sample's texts, each encoded alone at its natural length up to `max_length` (as an app feeds
    them)."""
    feeds = []
    for text in calibration_sample(texts, samples, seed):
        enc = task.encode([text], max_length)
        if "token_type_ids" in input_names and "token_type_ids" not in enc:
            enc["token_type_ids"] = np.zeros_like(enc["input_ids"])
        feeds.append({k: v for k, v in enc.items() if k in input_names})
    return feeds


def quantizable_nodes(path: Path) -> list[str]:
    """The layers static int8 quantizes: MatMul/Gemm/Conv nodes with a constant weight, in graph order (Conv: a
    CNN's weights are nearly all convolutions; without them only its classifier head would be int8)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and len(n.input) > 1
            and n.input[1] in inits]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict]):
        self.feeds = feeds
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def __len__(self):
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int):
        self._it = iter(self.feeds[start_index:end_index])

    def rewind(self):
        self._it = iter(self.feeds)


def _pad_to_longest(feeds: list[dict]) -> list[dict]:
    """Right-pad every feed to the longest; padded positions carry attention_mask 0 (and token id 0)."""
    longest = max(f["input_ids"].shape[1] for f in feeds)
    return [{k: np.pad(v, ((0, 0), (0, longest - v.shape[1]))) for k, v in f.items()} for f in feeds]


def quantize_static_int8(src: Path, dest: Path, feeds: list[dict], tuning: Tuning, cache_dir: Path) -> dict:
    """QDQ static int8 of `src` to `dest`. Weights int8 (per channel or per tensor), activations uint8 (or int8
    when symmetric) with scales fixed by calibration. Only constant-weight MatMul/Gemm/Conv are quantized: the
    activation x activation products of attention stay float, as they do for dynamic int8."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    method, per_channel = tuning.knob("method", "minmax"), tuning.knob("per_channel", True)
    symmetric = tuning.knob("symmetric_activations", False)
    nodes = quantizable_nodes(src)
    cache = Path(cache_dir) / f"calibration-{method}-{len(feeds)}.json"  # ranges are shared by variants
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True,
             "CalibMovingAverage": method == "minmax"}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    if method != "minmax":  # histogram calibrators stack their samples: one shape for all
        feeds = _pad_to_longest(feeds)
    with contextlib.redirect_stdout(io.StringIO()):  # the entropy calibrator prints; stdout may carry --json
        quantize_static(str(src), str(dest), _Reader(feeds), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZED_OPS), per_channel=per_channel, reduce_range=False,
                        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_quantize=nodes, nodes_to_exclude=list(tuning.exclude),
                        calibrate_method=methods[method], extra_options=extra, calibration_cache_path=cache)
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "calibration_method": method, "calibration_samples": len(feeds),
            "calibration_moving_average": extra["CalibMovingAverage"],
            "weights": f"int8 symmetric, {'per channel' if per_channel else 'per tensor'}",
            "activations": f"{'int8 symmetric' if symmetric else 'uint8 asymmetric'}, "
                           "static per tensor", "op_types": "MatMul/Gemm/Conv with constant weights",
            "layers_quantized": len(nodes) - len(tuning.exclude), "layers_in_float": list(tuning.exclude),
            "variant": dict(tuning.knobs) | {"samples": tuning.samples, "exclude": len(tuning.exclude)}}


def quantize_int4_weight(src: Path, dest: Path, block_size: int = 32, symmetric: bool = True,
                         accuracy_level: int = 4) -> dict:
    """int4 weight-only: each constant-weight MatMul becomes MatMulNBits (blockwise int4 weights, float
    activations). accuracy_level 4 lets the CPU kernel compute in int8 after dequantising blocks."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    before = sum(n.op_type == "MatMul" for n in model.graph.node)
    quant = MatMulNBitsQuantizer(model, bits=4, block_size=block_size, is_symmetric=symmetric,
                                 accuracy_level=accuracy_level)
    quant.process()
    quant.model.save_model_to_file(str(dest), use_external_data_format=False)
    converted = sum(n.op_type == "MatMulNBits" for n in onnx.load(str(dest), load_external_data=False).graph.node)
    return {"tool": "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer", "algorithm": "RTN",
            "weights": f"int4 {'symmetric' if symmetric else 'asymmetric'}, blocks of {block_size}",
            "activations": "float32", "accuracy_level": accuracy_level,
            "matmuls_converted": f"{converted} of {before}",
            "runtime_note": "needs onnxruntime (com.microsoft MatMulNBits)"}
