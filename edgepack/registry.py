"""Name -> implementation tables for tasks, targets and runtimes, filled by a decorator on the class itself.

Each table finds its modules on its own: every module of its package whose source registers something
(`@TASKS.register(...)`) is imported on the first lookup. Adding a task, target or runtime is one new file; no list
to edit. Helper modules (no registration) are not imported, so a lookup stays as light as the files it needs.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Generic, TypeVar

from .errors import UnknownName

T = TypeVar("T")
_HERE = Path(__file__).resolve().parent


class Registry(Generic[T]):
    def __init__(self, kind: str, variable: str, package: str):
        self.kind = kind
        self._marker = f"@{variable}.register("  # how a module of `package` registers a class here
        self._package = package
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str):
        def decorate(cls: type[T]) -> type[T]:
            cls.name = name
            self._items[name] = cls
            return cls

        return decorate

    def modules(self) -> list[str]:
        """The modules of the package that register into this table (read, not imported)."""
        folder = _HERE / self._package
        return [f"{__package__}.{self._package}.{info.name}" for info in pkgutil.iter_modules([str(folder)])
                if any(line.startswith(self._marker)
                       for line in (folder / f"{info.name}.py").read_text(encoding="utf-8").splitlines())]

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules():
                importlib.import_module(module)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str) -> type[T]:
        self._load()
        if name not in self._items:
            raise UnknownName(self.kind, name, list(self._items))
        return self._items[name]


TASKS: Registry = Registry("task", "TASKS", "tasks")
TARGETS: Registry = Registry("target", "TARGETS", "targets")
RUNTIMES: Registry = Registry("runtime", "RUNTIMES", "runtimes")
