from edgepack.config import Gates
from edgepack.devices import fits, load_profile
from edgepack.gates import device_checks, gate_checks, unmeasured
from edgepack.tasks.base import Accuracy

ACC = Accuracy("cosine_mean", 0.995, 0.005, {"cosine_mean": 0.995, "cosine_p1": 0.97})


def by_name(checks):
    return {c.name: c for c in checks}


def test_no_gates_no_checks():
    assert gate_checks(Gates(), ACC, 10.0, 20.0, 50.0) == []


def test_each_gate_passes_and_fails_with_the_margin():
    gates = Gates(max_accuracy_drop=0.001, max_latency_ms=12, max_size_mb=10, max_memory_mb=100,
                  min_accuracy={"cosine_p1": 0.98})
    checks = by_name(gate_checks(gates, ACC, 10.0, 20.0, 50.0))
    assert not checks["max_accuracy_drop"].passed and "over by 0.0040" in checks["max_accuracy_drop"].detail
    assert checks["max_latency_ms"].passed and "within" in checks["max_latency_ms"].detail
    assert not checks["max_size_mb"].passed and "over by 10.00 MB" in checks["max_size_mb"].detail
    assert checks["max_memory_mb"].passed
    assert not checks["min cosine_p1"].passed and "short by 0.0100" in checks["min cosine_p1"].detail


def test_unmeasured_minimums_are_named_not_silently_passed():
    gates = Gates(min_accuracy={"probe_agreement": 0.97, "cosine_p1": 0.9})
    names = [c.name for c in gate_checks(gates, ACC, 1, 1, 1)]
    assert names == ["min cosine_p1"]
    assert unmeasured(gates, ACC) == ["gate min probe_agreement >= 0.97 not applied: probe_agreement was not "
                                      "measured on this data (labels needed?)"]


def test_device_budgets_and_fit():
    pi = load_profile("raspberry-pi-4")
    ok = by_name(device_checks(pi.name, 100.0, 20.0, 80.0, pi.budgets, fits(pi, 20_000_000, 80_000_000)))
    assert all(c.passed for c in ok.values()) and set(ok) >= {"raspberry-pi-4: latency budget", "raspberry-pi-4: fits"}
    too_big = fits(pi, 20_000_000, int(pi.ram_mb * 1e6))
    bad = by_name(device_checks(pi.name, pi.budgets.max_latency_ms + 1, 20.0, pi.ram_mb, pi.budgets, too_big))
    assert not bad["raspberry-pi-4: latency budget"].passed and not bad["raspberry-pi-4: fits"].passed
    assert not bad["raspberry-pi-4: memory budget"].passed


def test_recipe_minimums_merge_with_cli_gates():
    recipe = Gates(max_accuracy_drop=0.01, min_accuracy={"cosine_p1": 0.98, "probe_agreement": 0.97})
    merged = recipe.merged(Gates(max_latency_ms=5, min_accuracy={"cosine_p1": 0.99}))
    assert merged.min_accuracy == {"cosine_p1": 0.99, "probe_agreement": 0.97} and merged.max_latency_ms == 5
