"""Fit the LLM device estimate's two efficiencies on published CPU figures and print the leave-one-out error.

    python benchmarks/llm_estimate.py > benchmarks/llm_estimate.md
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT.parent / "shared" / "device-calibration" / "llm-published.csv"
if not CSV.is_file():
    CSV = Path("/work/shared/device-calibration/llm-published.csv")

# Device name in the CSV -> edgepack profile; phones without a profile get their spec sheet's figures, said here.
PROFILES = {"Raspberry Pi 5": "raspberry-pi-5"}
SPEC = {  # (DRAM GB/s, int8 peak GOP/s): LPDDR5-6400 on a 64-bit bus = 51.2 GB/s (vendor spec sheets)
    "Samsung Galaxy S22": (51.2, None), "Samsung Galaxy S22 Ultra": (51.2, None), "iPhone 15 Pro": (51.2, None)}


def device(name: str) -> tuple[float, float | None]:
    from edgepack.devices import load_profile

    key = next((k for k in PROFILES if name.startswith(k)), None)
    if key:
        p = load_profile(PROFILES[key])
        return p.memory_bandwidth_gbps, p.peak_gflops.int8
    return SPEC[name]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from edgepack.estimate.llm import (bytes_per_weight, decode_tokens_per_s, fit_efficiency, leave_one_out,
                                       prefill_tokens_per_s)

    rows = list(csv.DictReader(open(CSV)))
    decode, prefill, skipped = [], [], []
    for r in rows:
        size = bytes_per_weight(r["weights"])
        known_device = r["device"] in SPEC or any(r["device"].startswith(k) for k in PROFILES)
        if size is None or not known_device:
            why = (f"the weight format ({r['weights']!r}) does not say the bits" if size is None else
                   f"the row does not parse (an unquoted comma in its weights field shifts the columns)")
            skipped.append(f"{r['model']} ({r['device'] or '?'}): {why}")
            continue
        bw, peak = device(r["device"])
        params = float(r["params_m"]) * 1e6
        if r["decode_tok_s"]:
            roof = decode_tokens_per_s(params * size, 0, bw, 1.0)
            decode.append((r, float(r["decode_tok_s"]) / roof, roof))
        if r["prefill_tok_s"] and peak:
            roof = prefill_tokens_per_s(params, peak, 1.0)
            prefill.append((r, float(r["prefill_tok_s"]) / roof, roof))

    print("# LLM device estimate: fitted efficiencies and leave-one-out error\n")
    print("Command: `python benchmarks/llm_estimate.py > benchmarks/llm_estimate.md`\n")
    print("Decode: tokens/s = efficiency x DRAM bandwidth / (weight bytes + KV cache bytes); prefill: tokens/s = "
          "efficiency x int8 peak / (2 x params). Data: `shared/device-calibration/llm-published.csv` "
          f"({len(rows)} rows). KV cache bytes are left out of the fit: the published rows do not state the context "
          "(at a few hundred tokens it is under 5% of a 4-bit 135M model's weights).\n")
    for title, fitted in (("Decode (memory-bandwidth bound)", decode), ("Prefill (compute bound)", prefill)):
        ratios = [f[1] for f in fitted]
        if len(ratios) < 2:
            print(f"## {title}\n\nfewer than two rows: no fit.\n")
            continue
        eff, loo = fit_efficiency(ratios), leave_one_out(ratios)
        print(f"## {title}\n\nfitted efficiency **{eff:.3f}** on {len(ratios)} rows; leave-one-out error: median "
              f"**{sorted(loo)[len(loo) // 2]:.0%}**, max **{max(loo):.0%}**\n")
        print("| model | weights | device | measured tok/s | roofline tok/s | efficiency | LOO predicted | LOO error |")
        print("|---|---|---|---|---|---|---|---|")
        for (r, ratio, roof), err in zip(fitted, loo):
            measured = ratio * roof
            others = fit_efficiency(ratios[:fitted.index((r, ratio, roof))] + ratios[fitted.index((r, ratio, roof)) + 1:])
            print(f"| {r['model']} | {r['weights'].split(' (')[0]} | {r['device']} | {measured:.1f} | {roof:.0f} | "
                  f"{ratio:.3f} | {others * roof:.1f} | {err:.0%} |")
        print()
    if skipped:
        print("Rows left out: " + "; ".join(skipped) + ".\n")
    print("Phones without an edgepack profile use 51.2 GB/s (LPDDR5-6400, 64-bit bus; vendor spec sheets, not "
          "re-measured). The iPhone 15 Pro row is far below the Android rows for the same file (the CSV's note: iOS "
          "build or threads), so it dominates the error.")


if __name__ == "__main__":
    main()
