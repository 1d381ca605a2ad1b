"""CLI commands of the calibrated estimate: `estimate`, `calibrate`, `measure`, and the error lines of `devices show`.
Errors go through cli.main's single boundary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np


def resolve_profile(name: str):
    """A profile name or YAML path, `host`, or an ssh:// device URL (see devices.load_profile)."""
    from ..estimate.host import load_profile

    return load_profile(name)


def error_lines(profile) -> list[str]:
    """How good the estimate is on this profile, per runtime edgepack runs."""
    from ..estimate.predict import error_for

    lines = []
    for runtime in ("xnnpack", "onnxruntime"):
        e = error_for(profile, runtime)
        # errors are log(estimate / measured): the range runs from estimate / e^high to estimate / e^low
        low = math.exp(-max(e.get("log_error_high", e["range_log_halfwidth"]), 0.0))
        high = math.exp(-min(e.get("log_error_low", -e["range_log_halfwidth"]), 0.0))
        lines.append(f"{runtime}: median error {e['median_abs_error_pct']:.0f}%, {e['within_25pct']:.0%} within "
                     f"+-25%, range x{low:.2f} to x{high:.2f} of the estimate ({e['basis']}, n={e['n']})")
    return lines


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--device", required=True, help="Profile name or YAML, `host`, or ssh://user@host?profile=NAME.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads (default: the profile's).")
@click.option("--sequence-length", type=click.IntRange(min=1), default=128, show_default=True,
              help="Length for dynamic sequence axes (ONNX).")
@click.option("--signature", help="TFLite signature to estimate (default: the first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def estimate(file, device, threads, sequence_length, signature, as_json):
    """Estimate the latency of an ONNX or TFLite FILE on a device: value, range and per-op-class breakdown."""
    from ..estimate.user import estimate_path

    result = estimate_path(file, resolve_profile(device), threads, sequence_length, signature)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['file']} on {result['device']} ({result['runtime']}, {result['threads']} threads): "
               f"{result['estimate_ms']:.2f} ms (range {result['low_ms']:.2f} - {result['high_ms']:.2f} ms)")
    click.echo(f"  {result['ops']} ops, {result['gflops']:.3f} GFLOP, {result['mbytes']:.1f} MB moved")
    total = result["estimate_ms"] or 1.0
    for kind, ms in sorted(result["by_class_ms"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {kind:14} {ms:9.3f} ms  {ms / total:6.1%}")
    click.echo(f"  {result['note']}")


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--device", required=True, help="Profile to refit (name or YAML).")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write the refitted profile YAML "
              "(default: NAME-calibrated.yaml here).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def calibrate(results, device, out, force):
    """Refit a device profile from your own measurements in RESULTS (CSV: file,latency_ms,threads[,runtime,
    sequence_length,signature]); writes a profile YAML with a `calibration` block."""
    import yaml

    from ..estimate.user import calibrate as run_calibrate
    from ..errors import UsageError

    profile = resolve_profile(device)
    out = out or Path(f"{profile.name}-calibrated.yaml")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder", "pass a file name, e.g. --out my-device.yaml")
    if out.exists() and not force:
        raise UsageError(f"{out} exists", "use --force to overwrite it")
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {out.parent} does not exist",
                         "create it, or choose another --out")
    result = run_calibrate(profile, results)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(yaml.safe_dump(result["profile"], sort_keys=False), encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write: no half-written file left beside --out
    for row in result["rows"]:
        click.echo(f"  {row['file']}: measured {row['measured_ms']:.2f} ms, fitted {row['fitted_ms']:.2f} ms")
    e = result["error"]
    click.echo(f"wrote {out}: leave-one-out over your {e['n']} rows: median error {e['median_abs_error_pct']:.0f}%, "
               f"{e['within_25pct']:.0%} within +-25%; use it with --device {out}")


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--device", required=True, help="ssh://user@host[:port]?profile=NAME[&python=PATH&key=PATH].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads (default: the profile's).")
@click.option("--runs", type=click.IntRange(min=5), default=50, show_default=True, help="Timed runs.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed warm-up runs.")
@click.option("--sequence-length", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--signature", help="TFLite signature (default: the first).")
@click.option("--json", "as_json", is_flag=True)
def measure(file, device, threads, runs, warmup, sequence_length, signature, as_json):
    """Run FILE on a real device over SSH with the device's own runtime: p50/p90, peak memory, outputs checked
    against this machine's run of the same file, the estimate beside it; the measurement is recorded for
    `edgepack calibrate`."""
    from ..estimate.user import estimate_path, model_inputs, record_measurement
    from ..errors import UsageError
    from ..devices.runner import local_outputs
    from ..devices.ssh import measure as ssh_measure, parse_url

    if not device.startswith("ssh://"):
        raise UsageError("measure needs an ssh:// device", "--device ssh://user@host?profile=NAME")
    remote = parse_url(device)
    profile = resolve_profile(remote.profile)
    threads = threads or profile.default_threads
    estimate = estimate_path(file, profile, threads, sequence_length, signature)  # also validates FILE
    feeds = model_inputs(file, sequence_length, signature)
    result = ssh_measure(remote, file, feeds, [feeds], threads, warmup, runs, signature)
    expected = local_outputs(str(file), feeds, signature)
    diffs = [float(np.max(np.abs(np.asarray(result["outputs"][0][k], np.float64) - np.asarray(v, np.float64))))
             for k, v in expected.items() if k in result["outputs"][0]]
    recorded = record_measurement(profile.name, file, result["p50"], threads, estimate["runtime"], sequence_length,
                                  signature)
    summary = {k: result[k] for k in ("device", "p50", "p90", "runs", "warmup", "threads", "peak_rss_mb",
                                      "rss_before_runtime_mb", "runtime", "runtime_version")}
    summary.update(outputs_max_abs_diff_vs_host=max(diffs) if diffs else None, estimate=estimate, recorded_in=str(recorded))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{file} on {result['device']} ({result['runtime']} {result['runtime_version']}, {threads} threads): "
               f"p50 {result['p50']:.2f} ms, p90 {result['p90']:.2f} ms ({runs} runs after {warmup} warm-up), "
               f"peak RSS {result['peak_rss_mb']:.0f} MB")
    click.echo(f"  estimate for {profile.name}: {estimate['estimate_ms']:.2f} ms (range {estimate['low_ms']:.2f} - "
               f"{estimate['high_ms']:.2f}); outputs vs this machine's run: max abs diff "
               f"{summary['outputs_max_abs_diff_vs_host']}")
    click.echo(f"  recorded in {recorded}; refit with: edgepack calibrate --device {profile.name} {recorded}")
