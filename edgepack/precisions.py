"""What each precision name means, in one place. Targets say which names they build (`Target.precisions`); a target
that brings a precision of its own declares it in its file with `Target.new_precisions`, so adding it edits no list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    name: str
    meaning: str
    weight_bytes: float        # bytes per weight in the file: inspect's size guess before anything is built
    calibrated: bool = False   # needs calibration samples (rows of the data file that are not evaluation samples)


STANDARD = {p.name: p for p in (
    Precision("fp32", "32-bit float weights and math", 4.0),
    Precision("fp16", "16-bit float weights; fp16 math where the runtime and CPU have it", 2.0),
    Precision("int8-dynamic", "int8 weights, activations quantized at run time", 1.0),
    Precision("int8-weight", "int8 weights, float math (weight-only)", 1.0),
    Precision("int4-weight", "int4 weights, float math (weight-only)", 0.5),
    Precision("int8-static", "full integer: int8 weights and activations, scales calibrated on data", 1.0, True),
    Precision("int4-palettized", "16-entry lookup table per weight tensor (Core ML)", 0.5),
)}


def known() -> dict[str, Precision]:
    """Every precision some registered target builds, with its meaning."""
    from .registry import TARGETS

    out = {}
    for name in TARGETS.names():
        target = TARGETS.get(name)
        extra = getattr(target, "new_precisions", {})
        for precision in target.precisions:
            out[precision] = extra.get(precision) or STANDARD[precision]
    return dict(sorted(out.items(), key=lambda kv: list(STANDARD).index(kv[0]) if kv[0] in STANDARD else 99))


def calibrated(name: str) -> bool:
    return known()[name].calibrated
