import numpy as np
import onnx
import pytest

from edgepack.bench.accuracy import artifact_outputs
from edgepack.errors import ExportError
from edgepack.registry import RUNTIMES, TARGETS
from edgepack.runtimes import runtime_for
from edgepack.source import resolve

from .conftest import SENTENCES

TEXTS = [t for t, _ in SENTENCES]


def test_every_registered_target_and_runtime_is_covered():
    assert TARGETS.names() == ["onnx"] and RUNTIMES.names() == ["onnxruntime"]
    assert runtime_for("model.onnx") == "onnxruntime"


@pytest.fixture(scope="module", params=["feature-extraction", "text-classification"])
def exported(request, tiny_embedder, tiny_classifier, tmp_path_factory):
    from edgepack.registry import TASKS

    folder = tiny_embedder if request.param == "feature-extraction" else tiny_classifier
    task = TASKS.get(request.param)(resolve(str(folder)))
    target = TARGETS.get("onnx")(tmp_path_factory.mktemp("work"))
    return task, target, target.export(task.source, task)


def test_export_has_dynamic_axes_and_tokenizer(exported):
    task, target, folder = exported
    io = target.inputs_outputs(folder / "model.onnx")
    assert [i["name"] for i in io["inputs"]][:2] == ["input_ids", "attention_mask"]
    assert all(isinstance(d, str) for d in io["inputs"][0]["shape"])  # batch and sequence are symbolic
    assert task.output_name in [o["name"] for o in io["outputs"]]
    assert (folder / "tokenizer.json").is_file()


@pytest.mark.parametrize("precision", TARGETS.get("onnx").precisions)
def test_each_precision_builds_checks_runs_and_matches_source(exported, precision, tmp_path):
    task, target, folder = exported
    dest = tmp_path / f"model-{precision}.onnx"
    settings = target.build(precision, folder, dest)
    assert settings and "opset" in target.check(dest)
    ref = task.reference(TEXTS, 128)
    out = artifact_outputs(dest, task, TEXTS, 128, threads=1)
    acc = task.compare(ref, out, None)
    assert acc.drop < {"fp32": 1e-5, "fp16": 0.01, "int8-dynamic": 0.1}[precision], acc
    if precision != "fp32":
        assert dest.stat().st_size < (folder / "model.onnx").stat().st_size


def test_int8_quantizes_weight_matmuls_only(exported, tmp_path):
    _, target, folder = exported
    dest = tmp_path / "int8.onnx"
    target.build("int8-dynamic", folder, dest)
    ops = {n.op_type for n in onnx.load(str(dest)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}


def test_unknown_precision_and_failed_export(exported, tmp_path):
    task, target, folder = exported
    with pytest.raises(ExportError, match="no precision"):
        target.build("int3", folder, tmp_path / "x.onnx")
    broken = resolve(str(task.source.path))
    broken.path = tmp_path  # a folder with no model in it: the exporter's error becomes one line
    with pytest.raises(ExportError, match="ONNX export of .* failed"):
        TARGETS.get("onnx")(tmp_path / "w").export(broken, task)


def test_nan_outputs_are_an_error(exported, tmp_path, monkeypatch):
    task, target, folder = exported
    monkeypatch.setattr(type(task), "read_outputs", lambda self, o, f: np.array([[np.nan]]))
    with pytest.raises(FloatingPointError):
        artifact_outputs(folder / "model.onnx", task, TEXTS[:2], 128, threads=1)
