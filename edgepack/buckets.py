"""Sequence-length buckets: fixed-shape formats (TFLite, ExecuTorch) ship one entry point per length, and an input
runs on the smallest that fits, padded with 0 (attention mask 0), as an app on the device would."""

from __future__ import annotations

import numpy as np

from .errors import UsageError


def sequence_buckets(requested: list[int], sequence_length: int) -> list[int]:
    """The recipe's buckets up to `sequence_length` (always included), or powers of two from 16."""
    buckets = requested or [2 ** k for k in range(4, 14)]
    return sorted({b for b in buckets if b < sequence_length} | {sequence_length})


def bucket_name(length: int) -> str:
    """The entry point (TFLite signature, ExecuTorch method) of one sequence bucket."""
    return f"seq_{length}"


def bucket_length(name: str) -> int | None:
    """`seq_64` -> 64; None for a name that is not a bucket."""
    rest = name.removeprefix("seq_")
    return int(rest) if rest != name and rest.isdigit() else None


def bucket_lengths(names) -> dict[int, str]:
    """{length: name} of the bucket entry points among `names`, shortest first."""
    return dict(sorted((n, name) for name in names if (n := bucket_length(name)) is not None))


def pad_to(feed: dict[str, np.ndarray], length: int | None, names) -> dict[str, np.ndarray]:
    """`feed` restricted to `names`, padded along the sequence axis to `length` (None: as is)."""
    out = {}
    for name in names:
        value = np.asarray(feed[name])
        if length is not None:
            if value.shape[1] > length:
                raise UsageError(f"input of {value.shape[1]} tokens is longer than the largest bucket ({length})")
            value = np.pad(value, ((0, 0), (0, length - value.shape[1])))
        out[name] = value
    return out
