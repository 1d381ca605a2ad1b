"""How the library reports progress without printing: the caller passes a Progress; the default says nothing."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class Progress:
    def stage(self, text: str) -> None:
        """A new step starts."""

    @contextmanager
    def bar(self, total: int, desc: str) -> Iterator[Callable[[int], None]]:
        """A counted step; yields a function to call with the number of items done."""
        yield lambda n=1: None
