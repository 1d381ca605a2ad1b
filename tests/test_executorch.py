"""The ExecuTorch target and runtime on the tiny embedder: every precision built, read back from the file, run and
checked like the other targets; the read-back catches what a quantizer left in float."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("executorch")

COVERS = {"target": ["executorch"], "runtime": ["executorch"], "task": ["image-classification"]}

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static", "8da4w")


@pytest.fixture(scope="module")
def et_pack(tiny_embedder, tweets_csv, tmp_path_factory):
    from edgepack.cli import main

    out = tmp_path_factory.mktemp("et") / "out"
    try:
        main(["pack", str(tiny_embedder), "--data", str(tweets_csv), "--limit", "30", "--target", "executorch",
              "--precision", ",".join(PRECISIONS), "--sequence-length", "32", "--device", "raspberry-pi-5",
              "--out", str(out), "--runs", "5", "--warmup", "1"])
    except SystemExit as exc:
        assert exc.code in (0, 1, None), f"pack exited {exc.code}"
    report = json.loads((out / "report.json").read_text())
    return out, {a["precision"]: a for a in report["artifacts"]}, json.loads((out / "manifest.json").read_text())


def test_every_float_and_int8_precision_is_built_run_and_checked(et_pack):
    out, arts, _ = et_pack
    for precision in ("fp32", "fp16", "int8-dynamic", "int8-static"):
        art = arts[precision]
        assert art["passed"], (precision, [c for c in art["checks"] if not c["passed"]])
        assert (out / art["path"]).is_file() and art["path"].endswith(".pte")
        assert art["accuracy"]["details"]["samples"] == 30 and art["latency_ms"]["host"]["p50"] > 0
        names = [c["name"] for c in art["checks"]]
        assert {"program loads", "delegated to XNNPACK", "weights by dtype"} <= set(names)
        device = art["latency_ms"]["devices"]["raspberry-pi-5"]
        assert device["estimate"] > 0 and device["low"] < device["estimate"] < device["high"]
    assert arts["fp32"]["accuracy"]["details"]["cosine_min"] > 0.9999
    assert arts["int8-dynamic"]["accuracy"]["details"]["cosine_mean"] > 0.99
    assert 0 < arts["int8-dynamic"]["settings"]["delegated_share"] <= 1
    assert "int8" in arts["int8-dynamic"]["settings"]["weights_by_dtype_bytes"]
    assert arts["int8-static"]["settings"]["calibration"]["samples"] > 0


def test_a_precision_that_leaves_layers_in_float_fails_naming_them(et_pack):
    # The tiny model's feed-forward input width (37) is no multiple of XNNPACK's int4 group (32): 8da4w cannot take
    # that layer, and the read-back says so instead of shipping a half-quantized file.
    _, arts, _ = et_pack
    art = arts["8da4w"]
    assert not art["passed"] and art["path"] is None
    failed = next(c for c in art["checks"] if not c["passed"])
    assert failed["name"] == "build" and "fp32 weights, not int4" in failed["detail"]


def test_manifest_names_inputs_outputs_per_bucket(et_pack):
    _, _, manifest = et_pack
    entry = next(a for a in manifest["artifacts"] if a["precision"] == "int8-dynamic")
    assert entry["runtime"] == "executorch" and list(entry["signatures"]) == ["seq_16", "seq_32"]
    assert entry["inputs"] == [{"name": "input_ids", "dtype": "int32", "shape": [1, 32]},
                               {"name": "attention_mask", "dtype": "int32", "shape": [1, 32]}]
    assert entry["outputs"][0]["name"] == "sentence_embedding"


def test_read_back_catches_float_weights_and_costs_follow_the_bucket(et_pack):
    from edgepack.estimate.count import count_costs, runtime_family
    from edgepack.targets.executorch import check_quantized, read_pte

    out, arts, _ = et_pack
    fp32 = out / arts["fp32"]["path"]
    problems = check_quantized(read_pte(fp32), "int8-dynamic")  # a float file passed off as int8
    assert problems and "not int8" in problems[0]
    assert check_quantized(read_pte(out / arts["int8-dynamic"]["path"]), "int8-dynamic") == []
    ids = {"input_ids": np.ones((1, 16), np.int32), "attention_mask": np.ones((1, 16), np.int32)}
    short = count_costs(fp32, ids)
    long = count_costs(fp32, {k: np.ones((1, 32), np.int32) for k in ids})
    matmul = [sum(c.flops for c in costs if c.kernel_class == "matmul") for costs in (short, long)]
    assert 0 < matmul[0] < matmul[1] and runtime_family(fp32) == "xnnpack"


def test_runtime_picks_the_smallest_bucket_and_refuses_longer_inputs(et_pack):
    from edgepack.errors import UsageError
    from edgepack.runtimes.executorch import ExecuTorchSession

    out, arts, _ = et_pack
    session = ExecuTorchSession(out / arts["fp32"]["path"], 1)
    short = session.run({"input_ids": np.ones((1, 5), np.int32), "attention_mask": np.ones((1, 5), np.int32)})
    assert short["sentence_embedding"].shape == (1, 32)
    with pytest.raises(UsageError, match="longer than the largest bucket"):
        session.run({"input_ids": np.ones((1, 40), np.int32), "attention_mask": np.ones((1, 40), np.int32)})


def test_an_image_cnn_is_built_run_and_checked(run_cli, tiny_cnn, image_folder, tmp_path):
    """Pixels in (float32, one fixed shape): fp32 and int8 run and are scored; fp16 is refused by the read-back,
    which finds the convolutions still holding fp32 weights (XNNPACK's batch-norm fusion), rather than shipped."""
    code, _, err = run_cli("pack", tiny_cnn, "--data", image_folder, "--target", "executorch", "--precision",
                           "fp32,fp16,int8-dynamic", "--device", "raspberry-pi-4", "--out", tmp_path / "o",
                           "--runs", "5", "--warmup", "1")
    assert code == 1, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    arts = {a["precision"]: a for a in report["artifacts"]}
    for precision in ("fp32", "int8-dynamic"):
        art = arts[precision]
        assert art["passed"], (precision, [c for c in art["checks"] if not c["passed"]])
        assert art["accuracy"]["details"]["top1_agreement"] == 1.0 and art["latency_ms"]["host"]["p50"] > 0
        assert art["settings"]["shapes"].startswith("one fixed-shape method (the processor's image size)")
        assert art["latency_ms"]["devices"]["raspberry-pi-4"]["estimate"] > 0
    assert arts["fp16"]["path"] is None and "fp32 weights, not fp16" in err
