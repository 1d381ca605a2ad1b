"""Core types and the core families the calibrated estimate shares its factors across.

A profile's `cpu.core_type` (or `efficiency_core_type` for rows pinned to the little cores) is free text such as
"Kryo 485 Gold (Cortex-A76 derived), 1x 2.84 GHz + 3x 2.42 GHz"; `core_of` reduces it to a core name ("cortex-a76")
and a family of cores that share pipeline width and ISA features, so that a device without measurements of its own
borrows what its family's devices measured.
"""

from __future__ import annotations

import re

# Arm cores by microarchitecture class: in-order little cores; ARMv8.0 out-of-order cores (no FP16 arithmetic, no
# dot product); ARMv8.2 out-of-order cores (FP16, dotprod); ARMv9 cores (SVE2, i8mm).
ARM_FAMILIES = {
    "arm-in-order": ("a53", "a55", "a510", "a520"),
    "arm-v8.0": ("a57", "a72", "a73"),
    "arm-v8.2": ("a75", "a76", "a77", "a78", "a78ae", "a78c", "x1"),
    "arm-v9": ("a710", "a715", "a720", "a725", "x2", "x3", "x4", "x925"),
}
APPLE = ("vortex", "tempest", "lightning", "firestorm", "icestorm", "avalanche", "everest")
X86 = ("coffee lake", "skylake", "ice lake", "willow cove", "golden cove", "raptor cove", "gracemont", "zen", "intel",
       "xeon", "amd", "ryzen", "epyc", "x86")


def core_of(text: str | None) -> tuple[str, str]:
    """(core, family) of a core-type description; ("unknown", "unknown") when nothing is recognised."""
    low = (text or "").lower()
    match = re.search(r"\b(?:cortex-?)?([ax]\d{1,3}(?:ae|c)?)\b", low)
    if match:
        core = match.group(1)
        for family, cores in ARM_FAMILIES.items():
            if core in cores:
                return f"cortex-{core}", family
    for name in APPLE:
        if name in low:
            return f"apple-{name}", "apple"
    if "oryon" in low:
        return "oryon", "oryon"
    for name in X86:
        if name in low:
            return name.replace(" ", "-"), "x86"
    return "unknown", "unknown"


def profile_core(profile, cluster: str = "big") -> tuple[str, str]:
    """The (core, family) a measurement on `cluster` of the profile's CPU runs on."""
    if cluster == "little" and profile.cpu.efficiency_core_type:
        return core_of(profile.cpu.efficiency_core_type)
    return core_of(profile.cpu.core_type)
