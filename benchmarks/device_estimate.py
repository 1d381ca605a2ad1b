"""How good is the calibrated device estimate? Leave-one-out over the published latencies.

For every usable row of ../shared/device-calibration/measurements.csv (edgepack/estimate/published.csv), the whole
model (shape parameters and offsets) is refitted without that row and then predicts it. Printed: the share of
estimates within +-25% of the measurement, overall and on the TFLite / XNNPACK rows alone, and how often the stated
range contains the measurement. The range of a held-out row is built as `edgepack estimate` builds it (see
edgepack/estimate/estimate.py: error_for), from the other rows' leave-one-out errors only.

Usage: flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/device_estimate.py [--write-fit]
  --write-fit  also write edgepack/estimate/fit.json (the parameters and errors edgepack ships)
Writes benchmarks/device_estimate.md. Takes a few minutes (one refit per row).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgepack.estimate.data import published  # noqa: E402
from edgepack.estimate.predict import FIT_FILE  # noqa: E402
from edgepack.estimate.fit import (RANGE_QUANTILE, Table, error_summary, fit, leave_device_out,  # noqa: E402
                                      leave_one_out)

TFLITE_FAMILIES = {"tflite", "tflite-2018", "xnnpack"}
MIN_ROWS = 5  # as in estimate.error_for


def group_keys(m) -> list[str]:
    device = m.device if m.cluster == "big" else f"{m.device}:{m.cluster}"
    return [f"pair:{device}|{m.runtime}", f"device:{device}", f"runtime:{m.runtime}"]


def held_out_widths(rows, loo: np.ndarray, lodo: np.ndarray) -> np.ndarray:
    """Range half-width for each row from the other rows' errors, choosing the group as error_for does."""
    members = defaultdict(list)
    for i, m in enumerate(rows):
        for key in group_keys(m):
            members[key].append(i)
    widths = np.empty(len(rows))
    for i, m in enumerate(rows):
        for key in group_keys(m):
            others = [j for j in members[key] if j != i]
            if len(others) >= MIN_ROWS:
                widths[i] = np.quantile(np.abs(loo[others]), RANGE_QUANTILE)
                break
        else:
            widths[i] = np.quantile(np.abs(np.delete(lodo, i)), RANGE_QUANTILE)
    return widths


def shipped_errors(rows, loo: np.ndarray, lodo: np.ndarray) -> dict:
    groups = defaultdict(list)
    for i, m in enumerate(rows):
        for key in group_keys(m):
            groups[key].append(i)
    errors = {key: error_summary(loo[idx]) for key, idx in sorted(groups.items())}
    errors["overall"] = error_summary(loo)
    errors["leave-device-out"] = error_summary(lodo)
    return errors


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-fit", action="store_true")
    args = parser.parse_args()
    started = time.time()
    rows = published()
    table = Table(rows)
    full = fit(table)
    loo = leave_one_out(table, full)
    lodo = leave_device_out(table, full)
    widths = held_out_widths(rows, loo, lodo)
    ratio = np.exp(loo)
    within = np.abs(ratio - 1) <= 0.25
    covered = np.abs(loo) <= widths
    tfl = np.array([m.runtime in TFLITE_FAMILIES for m in rows])
    elapsed = time.time() - started

    lines = ["# Calibrated device latency estimate: leave-one-out on the published measurements", "",
             f"Command: `flock /tmp/edgepack-heavy.lock .venv/bin/python benchmarks/device_estimate.py --write-fit` "
             f"({elapsed:.0f} s). Data: {len(rows)} usable rows of the shared device-calibration measurements.csv "
             "(edgepack/estimate/published.csv; benchmarks/calibration_rows.py lists the 8 left out: Inception, "
             "NASNet, Whisper and a MiniLM row without its sequence length). Each row is predicted by a fit on all "
             "the others (shape parameters and offsets refitted).", "",
             "| rows | n | within +-25% | median abs error | range contains measurement | median range (x/)|",
             "|---|---|---|---|---|---|"]
    subsets = [("all", np.ones(len(rows), bool)), ("TFLite / XNNPACK", tfl), ("ncnn", np.array(
        [m.runtime == "ncnn" for m in rows])), ("other runtimes", np.array(
            [m.runtime not in TFLITE_FAMILIES | {"ncnn"} for m in rows]))]
    for name, mask in subsets:
        lines.append(f"| {name} | {mask.sum()} | {pct(within[mask].mean())} | "
                     f"{pct(np.median(np.abs(ratio[mask] - 1)))} | {pct(covered[mask].mean())} | "
                     f"{np.median(np.exp(widths[mask])):.2f} |")
    lodo_ratio = np.exp(lodo)
    lines += ["", f"Leave-device-out (all rows of the device held out: the error to expect on a device with no "
              f"measurements of its own): within +-25% {pct(np.mean(np.abs(lodo_ratio - 1) <= 0.25))}, median abs "
              f"error {pct(np.median(np.abs(lodo_ratio - 1)))}.", "",
              "## Per device (leave-one-out)", "", "| device | rows | within +-25% | median abs error |", "|---|---|---|---|"]
    by_device = defaultdict(list)
    for i, m in enumerate(rows):
        by_device[m.device].append(i)
    for device, idx in sorted(by_device.items()):
        lines.append(f"| {device} | {len(idx)} | {pct(within[idx].mean())} | "
                     f"{pct(np.median(np.abs(ratio[idx] - 1)))} |")
    lines += ["", "## Fitted shape parameters", "", "| parameter | value |", "|---|---|"]
    params = full.to_json()
    for name, value in params["shape"].items():
        shown = (f"{np.exp(value):.3g}" if not name.startswith("overhead") and name != "parallel"
                 else f"{np.exp(value) * 1e6:.2f} us" if name == "overhead" else f"{1 / (1 + np.exp(-value)):.2f}")
        lines.append(f"| {name} | {shown} |")
    lines += ["", "Efficiencies are fractions of the profile's peak (compute) or bandwidth (memory); `parallel` is "
              "the speed-up each thread beyond the first adds. Runtime offsets (x):", ""]
    lines += [f"- {k.split(':', 1)[1]}: {np.exp(v):.2f}" for k, v in params["offsets"].items()
              if k.startswith("runtime:")]
    text = "\n".join(lines) + "\n"
    (ROOT / "benchmarks" / "device_estimate.md").write_text(text)
    print(text)
    if args.write_fit:
        FIT_FILE.write_text(json.dumps({"params": params, "errors": shipped_errors(rows, loo, lodo),
                                        "fitted_on": f"{len(rows)} published rows (published.csv)"}, indent=1) + "\n")
        print(f"wrote {FIT_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
