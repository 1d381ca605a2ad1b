"""Tasks: how to load the source model, encode inputs, read outputs, and score an artifact against the source."""

from __future__ import annotations

from ..errors import UsageError
from ..registry import TASKS
from .base import Accuracy, Task

__all__ = ["Accuracy", "Task", "detect_task"]


def detect_task(source) -> str:
    """The task a model was made for, from its sentence-transformers files or its config's architectures."""
    for name in TASKS.names():
        if TASKS.get(name).matches(source):
            return name
    arch = ", ".join(source.config.get("architectures") or ["none"])
    raise UsageError(f"cannot tell the task of {source.model_id!r} (architectures: {arch})",
                     f"pass --task, one of: {', '.join(TASKS.names())}")
