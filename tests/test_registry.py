"""Every registered task, target and runtime has tests of its own, and every shipped YAML names registered things.

A test module says what it covers with a module-level `COVERS = {"target": [...], "runtime": [...], "task": [...]}`;
registering a new one without a test module that covers it fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from edgepack.precisions import STANDARD, known
from edgepack.registry import RUNTIMES, TARGETS, TASKS
from edgepack.runtimes import runtime_for

TESTS = Path(__file__).resolve().parent


def declared_covers() -> dict[str, set[str]]:
    covers: dict[str, set[str]] = {"task": set(), "target": set(), "runtime": set()}
    for path in TESTS.glob("test_*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "COVERS" for t in node.targets):
                for kind, names in ast.literal_eval(node.value).items():
                    covers[kind] |= set(names)
    return covers


def test_every_registered_name_has_a_test_module():
    covers = declared_covers()
    for kind, registry in (("task", TASKS), ("target", TARGETS), ("runtime", RUNTIMES)):
        assert sorted(set(registry.names()) - covers[kind]) == [], f"registered {kind}s without tests"
        assert sorted(covers[kind] - set(registry.names())) == [], f"tests cover unregistered {kind}s"


def test_registries_find_their_modules_without_a_list():
    assert "edgepack.targets.onnx" in TARGETS.modules() and "edgepack.targets.onnx_passes" not in TARGETS.modules()
    assert all(m.startswith("edgepack.runtimes.") for m in RUNTIMES.modules())


def test_every_target_names_a_registered_runtime_and_known_precisions():
    for name in TARGETS.names():
        target = TARGETS.get(name)
        RUNTIMES.get(target.runtime)
        assert runtime_for(f"model{target.suffix}") == target.runtime  # the suffix finds the target's runtime
        assert target.suffix and target.precisions
        assert set(target.tunable) <= set(target.precisions)
        for precision in target.precisions:  # a standard name, or one the target declares itself
            assert precision in STANDARD or precision in getattr(target, "new_precisions", {}), (name, precision)
    assert set(known()) == {p for name in TARGETS.names() for p in TARGETS.get(name).precisions}
