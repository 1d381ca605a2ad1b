"""report.html in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) opens the file offline,
and the test fails on console errors, requests that leave the file, images that did not load, a body wider than a
phone's screen, or a verdict that does not say which gate failed by how much. Screenshots land in tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edgepack.gates import Check
from edgepack.report import ArtifactResult, DeviceLatency, HostLatency, Latency, Report, write_all
from edgepack.tasks.base import Accuracy

CHROMIUM = "/usr/bin/chromium"
DEVICES = ("raspberry-pi-4", "pixel-7-like")
PANELS = 2 + 1 + 2 + 3 + 3  # accuracy vs latency and breakdown per device; size; fidelity and host timing per run one


def _artifact(target, precision, size_mb, cosine, p50, pi4_ms, passed_drop=True, not_run=None):
    a = ArtifactResult(target, precision, f"{target}/model-{precision}.{target}", sha256="ab" * 32,
                       size_bytes=int(size_mb * 1e6), not_run=not_run)
    a.checks = [Check("format check", True, "the file reads back")]
    if not_run:
        a.checks.append(Check("max_size_mb", True, f"{size_mb:.2f} MB vs limit 100.00 MB: within the limit"))
        return a
    drop = 1 - cosine
    a.accuracy = Accuracy("cosine_mean", cosine, drop, {
        "cosine_mean": cosine, "cosine_p1": cosine - 0.004, "cosine_min": cosine - 0.01, "samples": 100,
        "cosine_histogram": {"edges": [cosine - 0.01 + i * (min(1, cosine + 0.002) - cosine + 0.01) / 20
                                       for i in range(21)],
                             "counts": [1, 0, 1, 2, 1, 3, 4, 6, 8, 9, 11, 12, 10, 9, 8, 6, 4, 2, 2, 1]}})
    a.latency_ms = _latency(p50, pi4_ms)
    a.memory_mb = 40.0
    verdict = "within the limit" if passed_drop else f"over by {drop - 0.01:.4f}"
    a.checks.append(Check("max_accuracy_drop", passed_drop, f"drop {drop:.4f} vs limit 0.0100: {verdict}"))
    a.checks += [Check(f"{d}: latency budget", True, "within the limit") for d in DEVICES]
    a.settings = {"exporter": "test", "precision": precision}
    return a


def _latency(p50, pi4_ms):
    host = HostLatency(p50, p50 * 1.15, 2, runs=100, warmup=10,
                       histogram={"edges": [p50 * (0.9 + 0.02 * i) for i in range(16)],
                                  "counts": [2, 5, 12, 20, 18, 14, 9, 6, 5, 3, 2, 1, 1, 1, 1]})
    devices = {}
    for device, scale in zip(DEVICES, (1.0, 0.3)):
        ms = pi4_ms * scale
        devices[device] = DeviceLatency(ms, 300.0 * scale, True, ms * 0.7, ms * 1.6, 4, length=50,
                                        by_class={"matmul": ms * 0.7, "attention": ms * 0.1,
                                                  "elementwise": ms * 0.12, "data-movement": ms * 0.06})
    return Latency(host, devices)


def sample_report() -> Report:
    """Four artifacts: two that pass, one over its accuracy gate, and a Core ML file that cannot run on Linux."""
    arts = [_artifact("onnx", "fp32", 90.4, 0.99999, 47.8, 269.0),
            _artifact("onnx", "int8-dynamic", 23.0, 0.9787, 22.7, 120.0, passed_drop=False),
            _artifact("tflite", "fp16", 45.3, 0.9991, 38.5, 190.0),
            _artifact("coreml", "fp16", 45.1, 0, 0, 0, not_run="Core ML runs only on macOS; checked on Linux x86_64")]
    return Report("sentence-transformers/all-MiniLM-L6-v2", "abc123", "feature-extraction", "apache-2.0", arts,
                  recipe="minilm-embeddings", devices=list(DEVICES),
                  gates={"max_accuracy_drop": 0.01, "max_size_mb": 100.0},
                  host={"cpu": "Test CPU", "cores": 2, "threads": 2, "runs": 100, "warmup": 10},
                  data={"origin": "test", "samples": 100, "labels": True}, notes=["a report built by hand"],
                  edgepack_version="0.1.0", workload={"p50": 33, "p90": 50, "max": 106, "max_length": 128})


def test_the_html_is_one_file_that_loads_nothing(tmp_path):
    written = write_all(sample_report(), tmp_path)
    assert "report.html" in written
    page = (tmp_path / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == PANELS  # every plot inline
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # the verdict before the table, the table before the plots, the plots before the settings
    order = [page.index(s) for s in ('id="verdict"', "<table", "<img", "Settings, versions and notes")]
    assert order == sorted(order)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install "
                    "chromium; .ci/run installs it)")
def test_report_html_in_headless_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    write_all(sample_report(), tmp_path)
    errors, outside = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: r.url.startswith(("data:", "file:")) or outside.append(r.url))
        page.goto((tmp_path / "report.html").as_uri(), wait_until="load")
        images = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        verdict = page.inner_text("header.verdict")
        page.screenshot(path=tmp_path / "report-pack.png", full_page=True)
        page.set_viewport_size({"width": 400, "height": 860})  # a phone
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        widest = page.evaluate("Math.max(...[...document.images].map(i => i.getBoundingClientRect().width))")
        page.screenshot(path=tmp_path / "report-pack-phone.png", full_page=True)
        browser.close()
    if os.environ.get("EDGEPACK_SCREENSHOTS"):  # refresh docs/: EDGEPACK_SCREENSHOTS=docs pytest ...
        for name in ("report-pack.png", "report-pack-phone.png"):
            shutil.copyfile(tmp_path / name, Path(os.environ["EDGEPACK_SCREENSHOTS"]) / name)
    assert errors == [] and outside == []
    assert images == [True] * PANELS
    assert verdict.startswith("FAILED: 1 check(s) failed")
    assert "onnx/int8-dynamic: max_accuracy_drop: drop 0.0213 vs limit 0.0100: over by 0.0113" in verdict
    assert "coreml/fp16: file checks only, not run here" in verdict
    assert overflow <= 0 and widest <= 400  # the page never scrolls sideways on a phone; the tables do inside


def test_classification_and_empty_reports_render(tmp_path):
    from edgepack.report_html import to_html

    a = ArtifactResult("onnx", "int8-dynamic", "onnx/model-int8-dynamic.onnx", sha256="0" * 64, size_bytes=10**6)
    a.accuracy = Accuracy("top1_agreement", 0.9, 0.1, {"top1_agreement": 0.9, "agreement_by_class": {
        "positive": [40, 42], "negative": [41, 48], "neutral": [9, 10]}})
    page = to_html(Report("m", "r", "text-classification", None, [a], devices=["raspberry-pi-4"]))
    assert page.count("<img") == 2 and "Per-class fidelity" in page  # size, agreement by class
    empty = to_html(Report("m", "r", "t", None, []))
    assert "FAILED: no artifact was built" in empty and "Nothing to plot" in empty


# ---- compare.html ---------------------------------------------------------------------------------------------

def sample_compare() -> dict:
    """compare's result on hand-made rows through the real ranking: a recommendation on the Pi 5, none on the Pi 4
    (every artifact over its 20 ms limit), and a non-commercial candidate flagged."""
    from edgepack.compare import CompareOptions, Row, rank

    def row(name, artifact, metric, pi5, size, license_="apache-2.0", use="yes"):
        return Row(name, name, artifact, f"{name}/{artifact}.onnx", metric, None, 0.999, size, 60.0, 22_700_000,
                   license_, use, devices={d: {"estimate": ms, "low": ms * 0.7, "high": ms * 1.6, "budget": 100.0}
                                           for d, ms in (("raspberry-pi-5", pi5), ("raspberry-pi-4", pi5 * 2.4))})

    rows = [row("all-MiniLM-L6-v2", "onnx/fp32", 0.731, 38.0, 90.9), row("all-MiniLM-L6-v2", "onnx/int8-dynamic",
                                                                         0.722, 16.0, 23.0),
            row("MiniLM-L6-distill-layers-3", "onnx/int8-dynamic", 0.715, 9.0, 17.4),
            row("paraphrase-MiniLM-L3-v2", "onnx/int8-dynamic", 0.684, 8.5, 17.4, "cc-by-nc-4.0", "no")]
    options = CompareOptions(candidates=[], out=None, devices=["raspberry-pi-5", "raspberry-pi-4"],
                             min_accuracy=0.7, max_latency_ms=20.0)
    return rank(rows, options, {"task": "feature-extraction", "labels": ["negative", "neutral", "positive"]},
                [], [])


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
def test_compare_html_in_headless_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    from edgepack.compare_report import write_all as write_compare

    write_compare(sample_compare(), tmp_path)
    page_text = (tmp_path / "compare.html").read_text()
    assert page_text.count('<img src="data:image/png;base64,') == 2 and "<script" not in page_text
    errors, outside = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: r.url.startswith(("data:", "file:")) or outside.append(r.url))
        page.goto((tmp_path / "compare.html").as_uri(), wait_until="load")
        images = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        verdict = page.inner_text("header.verdict")
        page.screenshot(path=tmp_path / "report-compare.png", full_page=True)
        page.set_viewport_size({"width": 400, "height": 860})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        browser.close()
    if os.environ.get("EDGEPACK_SCREENSHOTS"):
        shutil.copyfile(tmp_path / "report-compare.png", Path(os.environ["EDGEPACK_SCREENSHOTS"]) / "report-compare.png")
    assert errors == [] and outside == [] and images == [True, True] and overflow <= 0
    assert verdict.startswith("FAILED: no candidate meets the limits on some device")
    assert "raspberry-pi-5: paraphrase-MiniLM-L3-v2 onnx/int8-dynamic" not in verdict  # misses min accuracy 0.7
    assert "raspberry-pi-5: MiniLM-L6-distill-layers-3 onnx/int8-dynamic, 9.0 ms (range 6-14)" in verdict
    assert "raspberry-pi-4: no candidate meets the limits; closest is" in verdict
    assert "License does not clearly allow commercial use: paraphrase-MiniLM-L3-v2 (cc-by-nc-4.0)" in page_text
