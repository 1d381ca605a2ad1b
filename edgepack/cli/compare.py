"""`edgepack compare`: which candidate model to ship on each device, ranked on the labels of your data."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import EXIT_GATES_FAILED, ClickProgress, split


@click.command()
@click.argument("candidates", nargs=-1, required=True)
@click.option("--device", "devices", multiple=True, help="Device profile name(s); comma-separated or repeated.")
@click.option("--data", "data_path", help="Labelled evaluation data: CSV/TSV/JSONL with a text and a label column.")
@click.option("--text-column", help="Name of the text column in --data.")
@click.option("--label-column", help="Name of the label column in --data.")
@click.option("--data-encoding", help="Text encoding of the data file (default: utf-8).")
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many samples (seeded sample).")
@click.option("--target", "targets", multiple=True, help="Targets (default: the recipe's).")
@click.option("--precision", "precisions", multiple=True, help="Precisions (default: the recipe's).")
@click.option("--min-accuracy", type=click.FloatRange(min=0), help="Limit: the least metric on the labels.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True),
              help="Limit: each device's latency estimate (default: each device profile's budget).")
@click.option("--commercial", is_flag=True, help="Drop candidates whose license does not allow commercial use.")
@click.option("--metric", type=click.Choice(["labels", "fidelity"]), default="labels", show_default=True,
              help="Rank by the task metric on the data's labels, or (data without labels) by agreement with the "
                   "first candidate's source model, which labels the data.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (must not exist).")
@click.option("--runs", type=click.IntRange(min=5), default=100, show_default=True, help="Timed runs per artifact.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed warm-up runs.")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--cache", type=click.Path(path_type=Path),
              help="Artifact cache folder, shared with `matrix` (default: $EDGEPACK_CACHE, else ~/.cache/edgepack).")
def compare(candidates, devices, data_path, text_column, label_column, data_encoding, limit, targets, precisions,
            min_accuracy, max_latency_ms, commercial, metric, out, runs, warmup, force, cache):
    """Pack each CANDIDATE and recommend, per device, the fastest artifact meeting the limits.

    A CANDIDATE is a model id or folder, MODEL@distill:layers=N[,steps=..,minutes=..] (its distilled student), or
    a folder written by `edgepack pack` (reused as is). Exit 0: a recommendation for every device; 1: none meets
    the limits on some device; 2: bad input.
    """
    from ..compare import CompareOptions, compare as run_compare
    from ..compare_report import to_table
    from ..config import DataSpec

    options = CompareOptions(
        candidates=list(candidates), out=out, devices=split(devices),
        data=DataSpec(path=data_path) if data_path is not None else None, targets=split(targets) or None,
        precisions=split(precisions) or None, min_accuracy=min_accuracy, max_latency_ms=max_latency_ms,
        commercial=commercial, metric=metric, text_column=text_column, label_column=label_column,
        data_encoding=data_encoding, limit=limit, runs=runs, warmup=warmup, force=force, cache=cache)
    result = run_compare(options, progress=ClickProgress())
    click.echo(to_table(result))
    for device in result["devices"].values():
        click.echo(("recommended " if device["recommended"] else "NONE ") + device["verdict"])
    for dropped in result["dropped"]:
        click.echo(f"dropped (--commercial): {dropped}", err=True)
    click.echo(f"{'PASSED' if result['passed'] else 'FAILED'}: wrote {out}/ (compare.json, compare.md, "
               "compare.html, one pack folder per candidate)")
    if not result["passed"]:
        sys.exit(EXIT_GATES_FAILED)
