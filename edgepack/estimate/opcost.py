"""What the latency estimate counts per op, whatever the file format: the op's kernel class, FLOPs, bytes, precision.

Conventions shared by every counter (count_onnx, count_tflite, ...): a multiply-add is 2 FLOPs; `bytes` is what the op
reads (inputs, weights included) plus what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

KERNEL_CLASSES = ("conv", "depthwise", "matmul", "attention", "elementwise", "normalization", "embedding",
                  "quantize", "data-movement", "other")


@dataclass(frozen=True)
class OpCost:
    name: str
    op_type: str
    kernel_class: str  # one of KERNEL_CLASSES
    flops: int         # multiply-add = 2
    bytes: int         # read (inputs incl. weights) + written (outputs)
    precision: str     # "fp32" / "fp16" / "int8"
    known: bool = True  # False: op type not in the tables above; only its bytes are counted
    variant: str = ""   # "3x3s1": a dense 3x3 stride-1 conv (runtimes use Winograd or similar fast paths for these)
