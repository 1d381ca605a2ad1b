"""report.html: the report for people. The verdict first (which gate failed, by how much), then the table, the plots,
each artifact's checks, and the settings, versions and notes. One self-contained file: the plots are PNG inlined as
data: URLs and the page loads nothing, so it opens offline, from an e-mail or a CI artifact. Readable on a phone:
the tables scroll sideways inside the page, which itself never does."""

from __future__ import annotations

import base64
import json
from html import escape

from .manifest import versions
from .report import Report, generation_lines, renderer, summary_rows

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa;
       overflow-wrap: anywhere; }
main { max-width: 980px; margin: 0 auto; padding: 12px; }
.verdict { border-radius: 6px; padding: 10px 14px; color: #fff; }
.verdict.pass { background: #2e7d32; } .verdict.fail { background: #c62828; }
.verdict h1 { margin: 0 0 4px; font-size: 1.5em; } .verdict ul { margin: 6px 0 0; padding-left: 1.2em; }
.scroll { overflow-x: auto; } table { border-collapse: collapse; font-size: 13px; background: #fff; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; overflow-wrap: normal; }
.summary td { white-space: nowrap; }  /* short figures: the table scrolls sideways rather than break them */
td.FAIL { color: #c62828; font-weight: 600; } td.pass { color: #2e7d32; }
figure { margin: 16px 0; background: #fff; padding: 8px; border: 1px solid #eee; }
.panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 420px), 1fr)); gap: 8px; }
.panels img { width: 100%; max-width: 600px; height: auto; display: block; }  /* a lone panel stays its size */ figcaption { font-size: 13px; color: #555; }
pre { white-space: pre-wrap; font-size: 12px; background: #fff; padding: 6px; border: 1px solid #eee; }
code { font-size: 12px; }
"""


def _table(header: list[str], rows: list[list[str]], status: int | range | None = None, cls: str = "") -> str:
    """A table that scrolls sideways on a narrow screen; the `status` column(s) get a pass/FAIL colour."""
    statuses = range(status, status + 1) if isinstance(status, int) else status or ()

    def cell(i, value):
        word = str(value).split(" ")[0]
        cls = f' class="{word}"' if i in statuses and word in ("pass", "FAIL") else ""
        return f"<td{cls}>{escape(str(value))}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _verdict(report: Report) -> str:
    failed = [(a.label, c) for a in report.artifacts for c in a.checks if not c.passed]
    items = [f"<li><b>{escape(label)}</b>: {escape(c.name)}: {escape(c.detail)}</li>" for label, c in failed]
    items += [f"<li><b>{escape(a.label)}</b>: not built</li>" for a in report.artifacts
              if a.path is None and not any(not c.passed for c in a.checks)]
    items += [f"<li>{escape(a.label)}: file checks only, not run here ({escape(a.not_run)})</li>"
              for a in report.artifacts if a.not_run]
    if report.passed:
        head = f"PASSED: every check of {len(report.artifacts)} artifact(s) passed"
    elif not report.artifacts:
        head = "FAILED: no artifact was built"
    else:
        head = f"FAILED: {len(failed)} check(s) failed"
    about = (f"{escape(report.model)} · task <code>{escape(report.task)}</code> · revision "
             f"<code>{escape(report.revision)}</code> · license <code>{escape(str(report.license))}</code>")
    return (f'<header class="verdict {"pass" if report.passed else "fail"}"><h1 id="verdict">{escape(head)}</h1>'
            f'<div>{about}</div>{"<ul>" + "".join(items) + "</ul>" if items else ""}</header>')


def _plots(report: Report) -> str:
    from .report_plots import PLOTS  # matplotlib loads only when a report is written, never on `import edgepack`

    out = []
    for plot in PLOTS:
        drawn = plot(report)
        if drawn:
            title, caption, pngs = drawn
            images = "".join(f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
                             f'alt="{escape(title)}">' for png in pngs)
            out.append(f'<figure><div class="panels">{images}</div><figcaption><b>{escape(title)}</b>. '
                       f"{escape(caption)}</figcaption></figure>")
    return "".join(out) or "<p>Nothing to plot: no artifact ran on this host.</p>"


def _artifact(a) -> str:
    lines = [f"<h3>{escape(a.label)}</h3>"]
    if a.path:
        lines.append(f"<p>File <code>{escape(a.path)}</code>, {a.size_bytes:,} bytes, sha256 "
                     f"<code>{escape(str(a.sha256))}</code>.</p>")
    if a.not_run:
        lines.append(f"<p>Not run here: accuracy, latency, memory ({escape(a.not_run)}).</p>")
    if a.accuracy:
        scalars = {k: v for k, v in a.accuracy.details.items() if not isinstance(v, (dict, list))}
        lines.append("<p>Accuracy: " + escape(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                         for k, v in scalars.items())) + ".</p>")
    lines += [f"<p>{escape(line)}</p>" for line in generation_lines(a)]
    if a.memory_mb is not None and not a.generation:
        lines.append(f"<p>Inference memory: {a.memory_mb:.1f} MB (peak RSS above the process's size before "
                     "loading).</p>")
    lines.append(_table(["check", "result", "detail"],
                        [[c.name, "pass" if c.passed else "FAIL", c.detail] for c in a.checks], status=1))
    settings = {k: v for k, v in a.settings.items() if k != "search"} | ({"deployment": a.deployment}
                                                                          if a.deployment else {})
    if settings:
        lines.append(f"<pre>{escape(json.dumps(settings, indent=1))}</pre>")
    lines += [f"<p>Note: {escape(n)}</p>" for n in a.notes]
    return "".join(lines)


@renderer("report.html")
def to_html(report: Report) -> str:
    header, rows = summary_rows(report)
    host, data = report.host, report.data
    context = {"recipe": report.recipe, "sequence length": report.sequence_length, "devices": report.devices,
               "gates": report.gates, "evaluation data": data, "workload (token lengths)": report.workload,
               "host": host, "edgepack": report.edgepack_version, "versions": versions()}
    more = ("<p>The accuracy-aware search and distillation records are in report.md and report.json.</p>"
            if report.distillation or any("search" in a.settings for a in report.artifacts) else "")
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>edgepack report: {escape(report.model)}</title><style>{STYLE}</style></head><body><main>"
            f"{_verdict(report)}<h2>Artifacts</h2>{_table(header, rows, len(header) - 1, 'summary')}"
            f"<p>Device latencies are calibrated estimates from the exported graph's op costs, not measurements; host "
            f"latency is batch 1 on {escape(str(host.get('cpu')))} with {host.get('threads')} thread(s).</p>"
            f"<h2>Plots</h2>{_plots(report)}<h2>Each artifact</h2>{''.join(_artifact(a) for a in report.artifacts)}"
            f"{more}<h2>Settings, versions and notes</h2><pre>{escape(json.dumps(context, indent=1))}</pre>"
            f"{'<ul>' + notes + '</ul>' if notes else ''}</main></body></html>\n")
