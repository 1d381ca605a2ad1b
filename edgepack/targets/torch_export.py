"""Export preflight for targets that convert from PyTorch: trace the model with torch.export once, then check every
op against what the target's converter can lower, so that a gap is reported as one line naming the op, the layer
and what to try, instead of a converter stack trace minutes later."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ExportError, one_line


def export_program(module, sample: dict, target: str, strict: bool = False):
    """torch.export the module on `sample` (keyword inputs); a failure names the target and the reason."""
    import torch

    try:
        return torch.export.export(module, args=(), kwargs=sample, strict=strict)
    except Exception as exc:  # torch.export's errors are pages long; the last line names the construct
        raise ExportError(f"{target}: torch.export cannot trace the model: {one_line(exc)}",
                          "the TFLite and Core ML targets need a model torch.export can trace; try --target onnx") \
            from exc


def layer_of(node) -> str:
    """The innermost module (attribute path and class) a graph node came from, for messages."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "the model's top level"
    path, cls = list(stack.values())[-1]
    name = getattr(cls, "__name__", str(cls).rsplit(".", 1)[-1].strip("'>"))
    return f"{path.removeprefix('L__self__').strip('._') or 'model'} ({name})"


def unsupported_ops(program, is_supported: Callable) -> list[tuple[str, str]]:
    """(op, layer) for every call in the graph the converter has no lowering for, first occurrence of each op."""
    import operator

    seen: dict[str, str] = {}
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        if not is_supported(node):
            seen.setdefault(str(node.target), layer_of(node))
    return list(seen.items())


def preflight(program, is_supported: Callable, target: str, advice: str) -> None:
    missing = unsupported_ops(program, is_supported)
    if missing:
        op, layer = missing[0]
        more = f" (and {len(missing) - 1} more op(s): {', '.join(o for o, _ in missing[1:4])})" if len(missing) > 1 else ""
        raise ExportError(f"{target} cannot convert op {op} in layer {layer}{more}", advice)
