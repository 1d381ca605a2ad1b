"""Pass/fail checks for one artifact: the user's gates and each device's budgets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    # Gates carry their figures, so a matrix can rank margins: kind "max" (value <= limit), "min" (value >= limit),
    # "fit" (the device's RAM and storage); "check" for what is not a gate (export, build, format check).
    kind: str = "check"
    value: float | None = None
    limit: float | None = None

    @property
    def margin(self) -> float | None:
        """Headroom as a fraction of the limit: 0.2 = 20% to spare, -0.1 = 10% over (None when not a limit)."""
        if self.value is None or not self.limit:
            return None
        return (self.limit - self.value) / abs(self.limit) if self.kind in ("max", "fit") else \
            (self.value - self.limit) / abs(self.limit)


def _limit(name: str, value: float | None, limit: float | None, unit: str, fmt: str = ".2f",
           what: str = "") -> Check | None:
    if limit is None or value is None:  # no gate, or not measured here (the report's notes say why)
        return None
    passed = value <= limit
    unit = f" {unit}" if unit else ""
    verdict = "within the limit" if passed else f"over by {value - limit:{fmt}}{unit}"
    return Check(name, passed, f"{what}{value:{fmt}}{unit} vs limit {limit:{fmt}}{unit}: {verdict}", "max", value,
                 limit)


def gate_checks(gates, accuracy, p50_ms: float | None, size_mb: float, memory_mb: float | None) -> list[Check]:
    """The user's and the recipe's gates on one artifact. `accuracy` is the task's Accuracy (None: not run)."""
    checks = [
        _limit("max_accuracy_drop", accuracy and accuracy.drop, gates.max_accuracy_drop, "", ".4f", "drop "),
        _limit("max_latency_ms", p50_ms, gates.max_latency_ms, "ms", what="host p50 "),
        _limit("max_size_mb", size_mb, gates.max_size_mb, "MB"),
        _limit("max_memory_mb", memory_mb, gates.max_memory_mb, "MB"),
    ]
    for name, minimum in gates.min_accuracy.items() if accuracy else ():
        value = accuracy.details.get(name)
        if value is None:  # e.g. the probe needs labels; `unmeasured` tells the report
            continue
        passed = value >= minimum
        verdict = "within the limit" if passed else f"short by {minimum - value:.4f}"
        checks.append(Check(f"min {name}", passed, f"{value:.4f} vs minimum {minimum:.4f}: {verdict}", "min", value,
                            minimum))
    for name, maximum in gates.max_accuracy.items() if accuracy else ():
        value = accuracy.details.get(name)
        if value is None:
            continue
        passed = value <= maximum
        verdict = "within the limit" if passed else f"over by {value - maximum:.4f}"
        checks.append(Check(f"max {name}", passed, f"{value:.4f} vs maximum {maximum:.4f}: {verdict}", "max", value,
                            maximum))
    return [c for c in checks if c is not None]


def device_checks(device: str, estimate_ms: float | None, size_mb: float, memory_mb: float | None, budgets,
                  fit: dict) -> list[Check]:
    checks = [
        _limit(f"{device}: latency budget", estimate_ms, budgets.max_latency_ms, "ms", what="estimate "),
        _limit(f"{device}: size budget", size_mb, budgets.max_size_mb, "MB"),
        _limit(f"{device}: memory budget", memory_mb, budgets.max_memory_mb, "MB"),
    ]
    checks = [c for c in checks if c is not None]
    detail = (f"size {fit['size_mb']:.1f} MB of {fit['storage_limit_mb']:.0f} MB storage allowed, peak memory "
              f"{fit['memory_mb']:.1f} MB of {fit['memory_limit_mb']:.0f} MB RAM allowed ({fit['margin']})")
    used = max(fit["memory_mb"] / fit["memory_limit_mb"], fit["size_mb"] / fit["storage_limit_mb"])
    checks.append(Check(f"{device}: fits", bool(fit["fits"]), detail, "fit", used, 1.0))
    return checks


def unmeasured(gates, accuracy) -> list[str]:
    """Accuracy gates that could not be applied because the task did not measure that figure on this data."""
    return [f"gate min {name} >= {minimum} not applied: {name} was not measured on this data (labels needed?)"
            for name, minimum in gates.min_accuracy.items() if name not in accuracy.details] + \
        [f"gate max {name} <= {maximum} not applied: {name} was not measured on this data"
         for name, maximum in gates.max_accuracy.items() if name not in accuracy.details]
