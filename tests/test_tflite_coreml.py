"""TFLite (LiteRT) and Core ML targets on tiny models: every precision of each, the export preflight, partial failure,
missing extras. Every artifact is built, checked and (TFLite) run for real."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgepack.errors import ExportError, UsageError
from edgepack.buckets import sequence_buckets

COVERS = {'target': ['tflite', 'coreml'], 'runtime': ['litert', 'coreml'], 'task': ['image-classification']}

FAST = ("--runs", "5", "--warmup", "1")
TFLITE = ("fp32", "fp16", "int8-dynamic", "int8-weight", "int4-weight", "int8-static")
COREML = ("fp32", "fp16", "int8-weight", "int4-palettized")


@pytest.fixture(scope="module")
def embedder_pack(tiny_embedder, tweets_csv, tmp_path_factory):
    """The tiny embedder through TFLite and Core ML at every precision (one build, several tests)."""
    from edgepack.cli import main

    out = tmp_path_factory.mktemp("pack") / "out"
    try:
        main(["pack", str(tiny_embedder), "--data", str(tweets_csv), "--target", "tflite,coreml",
              "--precision", ",".join(dict.fromkeys(TFLITE + COREML)), "--out", str(out), "--json", *FAST])
    except SystemExit as exc:
        assert exc.code in (0, None), f"pack exited {exc.code}"
    return out, json.loads((out / "report.json").read_text()), json.loads((out / "manifest.json").read_text())


def _artifacts(report, target):
    return {a["precision"]: a for a in report["artifacts"] if a["target"] == target}


def test_tflite_every_precision_is_built_run_and_checked(embedder_pack):
    out, report, manifest = embedder_pack
    tflite = _artifacts(report, "tflite")
    assert set(tflite) == set(TFLITE)
    for precision, artifact in tflite.items():
        assert artifact["passed"], (precision, artifact["checks"])
        assert (out / artifact["path"]).is_file() and artifact["latency_ms"]["host"]["p50"] > 0
        assert artifact["accuracy"]["details"]["samples"] == 48  # every evaluation text went through LiteRT
    assert tflite["fp32"]["accuracy"]["details"]["cosine_min"] > 0.9999
    assert tflite["fp16"]["accuracy"]["details"]["cosine_min"] > 0.999
    assert tflite["int8-dynamic"]["accuracy"]["details"]["cosine_mean"] > 0.99
    assert "calibration" in tflite["int8-static"]["settings"]
    assert "int8" in tflite["int8-dynamic"]["settings"]["weights_by_dtype_bytes"]


def test_tflite_manifest_has_one_int32_signature_per_bucket(embedder_pack):
    _, _, manifest = embedder_pack
    entry = next(a for a in manifest["artifacts"] if a["target"] == "tflite" and a["precision"] == "fp32")
    assert list(entry["signatures"]) == ["seq_16", "seq_32", "seq_64", "seq_128"]
    assert entry["inputs"] == [{"name": "attention_mask", "dtype": "int32", "shape": [1, 128]},
                               {"name": "input_ids", "dtype": "int32", "shape": [1, 128]}]
    assert entry["outputs"][0]["name"] == "sentence_embedding" and entry["outputs"][0]["dtype"] == "float32"


def test_litert_runs_each_input_on_the_smallest_bucket_that_fits(embedder_pack):
    from edgepack.runtimes.litert import LiteRtSession

    out, report, _ = embedder_pack
    session = LiteRtSession(out / _artifacts(report, "tflite")["fp32"]["path"], 1)
    feed = lambda n: {"input_ids": np.ones((1, n), np.int64), "attention_mask": np.ones((1, n), np.int64)}  # noqa
    assert [session.signature_for(feed(n))[0] for n in (3, 16, 17, 100)] == ["seq_16", "seq_16", "seq_32", "seq_128"]
    short, padded = session.run(feed(5)), session.run({k: np.pad(v, ((0, 0), (0, 40))) * (np.arange(45) < 5)
                                                       for k, v in feed(5).items()})
    np.testing.assert_allclose(short["sentence_embedding"], padded["sentence_embedding"], atol=1e-5)
    with pytest.raises(UsageError, match="longer than the largest bucket"):
        session.run(feed(129))


def test_coreml_every_precision_passes_the_checks_that_run_here(embedder_pack):
    out, report, manifest = embedder_pack
    coreml = _artifacts(report, "coreml")
    assert set(coreml) == set(COREML)
    for precision, artifact in coreml.items():
        assert artifact["passed"] and (out / artifact["path"] / "Manifest.json").is_file()
        names = [c["name"] for c in artifact["checks"]]
        assert names[:4] == ["package loads", "inputs/outputs match the source", "op inventory", "weights read back"]
        if sys.platform != "darwin":  # said plainly, and nothing pretends to be measured
            assert "macOS" in artifact["not_run"] and artifact["accuracy"] is None
            assert artifact["latency_ms"]["host"] is None
    targets = {a["precision"]: a["minimum_deployment_target"]["iOS"]
               for a in manifest["artifacts"] if a["target"] == "coreml"}
    assert targets == {"fp32": "15", "fp16": "15", "int8-weight": "16", "int4-palettized": "16"}
    assert "not run here" in (out / "report.md").read_text()


def test_coreml_weight_check_fails_when_weights_differ(tiny_embedder, tmp_path):
    from edgepack.source import resolve
    from edgepack.targets import ExportSettings
    from edgepack.targets.coreml import CoreMlTarget
    from edgepack.tasks.feature_extraction import FeatureExtraction

    target = CoreMlTarget(tmp_path)
    task = FeatureExtraction(resolve(str(tiny_embedder), None))
    exported = target.export(task.source, task, ExportSettings(32, [32]))
    dest = tmp_path / "model-fp32.mlpackage"
    target.build("fp32", exported, dest)
    # word embeddings by name; position embeddings sliced to 32 rows fall under the size threshold
    assert dict(target.check(dest, exported))["weights read back"].startswith("1 of 2 (1 by name")
    weights = exported.state["weights"]
    key = next(k for k, v in weights.items() if v.size >= 2048)
    weights[key] = weights[key] * 1.01  # the package no longer holds the source's weights
    with pytest.raises(ExportError, match="reads back with relative error"):
        target.check(dest, exported)


def test_coreml_weight_check_keeps_its_tolerance_for_teacher_and_student_packages(tiny_embedder, tmp_path):
    """--distill names packages `teacher-model-fp32.mlpackage`: the fp32 tolerance (1e-6) still applies, not 0.25."""
    from edgepack.source import resolve
    from edgepack.targets import ExportSettings
    from edgepack.targets.coreml import CoreMlTarget
    from edgepack.tasks.feature_extraction import FeatureExtraction

    target = CoreMlTarget(tmp_path)
    task = FeatureExtraction(resolve(str(tiny_embedder), None))
    dest = tmp_path / "teacher-model-fp32.mlpackage"
    exported = target.export(task.source, task, ExportSettings(32, [32]))
    target.build("fp32", exported, dest)
    assert "limit 1e-06" in dict(target.check(dest, exported))["weights read back"]
    weights = exported.state["weights"]
    key = next(k for k, v in weights.items() if v.size >= 2048)
    weights[key] = weights[key] * 1.01
    with pytest.raises(ExportError, match="reads back with relative error"):
        target.check(dest, exported)


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs there: the full device checks apply")
def test_coreml_not_run_here_is_still_held_to_the_device_size_budget(run_cli, tiny_embedder, tweets_csv, tmp_path):
    """Accuracy and latency cannot be measured on Linux, but the package's size is known: a device's size budget
    and storage apply, and a package over them fails (exit 1)."""
    import yaml

    from edgepack.config import data_dir

    device = yaml.safe_load((data_dir("devices") / "raspberry-pi-4.yaml").read_text())
    device["budgets"]["max_size_mb"] = 0.001
    (tmp_path / "tiny-storage.yaml").write_text(yaml.safe_dump(device))
    out = tmp_path / "out"
    code, _, err = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--target", "coreml", "--precision", "fp32",
                           "--device", tmp_path / "tiny-storage.yaml", "--out", out, *FAST)
    assert code == 1, err
    checks = {c["name"]: c for c in json.loads((out / "report.json").read_text())["artifacts"][0]["checks"]}
    assert not checks["raspberry-pi-4: size budget"]["passed"] and checks["raspberry-pi-4: fits"]["passed"]
    assert "raspberry-pi-4: latency budget" not in checks and "raspberry-pi-4: memory budget" not in checks


def test_image_cnn_through_all_three_targets_incl_full_integer_tflite(run_cli, tiny_cnn, image_folder, tmp_path):
    out = tmp_path / "cnn"
    code, _, err = run_cli("pack", tiny_cnn, "--data", image_folder, "--target", "onnx,tflite,coreml",
                           "--precision", "fp32,fp16,int8-dynamic,int8-static,int8-weight", "--out", out, *FAST)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "image-classification" and report["data"]["samples"] == 18
    built = {(a["target"], a["precision"]) for a in report["artifacts"] if a["passed"]}
    assert built == {("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "int8-dynamic"), ("onnx", "int8-static"),
                     ("tflite", "fp32"),
                     ("tflite", "fp16"), ("tflite", "int8-dynamic"), ("tflite", "int8-static"),
                     ("tflite", "int8-weight"), ("coreml", "fp32"), ("coreml", "fp16"), ("coreml", "int8-weight")}
    static = _artifacts(report, "tflite")["int8-static"]
    assert static["accuracy"]["details"]["top1_agreement"] >= 0.9
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["target"] == "tflite" and a["precision"] == "int8-static")
    assert entry["inputs"][0]["dtype"] == "int8" and "quantization" in entry["inputs"][0]  # full integer
    assert "coreml: no int8-dynamic, int8-static" in " ".join(report["notes"])
    weights = next(c for c in _artifacts(report, "coreml")["fp32"]["checks"] if c["name"] == "weights read back")
    assert "by value" in weights["detail"]  # batch norm folded into the convolution, still verified


def test_preflight_names_the_op_layer_and_target_and_other_targets_complete(run_cli, tiny_embedder, tweets_csv,
                                                                          tmp_path, monkeypatch):
    import torch
    from coremltools.converters.mil.frontend.torch import torch_op_registry
    from litert_torch.backend import lowerings

    real_lookup = lowerings.lookup
    monkeypatch.setattr(lowerings, "lookup", lambda op: None if "gelu" in str(op) else real_lookup(op))
    real_supported = torch_op_registry.is_torch_fx_node_supported
    monkeypatch.setattr(torch_op_registry, "is_torch_fx_node_supported",
                        lambda node: node.target != torch.ops.aten.layer_norm.default and real_supported(node))
    out = tmp_path / "out"
    code, _, err = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--target", "onnx,tflite,coreml",
                           "--precision", "fp32", "--out", out, *FAST)
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    by_target = {a["target"]: a for a in report["artifacts"]}
    assert by_target["onnx"]["passed"] and by_target["onnx"]["path"]
    tflite = by_target["tflite"]["checks"][0]["detail"]
    assert "tflite cannot convert op aten.gelu" in tflite and "intermediate" in tflite and "try --target" in tflite
    coreml = by_target["coreml"]["checks"][0]["detail"]
    assert "coreml cannot convert op aten.layer_norm.default in layer" in coreml and "LayerNorm" in coreml
    assert "Traceback" not in err and not (out / "tflite").exists()


@pytest.mark.parametrize("module, target", [("coremltools", "coreml"), ("ai_edge_quantizer", "tflite")])
def test_missing_extra_is_one_line_naming_the_extra(run_cli, tiny_embedder, tweets_csv, tmp_path, monkeypatch,
                                                   module, target):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    code, _, err = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--target", target, "--out", tmp_path / "o")
    assert code == 2 and [line for line in err.splitlines() if "error" in line] == [err.strip().splitlines()[-1]]
    assert f"pip install 'edgepack[{target}]'" in err and f"({module})" in err and not (tmp_path / "o").exists()


def test_precision_no_requested_target_offers_is_a_usage_error(run_cli, tiny_embedder, tweets_csv, tmp_path):
    code, _, err = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--target", "coreml",
                           "--precision", "int8-dynamic", "--out", tmp_path / "o")
    assert code == 2 and "no requested target (coreml) has precision 'int8-dynamic'" in err


def test_text_model_refuses_image_data(run_cli, tiny_embedder, image_folder, tmp_path):
    code, _, err = run_cli("pack", tiny_embedder, "--data", image_folder, "--out", tmp_path / "o")
    assert code == 2 and "evaluates on text data" in err


def test_sequence_buckets():
    assert sequence_buckets([], 128) == [16, 32, 64, 128]
    assert sequence_buckets([], 100) == [16, 32, 64, 100]
    assert sequence_buckets([8, 24, 512], 128) == [8, 24, 128]
