import numpy as np
import onnx
import pytest

from edgepack.bench.accuracy import artifact_outputs
from edgepack.errors import ExportError
from edgepack.targets import ExportSettings
from edgepack.registry import TARGETS
from edgepack.source import resolve

from .conftest import SENTENCES

COVERS = {'target': ['onnx'], 'runtime': ['onnxruntime']}

TEXTS = [t for t, _ in SENTENCES]




@pytest.fixture(scope="module", params=["feature-extraction", "text-classification"])
def exported(request, tiny_embedder, tiny_classifier, tmp_path_factory):
    from edgepack.registry import TASKS

    folder = tiny_embedder if request.param == "feature-extraction" else tiny_classifier
    task = TASKS.get(request.param)(resolve(str(folder)))
    target = TARGETS.get("onnx")(tmp_path_factory.mktemp("work"))
    settings = ExportSettings(sequence_length=128, buckets=[128], calibration=TEXTS * 4)  # int8-static calibrates on them
    return task, target, target.export(task.source, task, settings)


def test_export_has_dynamic_axes(exported):
    task, target, exported_ = exported
    io = target.inputs_outputs(exported_.folder / "model.onnx")
    assert [i["name"] for i in io["inputs"]][:2] == ["input_ids", "attention_mask"]
    assert all(isinstance(d, str) for d in io["inputs"][0]["shape"])  # batch and sequence are symbolic
    assert task.output_name in [o["name"] for o in io["outputs"]]


@pytest.mark.parametrize("precision", TARGETS.get("onnx").precisions)
def test_each_precision_builds_checks_runs_and_matches_source(exported, precision, tmp_path):
    task, target, folder = exported
    dest = tmp_path / f"model-{precision}.onnx"
    settings = target.build(precision, folder, dest)
    assert settings and "opset" in target.check(dest, folder)
    ref = task.reference(TEXTS, 128)
    out = artifact_outputs(dest, task, TEXTS, 128, threads=1)
    acc = task.compare(ref, out, None)
    assert acc.drop < {"fp32": 1e-5, "fp16": 0.01, "int8-dynamic": 0.1, "int8-static": 0.1,
                       "int8-weight": 0.02, "int4-weight": 0.1}[precision], acc
    if precision not in ("fp32", "int8-static"):  # static int8 leaves the (here dominant) embedding table float
        assert dest.stat().st_size < (folder.folder / "model.onnx").stat().st_size


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
        TARGETS.get("onnx")(tmp_path / "w").export(broken, task, ExportSettings(128, [128]))


def test_nan_outputs_are_an_error(exported, tmp_path, monkeypatch):
    task, target, folder = exported
    monkeypatch.setattr(type(task), "read_outputs", lambda self, o, f: np.array([[np.nan]]))
    with pytest.raises(FloatingPointError):
        artifact_outputs(folder.folder / "model.onnx", task, TEXTS[:2], 128, threads=1)


def test_int8_fuses_and_smooths_a_bert_encoder(exported, tmp_path):
    _, target, folder = exported
    settings = target.build("int8-dynamic", folder, tmp_path / "int8.onnx")
    assert settings["fusion"]["Attention"] == 2  # the tiny models have 2 layers
    assert settings["smoothing"]["smoothed_activations"] > 0
    assert "com.microsoft" in target.check(tmp_path / "int8.onnx", folder)


def test_smoothing_leaves_float_outputs_unchanged(exported):
    import onnxruntime as ort

    from edgepack.targets.onnx_passes import CALIBRATION_TEXTS, smooth_activations

    task, _, folder = exported
    model = onnx.load(str(folder.folder / "model.onnx"))
    names = {i.name for i in model.graph.input}
    feeds = [{k: v for k, v in task.encode([t], 128).items() if k in names} for t in CALIBRATION_TEXTS[:8]]
    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds[0])
    info = smooth_activations(model, feeds, alpha=0.65)
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds[0])
    assert info["mul_inserted"] + info["folded_into_v"] == info["smoothed_activations"] > 0
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_fusion_that_changes_outputs_is_rejected(exported, tmp_path, monkeypatch):
    """The fuser guesses roles (e.g. word vs position table) from tensor sizes; a fused graph that does not reproduce
    the plain one must be refused, and int8 built from the plain graph instead."""
    import onnxruntime.transformers.optimizer as optimizer
    from onnx import numpy_helper

    from edgepack.targets.onnx_passes import fuse_transformer

    task, target, folder = exported
    real = optimizer.optimize_model

    def wrong_fusion(*args, **kwargs):
        fused = real(*args, **kwargs)
        table = max(fused.model.graph.initializer, key=lambda t: np.prod(t.dims))
        table.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(table) * 2, table.name))
        return fused

    raw = folder.folder / "raw" / "model.onnx"
    names = {i.name for i in onnx.load(str(raw)).graph.input}
    feeds = [{k: v for k, v in task.encode([t], 128).items() if k in names} for t in TEXTS[:2]]
    assert fuse_transformer(raw, tmp_path / "ok.onnx", task.source.config, feeds) is not None
    monkeypatch.setattr(optimizer, "optimize_model", wrong_fusion)
    assert fuse_transformer(raw, tmp_path / "bad.onnx", task.source.config, feeds) is None
    settings = target.build("int8-dynamic", folder, tmp_path / "int8.onnx")
    assert settings["fusion"].startswith("none") and settings["runtime_note"] == "standard ONNX ops"


def test_in_graph_mean_pooling_matches_numpy(tiny_embedder, tmp_path):
    import onnxruntime as ort

    from edgepack.registry import TASKS

    task = TASKS.get("feature-extraction")(resolve(str(tiny_embedder)))
    folder = TARGETS.get("onnx")(tmp_path).export(task.source, task, ExportSettings(128, [128])).folder
    session = ort.InferenceSession(str(folder / "model.onnx"))
    feed = task.encode(TEXTS[:3], 128)  # padded batch: the mask must keep padding out of the mean
    names = [i.name for i in session.get_inputs()]
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {k: feed[k] for k in names})))
    expected = task.read_outputs({"last_hidden_state": outputs["last_hidden_state"]}, feed)
    np.testing.assert_allclose(outputs["sentence_embedding"], expected, atol=1e-5)
