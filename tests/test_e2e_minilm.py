"""End to end on the real all-MiniLM-L6-v2 (carried by a PyPI package) and 1,000 real labelled tweets.

Fidelity claims only; timed claims live in benchmarks/.
"""

import json

import pytest

from edgepack.api import PackOptions, pack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "out"
    report = pack("sentence-transformers/all-MiniLM-L6-v2",
                  PackOptions(out=out, recipe="minilm-embeddings", devices=["raspberry-pi-4"], runs=10, warmup=2))
    return report, out


def test_minilm_report(minilm):
    report, out = minilm
    saved = json.loads((out / "report.json").read_text())
    assert saved["model"] == "sentence-transformers/all-MiniLM-L6-v2" and saved["license"] == "apache-2.0"
    assert saved["data"]["samples"] == 1000 and saved["data"]["labels"] is True
    assert {a["precision"] for a in saved["artifacts"]} == {"fp32", "fp16", "int8-dynamic"}


def test_minilm_int8_keeps_the_embeddings(minilm):
    report, _ = minilm
    by = {a.precision: a for a in report.artifacts}
    fp32, fp16, int8 = by["fp32"], by["fp16"], by["int8-dynamic"]
    assert fp32.accuracy.details["cosine_p1"] > 0.9999
    assert fp16.accuracy.details["cosine_p1"] > 0.999
    details = int8.accuracy.details
    assert int8.size_bytes <= 0.27 * fp32.size_bytes
    assert details["cosine_mean"] >= 0.99 and details["cosine_p1"] >= 0.98
    assert details["probe_agreement"] >= 0.97


@pytest.fixture(scope="module")
def minilm_mobile(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm-mobile") / "out"
    report = pack("sentence-transformers/all-MiniLM-L6-v2",
                  PackOptions(out=out, recipe="minilm-embeddings", targets=["tflite", "coreml"], limit=300,
                              precisions=["fp32", "fp16", "int8-dynamic", "int8-weight"], runs=5, warmup=1))
    return report, out


def test_minilm_tflite_artifacts_keep_the_embeddings_in_litert(minilm_mobile):
    report, out = minilm_mobile
    tflite = {a.precision: a for a in report.artifacts if a.target == "tflite"}
    assert set(tflite) == {"fp32", "fp16", "int8-dynamic", "int8-weight"}
    # Every check but the device's latency budget (an estimate: fp32 on a Raspberry Pi 4 may well miss it).
    failed = [(a.precision, c.name, c.detail) for a in tflite.values() for c in a.checks
              if not c.passed and c.name != "raspberry-pi-4: latency budget"]
    assert not failed and all(a.path for a in tflite.values()), failed
    assert tflite["fp32"].accuracy.details["cosine_mean"] >= 0.999
    assert tflite["fp16"].accuracy.details["cosine_mean"] >= 0.999
    assert tflite["int8-dynamic"].accuracy.details["cosine_mean"] >= 0.995
    assert tflite["int8-dynamic"].size_bytes <= 0.3 * tflite["fp32"].size_bytes
    assert tflite["fp32"].settings["signatures"] == ["seq_16", "seq_32", "seq_64", "seq_128"]


def test_minilm_coreml_packages_pass_the_linux_checks(minilm_mobile):
    report, _ = minilm_mobile
    coreml = {a.precision: a for a in report.artifacts if a.target == "coreml"}
    assert set(coreml) == {"fp32", "fp16", "int8-weight"} and all(a.passed for a in coreml.values())
    weights = {p: next(c.detail for c in a.checks if c.name == "weights read back") for p, a in coreml.items()}
    assert all(w.startswith(("37 of 39", "38 of 39")) for w in weights.values()), weights
    assert coreml["int8-weight"].size_bytes <= 0.27 * coreml["fp32"].size_bytes
