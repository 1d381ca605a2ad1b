"""The house rules, checked on the source: no import circles, and an earlier stage never imports a later one.

Every import counts, module-level and inside functions (a lazy import is still a dependency), read with `ast` so
nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgepack"

# The chain of stages, earliest first (ARCHITECTURE.md): a module may import its own stage and earlier ones only.
STAGES = [
    ("base", ["version", "buckets", "errors", "registry", "progress", "licenses", "manifest", "memo", "precisions", "config", "data", "data_formats", "devices"]),
    ("source", ["source"]),
    ("tasks", ["tasks"]),
    ("compress", ["compress"]),
    ("targets", ["targets"]),
    ("runtimes", ["runtimes"]),
    ("bench", ["bench", "estimate", "gates"]),
    ("report", ["report", "report_html", "report_plots"]),
    ("pipeline", ["plan", "search", "catalog", "api", "matrix", "compare", "compare_report", "compare_reference",
                  "lm_checks"]),
    ("cli", ["cli", "__main__"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The edgepack modules `name` imports (a `from pkg import mod` is an edge to pkg.mod when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "edgepack"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.split(".")[0] != "edgepack":
                continue
            for alias in node.names:
                found.add(f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def stage_of(name: str) -> int:
    top = name.split(".")[1] if "." in name else ""
    for index, (_, tops) in enumerate(STAGES):
        if top in tops:
            return index
    return -1 if name == "edgepack" else len(STAGES)  # the package itself (public API) may import nothing heavy


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_stage():
    assert [m for m in modules() if stage_of(m) == len(STAGES)] == []


def test_no_import_circles():
    assert cycles(graph()) == []


def test_no_stage_imports_a_later_one():
    later = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets
                   if a != "edgepack" and stage_of(b) > stage_of(a))
    assert later == []
