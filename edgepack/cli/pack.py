"""`edgepack pack`: the main job."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import EXIT_GATES_FAILED, ClickProgress, split


@click.command()
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
@click.option("--context-length", type=click.IntRange(min=1),
              help="text-generation: tokens the KV cache holds (memory, RAM fit); default: the recipe's.")
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
         distill, context_length):
    """Compress, export and check MODEL (a hub id or a local folder); write artifacts and a report to --out."""
    from ..api import PackOptions, pack as run_pack
    from ..config import DataSpec, Gates
    from ..report import to_table

    options = PackOptions(
        out=out, devices=split(devices), recipe=recipe, task=task, revision=revision,
        targets=split(targets) or None, precisions=split(precisions) or None,
        data=DataSpec(path=data_path) if data_path is not None else None, text_column=text_column,
        label_column=label_column, data_encoding=data_encoding, limit=limit, sequence_length=sequence_length,
        context_length=context_length,
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
        if report.workload and report.devices:
            w = report.workload
            click.echo(f"device estimates at the data's p90 length: {w['p90']} tokens (max {w['max_length']}; "
                       "report.json has both)")
        for failure in report.failures():
            click.echo(f"FAILED {failure}", err=True)
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        from ..report import RENDERERS

        click.echo(f"{'PASSED' if report.passed else 'FAILED'}: wrote {out}/ ({', '.join(sorted(RENDERERS))}, "
                   "manifest.json)")
    if not report.passed:
        sys.exit(EXIT_GATES_FAILED)
