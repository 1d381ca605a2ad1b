"""Name -> implementation tables for tasks, targets and runtimes, filled by a decorator on the class itself."""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from .errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, modules: list[str]):
        # Modules imported on first lookup, so that `import edgepack` stays light and registration sits on the class.
        self.kind = kind
        self._modules = modules
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str):
        def decorate(cls: type[T]) -> type[T]:
            cls.name = name
            self._items[name] = cls
            return cls

        return decorate

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str) -> type[T]:
        self._load()
        if name not in self._items:
            raise UnknownName(self.kind, name, list(self._items))
        return self._items[name]


TASKS: Registry = Registry("task", ["edgepack.tasks.feature_extraction", "edgepack.tasks.text_classification",
                                   "edgepack.tasks.image_classification"])
TARGETS: Registry = Registry("target", ["edgepack.targets.onnx", "edgepack.targets.tflite", "edgepack.targets.coreml"])
RUNTIMES: Registry = Registry("runtime", ["edgepack.runtimes.onnxruntime", "edgepack.runtimes.litert",
                                         "edgepack.runtimes.coreml"])
