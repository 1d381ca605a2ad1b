import numpy as np

from edgepack.bench import latency
from edgepack.registry import TARGETS, TASKS
from edgepack.source import resolve
from edgepack.targets import ExportSettings


def test_latency_and_memory_in_a_clean_process(tiny_embedder, tmp_path):
    task = TASKS.get("feature-extraction")(resolve(str(tiny_embedder)))
    folder = TARGETS.get("onnx")(tmp_path).export(task.source, task, ExportSettings(32, [32])).folder
    feed = task.latency_inputs(["a car", "the road"], 32)
    assert feed["input_ids"].shape == (1, 32) and feed["attention_mask"].sum() == 32
    result = latency.measure(folder / "model.onnx", feed, threads=1, warmup=2, runs=10)
    assert result["runs"] == 10 and result["threads"] == 1
    assert 0 < result["p50"] <= result["p90"]
    spread = result["histogram"]  # every timed run, in a few bins (report.html plots it)
    assert sum(spread["counts"]) == 10 and len(spread["edges"]) == len(spread["counts"]) + 1
    # The child process starts afresh: its peak is that of onnxruntime and a tiny model, not of this PyTorch process.
    assert 0 < result["memory_mb"] < result["peak_rss_mb"] < 500


def test_latency_failure_is_one_line(tmp_path):
    import pytest

    from edgepack.errors import ExportError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="latency run failed"):
        latency.measure(bad, {"input_ids": np.zeros((1, 4), np.int64)}, 1, 1, 5)
