"""What a matrix run writes beside the pack folders, all from matrix.json's rows (so `merge` writes the same):
matrix.json, junit.xml (a suite per model and device, a case per artifact x gate), summary.md, report.html."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from ..report_html import STYLE, _table
from ..version import __version__


def _settle(row: dict) -> None:
    """A cell passes when its artifact was built and every check on it passed; its worst margin is the tightest."""
    row["passed"] = row["path"] is not None and all(c["passed"] for c in row["checks"])
    margins = [(c["margin"], c["name"]) for c in row["checks"] if c.get("margin") is not None]
    worst = min(margins, default=None)
    row["worst_margin"], row["worst_gate"] = (worst[0], worst[1]) if worst else (None, None)


def matrix_json(spec, spec_hash: str, spec_file: Path, rows: list[dict], all_jobs_count: int, job: int | None,
                baseline: Path | None, cache: dict) -> dict:
    for row in rows:
        _settle(row)
    return {"matrix": str(spec_file), "matrix_sha256": spec_hash, "passed": all(r["passed"] for r in rows),
            "job": None if job is None else {"index": job, "count": all_jobs_count},
            "models": [m.label for m in spec.models], "devices": list(spec.devices), "targets": list(spec.targets),
            "precisions": list(spec.precisions), "tolerances": spec.tolerances.model_dump(),
            "baseline": str(baseline) if baseline else None, "cache": cache, "edgepack_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows}


def write(matrix: dict, folder: Path) -> None:
    folder = Path(folder)
    (folder / "matrix.json").write_text(json.dumps(matrix, indent=1) + "\n")
    (folder / "junit.xml").write_text(junit(matrix), encoding="utf-8")
    (folder / "summary.md").write_text(summary(matrix), encoding="utf-8")
    (folder / "report.html").write_text(html(matrix), encoding="utf-8")


def _groups(matrix: dict) -> list[tuple[str, str, list[dict]]]:
    """(model, device, rows) in the file's order."""
    groups = []
    for model in matrix["models"]:
        for device in matrix["devices"]:
            rows = [r for r in matrix["rows"] if r["model"] == model and r["device"] == device]
            if rows:
                groups.append((model, device, rows))
    return groups


def _artifact(row: dict) -> str:
    return f"{row['target']}/{row['precision']}"


def _gate(row: dict, name: str) -> str:
    return name.removeprefix(f"{row['device']}: ")


def junit(matrix: dict) -> str:
    suites = ET.Element("testsuites", name="edgepack matrix")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for model, device, rows in _groups(matrix):
        suite = ET.SubElement(suites, "testsuite", name=f"{model} on {device}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for row in rows:
            classname = f"{model}.{device}.{_artifact(row)}"
            for check in row["checks"]:
                case = ET.SubElement(suite, "testcase", name=f"{_artifact(row)}: {_gate(row, check['name'])}",
                                     classname=classname, time="0")
                counts["tests"] += 1
                if not check["passed"]:
                    counts["failures"] += 1
                    how = f" (margin {check['margin']:+.1%})" if check.get("margin") is not None else ""
                    failure = ET.SubElement(case, "failure", type=check.get("kind", "check"),
                                            message=f"{_gate(row, check['name'])}: {check['detail']}{how}")
                    failure.text = check["detail"]
            if row["not_run"]:  # the gates on what could not be measured here: skipped, and why
                case = ET.SubElement(suite, "testcase", classname=classname, time="0",
                                     name=f"{_artifact(row)}: accuracy, latency and memory gates")
                ET.SubElement(case, "skipped", message=f"not run here: {row['not_run']}")
                counts["tests"] += 1
                counts["skipped"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", "0")
    for k in ("tests", "failures", "errors"):
        suites.set(k, str(totals[k]))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _cell(rows: list[dict]) -> tuple[bool, str]:
    """A grid cell: pass/fail and the worst margin over its artifacts, naming the gate when it failed."""
    passed = all(r["passed"] for r in rows)
    ranked = sorted((r["worst_margin"], _artifact(r), _gate(r, r["worst_gate"])) for r in rows
                    if r["worst_margin"] is not None)
    unbuilt = [r for r in rows if r["path"] is None]
    if unbuilt:
        return False, f"{_artifact(unbuilt[0])} not built"
    if not ranked:
        return passed, ""
    margin, artifact, gate = ranked[0]
    return passed, f"{margin:+.1%}" if passed else f"{margin:+.1%} {artifact} {gate}"


def _marked(cell: tuple[bool, str], marks: tuple[str, str]) -> str:
    return f"{marks[0] if cell[0] else marks[1]} {cell[1]}".strip()


def _verdict(matrix: dict) -> str:
    rows = matrix["rows"]
    passed = sum(r["passed"] for r in rows)
    return f"{'PASSED' if matrix['passed'] else 'FAILED'}: {passed} of {len(rows)} cells pass"


def _failures(matrix: dict) -> list[str]:
    return [f"{r['model']} {_artifact(r)} on {r['device']}: {_gate(r, c['name'])}: {c['detail']}"
            for r in matrix["rows"] for c in r["checks"] if not c["passed"]]


def _baseline_rows(matrix: dict) -> list[list[str]]:
    def change(old, new, fmt):
        return "-" if old is None or new is None else f"{old:{fmt}} → {new:{fmt}}"

    out = []
    for r in matrix["rows"]:
        old = r.get("baseline")
        if old:
            acc = r["accuracy"]["value"] if r["accuracy"] else None
            verdict = "ok" if all(c["passed"] for c in r["checks"] if "baseline:" in c["name"]) else "REGRESSED"
            out.append([r["model"], _artifact(r), r["device"], change(old["accuracy"], acc, ".4f"),
                        change(old["size_mb"], r["size_mb"], ".2f"), change(old["estimate_ms"], r["estimate_ms"],
                                                                             ".1f"), verdict])
    return out


def summary(matrix: dict) -> str:
    devices = matrix["devices"]
    cells = {(m, d): _marked(_cell(rows), ("✅", "❌")) for m, d, rows in _groups(matrix)}
    lines = [f"## edgepack matrix: {_verdict(matrix)}", "",
             "Each cell: every artifact of the model on the device, with the worst margin (headroom on the tightest "
             "gate; negative = over it).", "",
             "| model | " + " | ".join(devices) + " |", "|---" * (len(devices) + 1) + "|"]
    for model in matrix["models"]:
        lines.append(f"| {model} | " + " | ".join(cells.get((model, d), "-") for d in devices) + " |")
    failures = _failures(matrix)
    if failures:
        lines += ["", f"### Failed checks ({len(failures)})", ""]
        lines += [f"- {f}" for f in failures[:40]] + ([f"- ... and {len(failures) - 40} more (junit.xml)"]
                                                       if len(failures) > 40 else [])
    base = _baseline_rows(matrix)
    if base:
        lines += ["", f"### Against the baseline ({matrix['baseline']})", "",
                  "| model | artifact | device | accuracy | size MB | estimate ms | verdict |", "|---" * 7 + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in base]
    cache = matrix["cache"]
    lines += ["", f"Artifacts: {cache['built']} built, {cache['reused']} from the cache"
              + "".join(f"; {d}" for d in cache["discarded"]) + f". edgepack {matrix['edgepack_version']}."]
    return "\n".join(lines) + "\n"


def html(matrix: dict) -> str:
    """Self-contained (no network, no scripts): the verdict, the grid, the failures, the baseline, every cell."""
    devices = matrix["devices"]
    cells = {(m, d): _marked(_cell(rows), ("pass", "FAIL")) for m, d, rows in _groups(matrix)}
    grid = _table(["model", *devices], [[m, *(cells.get((m, d), "-") for d in devices)] for m in matrix["models"]],
                  range(1, len(devices) + 1))
    failures = "".join(f"<li>{escape(f)}</li>" for f in _failures(matrix))
    every = _table(["model", "artifact", "device", "accuracy", "size MB", "host p50 ms", "estimate ms (range)",
                    "worst margin", "result"],
                   [[r["model"], _artifact(r), r["device"],
                     f"{r['accuracy']['metric']} {r['accuracy']['value']:.4f}" if r["accuracy"] else "-",
                     f"{r['size_mb']:.2f}" if r["size_mb"] else "-",
                     f"{r['host_p50_ms']:.2f}" if r["host_p50_ms"] else "-",
                     f"{r['estimate_ms']:.1f} ({r['estimate_low_ms']:.0f}-{r['estimate_high_ms']:.0f})"
                     if r["estimate_ms"] else "-",
                     f"{r['worst_margin']:+.0%} {_gate(r, r['worst_gate'])}" if r["worst_margin"] is not None else "-",
                     "pass" if r["passed"] else "FAIL"] for r in matrix["rows"]], 8)
    base = _baseline_rows(matrix)
    baseline = (f"<h2>Against the baseline</h2>" + _table(["model", "artifact", "device", "accuracy", "size MB",
                                                           "estimate ms", "verdict"], base)) if base else ""
    state = "pass" if matrix["passed"] else "fail"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>edgepack matrix</title><style>{STYLE}</style></head>'
            f'<body><main><header class="verdict {state}"><h1 id="verdict">{escape(_verdict(matrix))}</h1></header>'
            f"<h2>Models x devices</h2>{grid}"
            + (f"<h2>Failed checks</h2><ul>{failures}</ul>" if failures else "")
            + f"{baseline}<h2>Every cell</h2>{every}<p>edgepack {escape(matrix['edgepack_version'])}; "
            f"{matrix['cache']['built']} artifacts built, {matrix['cache']['reused']} from the cache.</p></main>"
            "</body></html>\n")
