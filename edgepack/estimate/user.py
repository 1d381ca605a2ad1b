"""`edgepack estimate` and `edgepack calibrate`: the calibrated estimate on any model file, and refits from the user's
own measurements.

Calibration CSV (UTF-8, header row, one measurement per row):

| column            | required | meaning                                                                          |
|-------------------|----------|----------------------------------------------------------------------------------|
| `file`            | yes      | the .onnx or .tflite file measured (a path relative to the CSV, or absolute)     |
| `latency_ms`      | yes      | measured latency of one inference in ms (p50 recommended), > 0                   |
| `threads`         | yes      | threads the runtime used, integer >= 1                                           |
| `runtime`         | no       | onnxruntime / tflite / ncnn / ... (default: from the file: .onnx -> onnxruntime)  |
| `sequence_length` | no       | length given to dynamic sequence axes (default 128)                              |
| `signature`       | no       | TFLite signature measured (default: the first)                                   |
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import DataError, ExportError, UsageError
from .count import count_costs, input_specs, runtime_family, suffixes
from ..devices import DeviceProfile
from .data import Measurement, published
from .predict import LatencyEstimate, estimate_latency, op_groups, params_for
from .fit import Table, dominant_precision, error_summary, fit_offsets, offset_device, predict_log

CSV_COLUMNS = ("file", "latency_ms", "threads")
OPTIONAL_COLUMNS = ("runtime", "sequence_length", "signature")
DEFAULT_SEQUENCE = 128
PROFILE_ERROR_FIELDS = ("n", "median_abs_error_pct", "within_25pct", "range_log_halfwidth")


def model_inputs(path: Path, sequence_length: int = DEFAULT_SEQUENCE, signature: str | None = None) -> dict:
    """Feeds for one run of an ONNX or TFLite file: dynamic batch = 1, other dynamic axes = `sequence_length`;
    integer inputs get token-like values (ids 1, masks 1), float inputs seeded normal values."""
    specs = input_specs(path, sequence_length, signature)
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape, dtype in specs:
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[name] = np.ones(shape, dtype=dtype)
    return feeds


def file_costs(path: Path, sequence_length: int = DEFAULT_SEQUENCE, signature: str | None = None):
    if path.is_dir():  # e.g. a Core ML .mlpackage
        raise UsageError(f"{path} is a folder", f"pass a model file ({', '.join(suffixes())})")
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    try:
        return count_costs(path, model_inputs(path, sequence_length, signature), signature)
    except ExportError as exc:  # here the file is the user's input, not an artifact edgepack built
        raise UsageError(exc.message,
                         "check that it is a model file that takes inputs of the sequence length given") from None


def estimate_path(path: str | Path, profile, threads: int | None = None, sequence_length: int = DEFAULT_SEQUENCE,
                  signature: str | None = None) -> dict:
    """Everything `edgepack estimate` prints, as a dict."""

    path = Path(path)
    costs = file_costs(path, sequence_length, signature)
    runtime = runtime_family(path)
    est = estimate_latency(costs, profile, threads, runtime)
    return {"file": str(path), "device": profile.name, "runtime": runtime, "threads": est.threads,
            "estimate_ms": est.estimate_ms, "low_ms": est.low_ms, "high_ms": est.high_ms, "by_class_ms": est.by_class,
            "ops": len(costs), "gflops": sum(c.flops for c in costs) / 1e9,
            "mbytes": sum(c.bytes for c in costs) / 1e6, "error": est.error, "note": est.note}


# ---- calibrate ----------------------------------------------------------------------------------------------------

def read_measurements(csv_path: str | Path, profile) -> list[Measurement]:
    """Parse the calibration CSV; any malformed cell is a DataError naming the row and column."""
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{csv_path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{csv_path}: not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{csv_path}: missing column {', '.join(missing)} (need {', '.join(CSV_COLUMNS)}; optional "
                        f"{', '.join(OPTIONAL_COLUMNS)})")
    unknown = [c for c in header if c not in CSV_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise DataError(f"{csv_path}: unknown column {unknown[0]!r} (columns: {', '.join(CSV_COLUMNS + OPTIONAL_COLUMNS)})")
    rows, costs_cache = [], {}
    for line, raw in enumerate(reader, start=2):
        where = f"{csv_path}: row {line}"
        if None in raw or any(raw.get(c) is None for c in header):
            raise DataError(f"{where}: expected {len(header)} cells")
        latency = _number(raw["latency_ms"], f"{where}, column latency_ms", float, minimum=0, open_min=True)
        threads = _number(raw["threads"], f"{where}, column threads", int, minimum=1)
        sequence = _number(raw.get("sequence_length") or str(DEFAULT_SEQUENCE), f"{where}, column sequence_length",
                           int, minimum=1)
        file = Path(raw["file"].strip())
        if not raw["file"].strip():
            raise DataError(f"{where}, column file: empty")
        file = file if file.is_absolute() else csv_path.parent / file
        if not file.is_file():
            raise DataError(f"{where}, column file: {file} not found")
        try:
            runtime = (raw.get("runtime") or "").strip() or runtime_family(file)
        except NotImplementedError as exc:
            raise DataError(f"{where}, column file: {exc}") from None
        signature = (raw.get("signature") or "").strip() or None
        key = (file, sequence, signature)
        if key not in costs_cache:
            try:
                costs_cache[key] = op_groups(file_costs(file, sequence, signature))
            except UsageError as exc:
                raise DataError(f"{where}, column file: {exc}") from None
        rows.append(Measurement(device=profile.name, runtime=runtime, threads=threads,
                                precision=dominant_precision(costs_cache[key]),
                                latency_ms=latency, source=f"{csv_path.name} row {line}", ops=costs_cache[key]))
    if not rows:
        raise DataError(f"{csv_path}: no measurements (header only)")
    return rows


def _number(text: str, where: str, kind, minimum: float, open_min: bool = False):
    try:
        value = kind(text.strip())
    except (ValueError, AttributeError):
        raise DataError(f"{where}: {text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if (kind is float and not math.isfinite(value)) or value < minimum or (open_min and value == minimum):
        raise DataError(f"{where}: {text.strip()} must be {'>' if open_min else '>='} {minimum:g}")
    return value


def calibrate(profile, csv_path: str | Path) -> dict:
    """Refit the device's offsets with the user's rows added to the published ones (the shipped shape parameters stay);
    the user's rows' leave-one-out error becomes the profile's error. Returns the profile as a dict with its new `calibration` block, and a summary."""
    own = read_measurements(csv_path, profile)
    rows = published() + own
    profiles = {profile.name: profile}
    table = Table(rows, profiles)
    shape = params_for(profile).shape  # the shipped shape parameters stay; the device's offsets are refitted
    full = fit_offsets(table, shape)
    first = len(rows) - len(own)
    errors = []
    for i in range(first, len(rows)):
        mask = np.ones(len(rows), bool)
        mask[i] = False
        errors.append(predict_log(table, fit_offsets(table, shape, mask))[i] - table.log_y[i])
    summary = error_summary(np.array(errors))
    offsets = {k: v for k, v in full.offsets.items() if offset_device(k) == profile.name}
    data = profile.model_dump(mode="json", exclude_none=True)
    data["calibration"] = {"fitted_on": f"{len(own)} measurements in {Path(csv_path).name} + {first} published rows",
                           "offsets": {k: round(float(v), 4) for k, v in offsets.items()},
                           # the profile schema's symmetric form (devices.ErrorSummary): a few own rows give no tails
                           "error": {k: round(float(v), 4) if isinstance(v, float) else int(v)
                                     for k, v in summary.items() if k in PROFILE_ERROR_FIELDS}}
    predicted = np.exp(predict_log(table, full)[first:]) * 1e3
    fits = [{"file": m.source, "measured_ms": m.latency_ms, "fitted_ms": float(p)}
            for m, p in zip(own, predicted)]
    return {"profile": data, "error": summary, "rows": fits}


def record_measurement(profile: str, file: str | Path, latency_ms: float, threads: int, runtime: str,
                       sequence_length: int, signature: str | None) -> Path:
    """Append one measurement to $EDGEPACK_CACHE/measurements/PROFILE.csv, a calibration CSV as `calibrate` reads."""
    from .host import cache_dir

    path = cache_dir() / "measurements" / f"{profile}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        if new:
            writer.writerow(CSV_COLUMNS + OPTIONAL_COLUMNS)
        writer.writerow([str(Path(file).resolve()), f"{latency_ms:.4f}", threads, runtime, sequence_length,
                         signature or ""])
    return path


def estimate_file(path: str | Path, inputs: dict, profile: DeviceProfile | str, threads: int | None = None,
                  signature: str | None = None) -> LatencyEstimate:
    """Convenience: count the file's costs (ONNX or TFLite) and estimate them on a profile (by name or object)."""
    from .host import load_profile

    profile = load_profile(profile) if isinstance(profile, str) else profile
    return estimate_latency(count_costs(path, inputs, signature), profile, threads, runtime_family(path))
