"""Answers remembered across runs: computed once per key, recomputed for another key or a damaged file."""

from __future__ import annotations

from edgepack import memo


def test_a_value_is_computed_once_per_key_and_a_damaged_one_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path))
    calls = []

    def compute(value):
        calls.append(value)
        return {"tasks": [value]}

    assert memo.remembered("k", {"type": "bert", "v": "1"}, lambda: compute("a")) == {"tasks": ["a"]}
    assert memo.remembered("k", {"type": "bert", "v": "1"}, lambda: compute("b")) == {"tasks": ["a"]}
    assert memo.remembered("k", {"type": "bert", "v": "2"}, lambda: compute("c")) == {"tasks": ["c"]}
    assert calls == ["a", "c"]
    for stored in (tmp_path / "memo" / "k").glob("*.json"):
        stored.write_text("{not json")
    assert memo.remembered("k", {"type": "bert", "v": "1"}, lambda: compute("d")) == {"tasks": ["d"]}
    assert not list((tmp_path / "memo" / "k").glob("*.tmp"))


def test_op_costs_are_counted_once_per_file_and_inputs(tmp_path, monkeypatch):
    import numpy as np

    from edgepack.estimate import count
    from edgepack.estimate.opcost import OpCost

    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path))
    counted = []

    def fake_count(path, inputs, signature=None):
        counted.append(inputs["input_ids"].shape)
        return [OpCost("mm", "MatMul", "matmul", 2 * inputs["input_ids"].size, 10, "fp32")]

    monkeypatch.setattr(count, "count_costs", fake_count)
    short, long = {"input_ids": np.ones((1, 8), np.int64)}, {"input_ids": np.ones((1, 16), np.int64)}
    first = count.remembered_costs("m.onnx", "abc", short)
    assert count.remembered_costs("m.onnx", "abc", short) == first == [OpCost("mm", "MatMul", "matmul", 16, 10, "fp32")]
    count.remembered_costs("m.onnx", "abc", long)
    count.remembered_costs("m.onnx", "other-file", short)
    count.remembered_costs("m.onnx", None, short)  # no sha256 known: nothing to key on, counted every time
    assert counted == [(1, 8), (1, 16), (1, 8), (1, 8)]
