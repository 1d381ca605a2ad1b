"""Each artifact's host speed beside the fp32 artifact of the same target, said plainly.

A "faster" compressed file that runs slower than fp32 is a common surprise on CPUs: weights the runtime
dequantizes on every run, or kernels it lacks. The same goes for the cost model: where its host estimate is far
from this host's measurement of the very same file, its device estimates for that file deserve less trust.
"""

from __future__ import annotations

from statistics import median
from typing import Callable

SLOWER_BELOW = 0.95  # speed-up vs fp32 under which the artifact is called slower (p50s over 100+ runs)
ESTIMATE_OFF_BY = 2.0  # host estimate / host measurement outside [1/x, x]: the device estimates are flagged
RETIMINGS = 3  # alternating re-timings of an artifact and its fp32 before calling it slower (a shared host's bursts)


def compare_with_fp32(results, retime: Callable | None = None) -> list[str]:
    """Adds `speedup_vs_fp32` to each artifact's host latency; notes, on the artifact and returned for the report,
    each artifact slower than its fp32 and each whose cost-model estimate is far off its measurement. `retime(result)`
    times an artifact again (p50 ms): a first timing that says slower is confirmed by alternating re-timings, whose
    medians then give the speed-up."""
    fp32 = {(r.target, r.role): r for r in results if r.precision == "fp32" and r.latency_ms.host}
    notes = []
    for result in results:
        host = result.latency_ms.host
        if not host:
            continue
        base = fp32.get((result.target, result.role))
        if base is not None and result is not base:
            mine, theirs = host.p50, base.latency_ms.host.p50
            how = "p50"
            if theirs / mine < SLOWER_BELOW and retime is not None:
                pairs = [(retime(result), retime(base)) for _ in range(RETIMINGS)]
                mine, theirs = median(p[0] for p in pairs), median(p[1] for p in pairs)
                how = f"median p50 of {RETIMINGS} alternating re-timings"
                host.speedup_retimed = [round(b / a, 3) for a, b in pairs]
            host.speedup_vs_fp32 = speedup = theirs / mine
            if speedup < SLOWER_BELOW:
                note = (f"slower than {result.target} fp32 on this host: {how} {mine:.2f} ms vs {theirs:.2f} ms "
                        f"({1 / speedup:.1f}x the time); here it saves size, not time")
                result.notes.append(note)
                notes.append(f"{result.label}: {note}")
        check = host.estimate
        if check and not 1 / ESTIMATE_OFF_BY <= check["estimate_over_measured"] <= ESTIMATE_OFF_BY:
            note = (f"the cost model's host estimate is x{check['estimate_over_measured']:.2f} this host's measurement "
                    f"({check['estimate']:.2f} vs {check['measured_p50']:.2f} ms): trust its device estimates less; "
                    "measure on the device (`edgepack measure`)")
            result.notes.append(note)
            notes.append(f"{result.label}: {note}")
    return notes
