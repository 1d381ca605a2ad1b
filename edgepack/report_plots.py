"""report.html's plots, drawn with matplotlib (Agg, no pyplot: no global state, no display) to inline PNG.

Each function takes the Report and returns (title, caption, [PNG bytes, one per panel]), or a false value when the
report has no data for it (no device, every artifact unrun, ...), so the page shows only plots that say something.
"""

from __future__ import annotations

import io
import math

PASS, FAIL, FRONT = "#2e7d32", "#c62828", "#1565c0"
CLASS_ORDER = ("matmul", "attention", "conv", "depthwise", "elementwise", "normalization", "embedding", "quantize",
               "data-movement", "other", "unattributed")  # the estimate's kernel classes, a fixed colour each


def _panel(width: float = 4.6, height: float = 3.2):
    """One plot per image: the page lays them out two across on a desk and one across on a phone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    ax.tick_params(labelsize=7)
    return fig, ax


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    return buf.getvalue()


def accuracy_vs_latency(report):
    metric = next((a.accuracy for a in report.artifacts if a.accuracy), None)
    limit = report.gates.get("max_accuracy_drop")
    pngs = []
    for device in report.devices:
        points = [(a.label, est, a.accuracy.value, a.passed) for a in report.artifacts
                  if a.accuracy and (est := a.latency_ms.devices.get(device)) and est.estimate is not None]
        if not points:
            continue
        fig, ax = _panel()
        for label, est, value, passed in points:
            err = [[est.estimate - (est.low or est.estimate)], [(est.high or est.estimate) - est.estimate]]
            ax.errorbar(est.estimate, value, xerr=err, fmt="o", color=PASS if passed else FAIL, capsize=3)
            ax.annotate(label, (est.estimate, value), textcoords="offset points", xytext=(4, 4), fontsize=7)
        front, best = [], -math.inf  # the Pareto front: no other artifact is both faster and more accurate
        for _, est, value, _ in sorted(points, key=lambda p: (p[1].estimate, -p[2])):
            if value > best:
                front.append((est.estimate, value))
                best = value
        ax.plot(*zip(*front), drawstyle="steps-post", color=FRONT, lw=1, marker="o", mfc="none", ms=11,
                label="Pareto front")
        budget = next((est.budget for _, est, _, _ in points if est.budget is not None), None)
        if budget is not None:
            ax.axvline(budget, color=FAIL, ls="--", lw=1, label=f"budget {budget:g} ms")
        if limit is not None:  # the source's value less the allowed drop
            ax.axhline(metric.value + metric.drop - limit, color="#777", ls=":", lw=1, label="max accuracy drop")
        length = points[0][1].length
        ax.set_title(device, fontsize=9)
        ax.set_xlabel("estimated ms" + (f" at {length} tokens" if length else ""), fontsize=8)
        ax.set_ylabel(metric.metric, fontsize=8)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.legend(fontsize=7, loc="best")
        pngs.append(_png(fig))
    return pngs and ("Accuracy vs device latency", "Each device's calibrated estimate (bars: its range) against the "
                     "accuracy measured on this host; green passed every check, red failed one. Ringed points are "
                     "the Pareto front.", pngs)


def sizes(report):
    sized = [a for a in report.artifacts if a.size_bytes]
    if not sized:
        return None
    fig, ax = _panel(height=0.3 * len(sized) + 0.9)
    mb = [a.size_bytes / 1e6 for a in sized]
    ax.barh([a.label for a in sized], mb, color=[PASS if a.passed else FAIL for a in sized])
    for y, value in enumerate(mb):
        ax.annotate(f"{value:.1f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    if report.gates.get("max_size_mb") is not None:
        ax.axvline(report.gates["max_size_mb"], color=FAIL, ls="--", lw=1, label="max_size_mb")
        fig.legend(fontsize=7, loc="outside lower center")
    ax.invert_yaxis()  # the table's order, top to bottom
    ax.set_xlabel("MB (the file as shipped)", fontsize=8)
    return "Size per artifact", "Green passed every check, red failed one.", [_png(fig)]


def breakdown(report):
    from matplotlib import colormaps

    tab = colormaps["tab20"].colors
    colours = dict(zip(CLASS_ORDER, tab[::2] + tab[1::2]))
    pngs = []
    for device in report.devices:
        rows = [(a.label, est) for a in report.artifacts
                if (est := a.latency_ms.devices.get(device)) and est.estimate is not None and est.by_class]
        if not rows:
            continue
        fig, ax = _panel(height=0.3 * len(rows) + 1.3)
        seen = set()
        for y, (label, est) in enumerate(rows):
            parts = dict(est.by_class)
            rest = est.estimate - sum(parts.values())  # what the classes do not add up to (per-op overhead)
            if rest > 0.005 * est.estimate:
                parts["unattributed"] = rest
            left = 0.0
            for cls in sorted(parts, key=lambda c: CLASS_ORDER.index(c) if c in CLASS_ORDER else 99):
                ax.barh(y, parts[cls], left=left, color=colours.get(cls, "#999"), label=None if cls in seen else cls)
                seen.add(cls)
                left += parts[cls]
        ax.set_yticks(range(len(rows)), [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_title(device, fontsize=9)
        ax.set_xlabel("estimated ms", fontsize=8)
        fig.legend(fontsize=7, ncols=4, loc="outside lower center")
        pngs.append(_png(fig))
    return pngs and ("Where each device estimate goes", "The estimate split by kernel class: what dominates "
                     "(matrix multiplies, attention, element-wise ops, data movement, ...).", pngs)


def fidelity(report):
    scored = [(a.label, a.accuracy.details) for a in report.artifacts if a.accuracy]
    hist = [(label, d) for label, d in scored if "cosine_histogram" in d]
    by_class = [(label, d["agreement_by_class"]) for label, d in scored if d.get("agreement_by_class")]
    if hist:
        pngs = []
        for label, details in hist:
            fig, ax = _panel(height=2.6)
            h = details["cosine_histogram"]
            ax.stairs(h["counts"], h["edges"], fill=True, color="#90a4ae")
            ax.axvline(details["cosine_p1"], color=FAIL, lw=1, label=f"p1 {details['cosine_p1']:.5f}")
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("cosine similarity to the source, per sample", fontsize=8)
            ax.ticklabel_format(axis="x", useOffset=False)
            ax.locator_params(axis="x", nbins=4)
            ax.legend(fontsize=7, loc="upper left")
            pngs.append(_png(fig))
        return ("Per-sample fidelity", "How many samples (of the evaluation data) had each cosine similarity to the "
                "source's output; the red line is the 1st percentile, the worst 1% of inputs.", pngs)
    if by_class:
        classes = list(by_class[0][1])
        fig, ax = _panel(height=0.3 * len(classes) + 1.2)
        for i, (label, agree) in enumerate(by_class):  # a dot plot: the axis need not start at zero
            shown = [c for c in agree if c in classes]
            ax.plot([agree[c][0] / agree[c][1] for c in shown],
                    [classes.index(c) + (i - len(by_class) / 2) * 0.08 for c in shown], "o", label=label, ms=5)
        ax.set_yticks(range(len(classes)), [f"{c} (n={by_class[0][1][c][1]})" for c in classes])
        ax.invert_yaxis()
        ax.margins(y=0.15)
        ax.set_xlabel("agreement with the source's top-1", fontsize=8)
        fig.legend(fontsize=7, ncols=2, loc="outside lower center")
        return ("Per-class fidelity", "The share of each class's samples (by the source's prediction) on which the "
                "artifact predicts the same class.", [_png(fig)])
    return None


def host_latency(report):
    pngs = []
    for a in report.artifacts:
        h = a.latency_ms.host
        if not (h and h.histogram):
            continue
        fig, ax = _panel(height=2.6)
        ax.stairs(h.histogram["counts"], h.histogram["edges"], fill=True, color="#b0bec5")
        ax.axvline(h.p50, color=FRONT, lw=1, label=f"p50 {h.p50:.2f} ms")
        ax.axvline(h.p90, color=FAIL, lw=1, ls="--", label=f"p90 {h.p90:.2f} ms")
        ax.set_title(a.label, fontsize=9)
        ax.set_xlabel("ms per run", fontsize=8)
        ax.legend(fontsize=7)
        pngs.append(_png(fig))
    return pngs and ("Host latency", "How many of the timed runs on this host (batch 1, warm-up excluded) took each "
                     "time.", pngs)


PLOTS = (accuracy_vs_latency, sizes, breakdown, fidelity, host_latency)  # the page's order


def compare_plot(result: dict) -> list[tuple[str, bytes]]:
    """compare.html: per device, each candidate artifact's metric on the labels vs its latency estimate (bars: the
    estimate's range), the limits, the Pareto front and the recommendation. `result` is compare.json's content."""
    pngs = []
    for device, verdict in result["devices"].items():
        points = [(f"{r['candidate']} {r['artifact']}", r["devices"][device], r["metric"]) for r in result["rows"]
                  if r["metric"] is not None and r["devices"].get(device, {}).get("estimate") is not None]
        if not points:
            continue
        fig, ax = _panel(5.2, 3.6)
        for label, d, value in points:
            err = [[d["estimate"] - (d["low"] or d["estimate"])], [(d["high"] or d["estimate"]) - d["estimate"]]]
            ax.errorbar(d["estimate"], value, xerr=err, fmt="o", color=PASS if d["meets"] else FAIL, capsize=3)
            ax.annotate(label, (d["estimate"], value), textcoords="offset points", xytext=(4, 4), fontsize=6)
        front = sorted((d["estimate"], value) for _, d, value in points if d["pareto"])
        ax.plot(*zip(*front), drawstyle="steps-post", color=FRONT, lw=1, marker="o", mfc="none", ms=11,
                label="Pareto front")
        best = verdict["recommended"]
        if best:
            d, value = next((d, v) for label, d, v in points if label == f"{best['candidate']} {best['artifact']}")
            ax.plot(d["estimate"], value, "*", color="#f9a825", ms=16, mec="#333", label="recommended", zorder=5)
        if verdict["limit_ms"] is not None:
            ax.axvline(verdict["limit_ms"], color=FAIL, ls="--", lw=1, label=f"limit {verdict['limit_ms']:g} ms")
        if result["limits"]["min_accuracy"] is not None:
            ax.axhline(result["limits"]["min_accuracy"], color="#777", ls=":", lw=1,
                       label=f"min {result['limits']['min_accuracy']:g}")
        ax.set_title(device, fontsize=9)
        ax.set_xlabel("estimated ms on the device", fontsize=8)
        ax.set_ylabel(result["metric"], fontsize=8)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.legend(fontsize=6, loc="best")
        pngs.append((device, _png(fig)))
    return pngs
