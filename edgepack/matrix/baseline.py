"""Regression gates against a baseline (a previous matrix.json, or a pack's report.json): a cell fails when its
accuracy drops, or its size or a device's latency estimate grows, by more than the matrix file's tolerances."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..gates import Check
from ..report import check_dict


def _figures(accuracy: dict | None, size_mb: float | None, estimate_ms: float | None) -> dict:
    return {"accuracy": accuracy["value"] if accuracy else None, "metric": accuracy["metric"] if accuracy else None,
            "size_mb": size_mb, "estimate_ms": estimate_ms}


def load(path: Path) -> dict[tuple, dict]:
    """(model id, target, precision, device) -> the baseline's accuracy, size and estimate."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"baseline {str(path)!r} not found", "pass a previous matrix.json or report.json") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"baseline {str(path)!r} is not readable JSON ({exc})") from None
    if isinstance(raw, dict) and isinstance(raw.get("rows"), list):  # matrix.json
        return {(r["model_id"], r["target"], r["precision"], r["device"]):
                _figures(r["accuracy"], r["size_mb"], r["estimate_ms"]) for r in raw["rows"]}
    if isinstance(raw, dict) and isinstance(raw.get("artifacts"), list):  # a pack's report.json
        found = {}
        for a in raw["artifacts"]:
            size = a["size_bytes"] / 1e6 if a.get("size_bytes") else None
            for device, est in (a.get("latency_ms") or {}).get("devices", {}).items():
                found[raw["model"], a["target"], a["precision"], device] = _figures(a.get("accuracy"), size,
                                                                                    est.get("estimate"))
        return found
    raise UsageError(f"baseline {str(path)!r} is neither a matrix.json nor a report.json",
                     "pass the matrix.json of a previous `edgepack matrix` run")


def _growth(name: str, old: float, new: float, tolerance: float, unit: str, fmt: str) -> Check:
    growth = new / old - 1
    verdict = "within the tolerance" if growth <= tolerance else f"{growth - tolerance:.1%} over the tolerance"
    return Check(name, growth <= tolerance, f"{old:{fmt}} -> {new:{fmt}} {unit} ({growth:+.1%}; tolerance "
                 f"+{tolerance:.0%}): {verdict}", "max", growth, tolerance)


def apply(rows: list[dict], baseline: dict[tuple, dict], tolerances) -> None:
    """Adds each row's baseline figures and its "baseline:" checks (rows the baseline lacks get none)."""
    for row in rows:
        old = baseline.get((row["model_id"], row["target"], row["precision"], row["device"]))
        row["baseline"] = old
        if old is None:
            continue
        checks = []
        acc = row["accuracy"]
        if acc and old["accuracy"] is not None and old["metric"] == acc["metric"]:
            drop, limit = old["accuracy"] - acc["value"], tolerances.accuracy_drop
            verdict = "within the tolerance" if drop <= limit else f"{drop - limit:.4f} over the tolerance"
            checks.append(Check("baseline: accuracy", drop <= limit, f"{acc['metric']} {old['accuracy']:.4f} -> "
                                f"{acc['value']:.4f} ({-drop:+.4f}; tolerance a drop of {limit}): {verdict}", "max",
                                drop, limit))
        if row["size_mb"] and old["size_mb"]:
            checks.append(_growth("baseline: size", old["size_mb"], row["size_mb"], tolerances.size_growth, "MB",
                                  ".2f"))
        if row["estimate_ms"] and old["estimate_ms"]:
            checks.append(_growth(f"{row['device']}: baseline: latency estimate", old["estimate_ms"],
                                  row["estimate_ms"], tolerances.latency_growth, "ms", ".1f"))
        row["checks"] += [check_dict(c) for c in checks]
