"""The command line: Click options -> api calls -> rendering; one module per command group. One error boundary, in
`main`."""

from __future__ import annotations

import logging
import os
import signal
import sys

import click

from ..version import __version__
from ..errors import EdgepackError, one_line
from .estimate import calibrate, estimate, measure
from .info import devices, inspect, recipes
from .matrix import matrix
from .pack import pack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgepack")
def cli():
    """Compress, export and check pretrained models for edge devices."""


for _command in (pack, matrix, inspect, devices, recipes, estimate, calibrate, measure):
    cli.add_command(_command)


class _Terminated(BaseException):
    """SIGTERM, raised where the program is: it unwinds like Ctrl-C, so the partial output folder is removed."""


def _terminate(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> None:
    """The single error boundary: EdgepackError -> one line and its exit code; EDGEPACK_DEBUG=1 shows tracebacks."""
    signal.signal(signal.SIGTERM, _terminate)
    # Toolchains imported on the way (torchao via transformers, torch.export) log warnings about their own builds.
    for name in ("torchao", "torch.utils._pytree", "coremltools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # LiteRT's and XLA's C++ info lines
    try:
        cli.main(args=argv, prog_name="edgepack", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("edgepack: interrupted; nothing was written", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `edgepack` or `edgepack devices`: show the help
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.ClickException as exc:  # bad options: one line too, with where to look
        command = " ".join(exc.ctx.command_path.split()[1:]) if getattr(exc, "ctx", None) else ""
        hint = f" (see edgepack {command + ' ' if command else ''}--help)"
        click.echo(f"edgepack: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except EdgepackError as exc:
        if os.environ.get("EDGEPACK_DEBUG"):
            raise
        click.echo(f"edgepack: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("edgepack: interrupted; nothing was written", err=True)
        sys.exit(130)
    except _Terminated:
        click.echo("edgepack: terminated; nothing was written", err=True)
        sys.exit(128 + signal.SIGTERM)
    except Exception as exc:  # a bug, not bad input: still one line, and a way to get the traceback
        if os.environ.get("EDGEPACK_DEBUG"):
            raise
        click.echo(f"edgepack: internal error: {one_line(exc)} (EDGEPACK_DEBUG=1 shows the traceback; please report "
                   "it)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
