"""What the command modules share: list options, and progress on stderr."""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

EXIT_GATES_FAILED = 1


def split(values: tuple[str, ...]) -> list[str]:
    """`--device a,b --device c` -> [a, b, c]."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


class ClickProgress:
    """Stages as lines and counted steps as tqdm bars, on stderr so stdout stays parseable."""

    def stage(self, text: str) -> None:
        click.echo(f"==> {text}", err=True)

    @contextmanager
    def bar(self, total: int, desc: str):
        from tqdm import tqdm

        interactive = sys.stderr.isatty()
        if not interactive:  # logs get one line instead of a bar
            self.stage(f"{desc} ({total} samples)")
        with tqdm(total=total, desc=desc, unit="sample", file=sys.stderr, leave=False, disable=not interactive) as bar:
            yield bar.update
