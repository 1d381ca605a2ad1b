"""Sequence-length buckets: fixed-shape formats (TFLite, ExecuTorch) ship one entry point per length, and an input
runs on the smallest that fits, padded with 0 (attention mask 0), as an app on the device would."""

from __future__ import annotations

import numpy as np

from .errors import UsageError


def sequence_buckets(requested: list[int], sequence_length: int) -> list[int]:
    """The recipe's buckets up to `sequence_length` (always included), or powers of two from 16."""
    buckets = requested or [2 ** k for k in range(4, 14)]
    return sorted({b for b in buckets if b < sequence_length} | {sequence_length})


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
