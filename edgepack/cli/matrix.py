"""`edgepack matrix FILE` (run all of it, or one --job), `--jobs github|gitlab` (the job list), and `matrix merge`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import EXIT_GATES_FAILED, ClickProgress


class _RunByDefault(click.Group):
    """`edgepack matrix FILE ...` means `edgepack matrix run FILE ...`; `merge` is the one other subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault)
def matrix():
    """Run a matrix file (models x devices x targets x precisions) as CI gates: `edgepack matrix FILE --out DIR`."""


def _finish(result: dict, out: Path) -> None:
    summary = (out / "summary.md").read_text(encoding="utf-8")
    click.echo(summary, nl=False)
    click.echo(f"{'PASSED' if result['passed'] else 'FAILED'}: wrote {out}/ (matrix.json, junit.xml, summary.md, "
               "report.html, a pack folder per model)", err=True)
    if not result["passed"]:
        sys.exit(EXIT_GATES_FAILED)


@matrix.command("run")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (must not exist).")
@click.option("--jobs", "ci", type=click.Choice(["github", "gitlab"]),
              help="Print the job list for the CI's own matrix (GitHub JSON, GitLab child pipeline) and exit.")
@click.option("--job", type=click.IntRange(min=0), help="Run only this job of the list (one model).")
@click.option("--remeasure", is_flag=True, help="Time cached artifacts again instead of reusing their latency.")
@click.option("--baseline", type=click.Path(path_type=Path),
              help="A previous matrix.json or report.json: fail cells that regress beyond the file's tolerances.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path),
              help="Artifact cache folder (default: $EDGEPACK_CACHE, else ~/.cache/edgepack).")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
def run_command(file, out, ci, job, remeasure, baseline, cache_dir, force):
    """Export and check each (model, target, precision) once, estimate and gate it on every device."""
    from ..errors import UsageError
    from ..matrix import spec as spec_mod
    from ..matrix.cache import Cache
    from ..matrix.run import job_list, run

    spec, digest = spec_mod.load(file)
    if ci:
        click.echo(job_list(spec, file, ci))
        return
    if out is None:
        raise UsageError("--out is required to run the matrix", "pass --out DIR (or --jobs github to list jobs)")
    result = run(spec, digest, file, out, job_index=job, remeasure=remeasure, baseline=baseline,
                 cache=Cache(cache_dir), force=force, progress=ClickProgress())
    _finish(result, out)


@matrix.command("merge")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (must not exist).")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
def merge_command(folders, out, force):
    """Gather the --out folders of every `--job K` run into one matrix output."""
    from ..matrix.merge import merge

    _finish(merge(list(folders), out, force), out)
