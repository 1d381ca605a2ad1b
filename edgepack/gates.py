"""Pass/fail checks for one artifact: the user's gates and each device's budgets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def _limit(name: str, value: float, limit: float | None, unit: str, fmt: str = ".2f") -> Check | None:
    if limit is None:
        return None
    passed = value <= limit
    verdict = "within" if passed else f"over by {value - limit:{fmt}} {unit}".rstrip()
    return Check(name, passed, f"{value:{fmt}} {unit} vs limit {limit:{fmt}} {unit}: {verdict}".replace("  ", " "))


def gate_checks(gates, drop: float, p50_ms: float, size_mb: float, memory_mb: float) -> list[Check]:
    checks = [
        _limit("max_accuracy_drop", drop, gates.max_accuracy_drop, "", ".4f"),
        _limit("max_latency_ms", p50_ms, gates.max_latency_ms, "ms (host p50)"),
        _limit("max_size_mb", size_mb, gates.max_size_mb, "MB"),
        _limit("max_memory_mb", memory_mb, gates.max_memory_mb, "MB"),
    ]
    return [c for c in checks if c is not None]


def device_checks(device: str, estimate_ms: float, size_mb: float, memory_mb: float, budgets, fit: dict) -> list[Check]:
    checks = [
        _limit(f"{device}: latency budget", estimate_ms, budgets.max_latency_ms, "ms (estimate)"),
        _limit(f"{device}: size budget", size_mb, budgets.max_size_mb, "MB"),
        _limit(f"{device}: memory budget", memory_mb, budgets.max_memory_mb, "MB"),
    ]
    checks = [c for c in checks if c is not None]
    checks.append(Check(f"{device}: fits", bool(fit.get("fits", True)), str(fit.get("detail", ""))))
    return checks
