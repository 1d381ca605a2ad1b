"""The command line: Click options -> api calls -> rendering. One error boundary, in `main`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from . import __version__
from .errors import EdgepackError, one_line

EXIT_GATES_FAILED = 1


def _split(values: tuple[str, ...]) -> list[str]:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgepack")
def cli():
    """Compress, export and check pretrained models for edge devices."""


@cli.command()
@click.argument("model")
@click.option("--device", "devices", multiple=True, help="Device profile name(s); comma-separated or repeated.")
@click.option("--recipe", help="Recipe name or YAML file (default: the task's default recipe).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (must not exist).")
@click.option("--task", help="Task, when it cannot be read from the model.")
@click.option("--revision", help="Hub branch, tag or commit to pin.")
@click.option("--target", "targets", multiple=True, help="Targets (default: the recipe's).")
@click.option("--precision", "precisions", multiple=True, help="Precisions (default: the recipe's).")
@click.option("--data", "data_path", help="Evaluation data: CSV/TSV/JSONL with a text and optional label column.")
@click.option("--text-column", help="Name of the text column in --data.")
@click.option("--label-column", help="Name of the label column in --data.")
@click.option("--data-encoding", help="Text encoding of the data file (default: utf-8, or the recipe's).")
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many samples (seeded sample).")
@click.option("--sequence-length", type=click.IntRange(min=1), help="Sequence length for latency.")
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0), help="Gate: largest accuracy drop vs source.")
@click.option("--search", is_flag=True,
              help="Search int8-static for --max-accuracy-drop: layers left in float, calibration variants.")
@click.option("--search-budget", type=click.FloatRange(min=0), help="Seconds the --search may take (default 600); "
              "implies --search.")
@click.option("--distill", help="Distil a smaller student first and pack it beside the teacher, e.g. layers=3 or "
              "layers=3,steps=2000,minutes=12.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), help="Gate: host p50 latency.")
@click.option("--max-size-mb", type=click.FloatRange(min=0, min_open=True), help="Gate: artifact size.")
@click.option("--max-memory-mb", type=click.FloatRange(min=0, min_open=True), help="Gate: inference memory.")
@click.option("--opset", type=click.IntRange(min=11), help="ONNX opset (default: the exporter's choice).")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for host runs (default: device's, capped at host cores).")
@click.option("--runs", type=click.IntRange(min=5), default=100, show_default=True, help="Timed runs per artifact.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed warm-up runs.")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--allow-pickle", is_flag=True, help="Allow pickled (.bin) weights, which can run code.")
@click.option("--trust-remote-code", is_flag=True, help="Allow models that need their own Python code.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout instead of the table.")
def pack(model, devices, recipe, out, task, revision, targets, precisions, data_path, text_column, label_column,
         data_encoding, limit, sequence_length, max_accuracy_drop, max_latency_ms, max_size_mb, max_memory_mb,
         opset, threads, runs, warmup, force, allow_pickle, trust_remote_code, as_json, search, search_budget,
         distill):
    """Compress, export and check MODEL (a hub id or a local folder); write artifacts and a report to --out."""
    from .api import PackOptions, pack as run_pack
    from .config import DataSpec, Gates
    from .report import to_table

    options = PackOptions(
        out=out, devices=_split(devices), recipe=recipe, task=task, revision=revision,
        targets=_split(targets) or None, precisions=_split(precisions) or None,
        data=DataSpec(path=data_path) if data_path is not None else None, text_column=text_column,
        label_column=label_column, data_encoding=data_encoding, limit=limit, sequence_length=sequence_length,
        opset=opset, threads=threads, runs=runs, warmup=warmup, force=force, allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code, search=search or search_budget is not None,
        search_budget_s=600.0 if search_budget is None else search_budget, distill=distill,
        gates=Gates(max_accuracy_drop=max_accuracy_drop, max_latency_ms=max_latency_ms, max_size_mb=max_size_mb,
                    max_memory_mb=max_memory_mb))
    report = run_pack(model, options, progress=ClickProgress())
    if as_json:
        click.echo(report.to_json(), nl=False)
    else:
        click.echo(to_table(report))
        for failure in report.failures():
            click.echo(f"FAILED {failure}", err=True)
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        click.echo(f"{'PASSED' if report.passed else 'FAILED'}: wrote {out}/ (report.md, report.json, manifest.json)")
    if not report.passed:
        sys.exit(EXIT_GATES_FAILED)


@cli.command()
@click.argument("model")
@click.option("--device", "devices", multiple=True, help="Device profiles to check (default: all).")
@click.option("--revision")
@click.option("--task")
@click.option("--allow-pickle", is_flag=True)
@click.option("--trust-remote-code", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def inspect(model, devices, revision, task, allow_pickle, trust_remote_code, as_json):
    """What MODEL is, which targets and precisions apply, and whether it fits each device."""
    from .api import inspect as run_inspect

    info = run_inspect(model, _split(devices) or None, revision, task, allow_pickle, trust_remote_code)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    params = f"{info['parameters']:,}" if info["parameters"] else "unknown"
    click.echo(f"model        {info['model']} ({info['origin']}, revision {info['revision']})")
    click.echo(f"task         {info['task']} ({', '.join(info['architectures'] or [])})")
    click.echo(f"parameters   {params}, {info['size_class']}")
    click.echo(f"license      {info['license'] or 'not stated'}; commercial use: {info['commercial_use']}")
    for target, about in info["targets"].items():
        what = ", ".join(about["precisions"]) if about["supported"] else f"not exportable: {about['reason']}"
        click.echo(f"target       {target}: {what}")
    for device, fits in info["devices"].items():
        cells = [f"{p} {'fits' if f and f['fits'] else 'does not fit' if f else '?'}" for p, f in fits.items()]
        click.echo(f"device       {device}: {', '.join(cells)}")


@cli.group()
def devices():
    """Device profiles."""


@devices.command("list")
def devices_list():
    from .devices import list_profiles, load_profile

    for name in list_profiles():
        click.echo(f"{name:24} {load_profile(name).display_name}")


@devices.command("show")
@click.argument("name")
def devices_show(name):
    import yaml

    from .cli_calibration import error_lines, resolve_profile

    profile = resolve_profile(name)
    click.echo(yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True), sort_keys=False).rstrip())
    click.echo("estimate_error:  # leave-one-out error of the calibrated latency estimate")
    for line in error_lines(profile):
        click.echo(f"  {line}")


@cli.group()
def recipes():
    """Recipes: defaults for common tasks."""


@recipes.command("list")
def recipes_list():
    from .config import Recipe, list_names, load_named

    for name in list_names("recipes"):
        recipe = load_named("recipes", name, Recipe)
        click.echo(f"{name:24} {recipe.task:22} {recipe.description.split(':')[0][:70]}")


@recipes.command("show")
@click.argument("name")
def recipes_show(name):
    import yaml

    from .config import Recipe, load_named

    click.echo(yaml.safe_dump(load_named("recipes", name, Recipe).model_dump(mode="json"), sort_keys=False).rstrip())


from .cli_calibration import calibrate, estimate, measure  # noqa: E402 - after the group they join

for _command in (estimate, calibrate, measure):
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
