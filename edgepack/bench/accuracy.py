"""Run an artifact over the evaluation texts, one at a time at their natural length (as an app would), and score it."""

from __future__ import annotations

import numpy as np

from ..registry import RUNTIMES
from ..runtimes import runtime_for


def artifact_outputs(path, task, texts: list[str], max_length: int, threads: int, progress=None) -> np.ndarray:
    session = RUNTIMES.get(runtime_for(path))(path, threads)
    rows = []
    for text in texts:
        # Batch 1: dynamic int8 picks its activation scales per call, so batching would change the numbers.
        feed = task.encode([text], max_length)
        rows.append(task.read_outputs(session.run(feed), feed)[0])
        if progress is not None:
            progress(1)
    out = np.stack(rows)
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"{path}: outputs contain NaN or infinity")
    return out
