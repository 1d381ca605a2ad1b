"""compare's outputs: compare.json (the result as `compare()` returns it), compare.md, compare.html (one
self-contained page like report.html: the verdict per device first, the table, the accuracy-vs-latency plot per
device with the limits and the Pareto front) and the terminal table."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    """One row per artifact; per device its estimate (range), `*` on the Pareto front, `ok` when within limits."""
    classify = any(r["macro_f1"] is not None for r in result["rows"])
    header = ["candidate", "artifact", result["metric"]] + (["macro-F1"] if classify else [])
    header += ["fidelity", "size MB", "memory MB", "params M", "license (commercial)"]
    header += [f"{d} est. ms" for d in result["devices"]]
    rows = []
    for r in result["rows"]:
        row = [r["candidate"], r["artifact"], _fmt(r["metric"], ".4f")] + (
            [_fmt(r["macro_f1"], ".4f")] if classify else [])
        row += [_fmt(r["fidelity"], ".4f"), _fmt(r["size_mb"]), _fmt(r["memory_mb"]),
                _fmt(r["parameters"] and r["parameters"] / 1e6), f"{r['license']} ({r['commercial_use']})"]
        for device in result["devices"]:
            d = r["devices"].get(device, {})
            if d.get("estimate") is None:
                row.append("-")
                continue
            marks = ("*" if d["pareto"] else "") + (" ok" if d["meets"] else "")
            row.append(f"{d['estimate']:.1f} ({d['low']:.0f}-{d['high']:.0f}){marks}")
        rows.append(row)
    return header, rows


def to_table(result: dict) -> str:
    header, rows = table(result)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)] if rows else map(len, header)
    widths = list(widths)
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _limits(result: dict) -> str:
    lim = result["limits"]
    parts = [f"min {result['metric']} {lim['min_accuracy']:g}" if lim["min_accuracy"] is not None else
             "no accuracy limit",
             f"max latency {lim['max_latency_ms']:g} ms" if lim["max_latency_ms"] is not None else
             "latency limit: each device profile's budget"]
    return ", ".join(parts + (["commercial use only"] if lim["commercial"] else []))


def to_markdown(result: dict) -> str:
    header, rows = table(result)
    lines = [f"# edgepack compare: {result['task']}", "",
             f"{'PASSED' if result['passed'] else 'FAILED'}: " +
             ("a recommendation for every device" if result["passed"] else "no candidate meets the limits on "
              "some device"), ""]
    lines += [f"- **{v['verdict']}**" for v in result["devices"].values()]
    data = result["data"]["path"] or "the recipe data"
    ranked = (f"{result['metric']}: the labels {result['reference']} (fp32, PyTorch) gives {data} "
              f"({result['data']['reference_labels']})" if result.get("reference") else
              f"{result['metric']} on the labels of {data}")
    lines += ["", f"Ranked by {ranked}; limits: {_limits(result)}. `*` Pareto front ({result['metric']} vs the device estimate), `ok` "
              "meets the limits. Device latency is a calibrated estimate (range in brackets), not a measurement.",
              "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    flagged = sorted({f"{r['candidate']} ({r['license']})" for r in result["rows"] if r["commercial_use"] != "yes"})
    if flagged:
        lines += ["", f"License does not clearly allow commercial use: {', '.join(flagged)} (--commercial drops them)."]
    if result["dropped"]:
        lines += ["", "Dropped by --commercial: " + "; ".join(result["dropped"])]
    lines += ["", "Candidates: " + ", ".join(f"`{c['spec']}` -> {c['folder']}" for c in result["candidates"]), ""]
    return "\n".join(lines)


def to_html(result: dict) -> str:
    from .report_html import STYLE, _table
    from .report_plots import compare_plot

    header, rows = table(result)
    verdicts = "".join(f"<li>{escape(v['verdict'])}</li>" for v in result["devices"].values())
    head = ("PASSED: a recommendation for every device" if result["passed"] else
            "FAILED: no candidate meets the limits on some device")
    images = "".join(f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
                     f'alt="{escape(result["metric"])} vs {escape(device)} latency">'
                     for device, png in compare_plot(result))
    flagged = sorted({f"{r['candidate']} ({r['license']})" for r in result["rows"] if r["commercial_use"] != "yes"})
    notes = [f"License does not clearly allow commercial use: {', '.join(flagged)}."] if flagged else []
    notes += ["Dropped by --commercial: " + "; ".join(result["dropped"])] if result["dropped"] else []
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>edgepack compare: {escape(result['task'])}</title><style>{STYLE}</style></head><body><main>"
            f'<header class="verdict {"pass" if result["passed"] else "fail"}"><h1 id="verdict">{escape(head)}</h1>'
            f"<div>task <code>{escape(result['task'])}</code> · ranked by {escape(result['metric'])} · "
            f"{escape(_limits(result))}</div><ul>{verdicts}</ul></header>"
            f"<h2>Candidates</h2>{_table(header, rows, cls='summary')}"
            f"<p>* on the Pareto front ({escape(result['metric'])} vs the device estimate); ok: meets the limits. "
            f"Device latencies are calibrated estimates (range in brackets), not measurements.</p>"
            + "".join(f"<p>{escape(n)}</p>" for n in notes) +
            f'<h2>Plots</h2><figure><div class="panels">{images}</div><figcaption><b>{escape(result["metric"])} vs '
            f"device latency</b>. One panel per device: each artifact's estimate (bars: its range); green meets "
            f"the limits, red does not; ringed points are the Pareto front; dashed lines are the limits; the star "
            f"is the recommendation.</figcaption></figure>"
            f"<h2>Settings</h2><pre>{escape(json.dumps({k: result[k] for k in ('limits', 'data', 'candidates')}, indent=1))}"
            f"</pre></main></body></html>\n")


def write_all(result: dict, folder: Path) -> list[str]:
    files = {"compare.json": json.dumps(result, indent=2) + "\n", "compare.md": to_markdown(result),
             "compare.html": to_html(result)}
    for name, text in files.items():
        (Path(folder) / name).write_text(text, encoding="utf-8")
    return list(files)
