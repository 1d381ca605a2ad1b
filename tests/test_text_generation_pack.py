"""`edgepack pack` on a causal LM: fp32 / int8 / int4-weight KV-cache ONNX files with fidelity, tokens/s, device
estimates and the RAM verdict in report.json and the manifest; the bad inputs of issue 15 through the CLI."""

from __future__ import annotations

import json

import pytest

from .conftest import SENTENCES
from .test_text_generation import build_tiny_llama, weight_bytes

COVERS = {'task': ['text-generation'], 'target': ['onnx']}

TEXTS = [t for t, _ in SENTENCES]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-pack"), max_positions=512)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm-data") / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return path


def main(args) -> int:
    """The CLI's exit status (it returns normally when every gate passes)."""
    from edgepack.cli import main as cli

    try:
        cli(args)
    except SystemExit as exit_:
        return exit_.code
    return 0


def run(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def small_device(tmp_path, ram_mb: int):
    """raspberry-pi-5 with less RAM: a model that does not fit, without building a big one."""
    import yaml

    from edgepack.devices import load_profile

    profile = load_profile("raspberry-pi-5").model_dump()
    profile.update(name="tiny-board", display_name="a board with little RAM", ram_mb=ram_mb)
    path = tmp_path / "tiny-board.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.fixture(scope="module")
def packed(tiny_llama, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm-pack") / "dist"
    code = main(["pack", str(tiny_llama), "--recipe", "small-chat-lm", "--device", "raspberry-pi-5", "--data", str(data),
                 "--out", str(out), "--context-length", "256", "--runs", "5", "--warmup", "1", "--json"])
    return out, code


def test_pack_writes_three_kv_cache_files_with_fidelity_timing_and_device_estimates(packed):
    out, code = packed
    report = json.loads((out / "report.json").read_text())
    assert code in (0, 1) and report["task"] == "text-generation"
    by_precision = {a["precision"]: a for a in report["artifacts"]}
    assert sorted(by_precision) == ["fp32", "int4-weight", "int8-weight"]
    for precision, a in by_precision.items():
        assert a["path"] and (out / a["path"]).is_file(), a["checks"]
        details = a["accuracy"]["details"]
        assert {"perplexity_ratio", "next_token_agreement", "mean_kl", "continuation_agreement"} <= set(details)
        g = a["generation"]
        assert g["decode_tokens_per_s"] > 0 and g["ttft_ms"]["p50"] > 0 and g["context"] == 256
        assert g["peak_memory_mb_at_context"] >= 0 and g["threads"] == report["host"]["threads"]
        est = g["devices"]["raspberry-pi-5"]
        assert est["decode_tokens_per_s"]["low"] < est["decode_tokens_per_s"]["estimate"] < \
            est["decode_tokens_per_s"]["high"]
        assert est["ram"]["fits"] is True and "fits" in est["ram"]["verdict"]
        assert a["latency_ms"]["devices"]["raspberry-pi-5"]["low"] is not None
        names = {c["name"]: c for c in a["checks"]}
        assert names["max perplexity_ratio"]["kind"] == "max" and names["max perplexity_ratio"]["limit"] == 1.10
        assert names["raspberry-pi-5: fits"]["passed"]
    assert by_precision["fp32"]["accuracy"]["details"]["perplexity_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert by_precision["int4-weight"]["settings"]["embeddings"].startswith("int4")
    weights = {k: weight_bytes(out / a["path"]) for k, a in by_precision.items()}  # a tiny model's file is its graph
    assert weights["int4-weight"] < weights["int8-weight"] < weights["fp32"] / 2
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["precision"] == "int4-weight")
    assert "past_key_values.0.key" in {i["name"] for i in entry["inputs"]}
    assert entry["generation"]["stop_tokens"] == [2]
    assert (out / "tokenizer" / "generation_config.json").is_file()
    md = (out / "report.md").read_text()
    assert "time to first token" in md and "tokens/s" in md and "RAM: fits" in md
    assert "time to first token" in (out / "report.html").read_text()


def test_a_model_too_large_for_the_device_fails_its_fits_gate_with_a_verdict(tiny_llama, data, tmp_path, capsys):
    code, out, err = run(["pack", str(tiny_llama), "--recipe", "small-chat-lm", "--precision", "int4-weight",
                          "--device", str(small_device(tmp_path, ram_mb=1)), "--data", str(data),
                          "--out", str(tmp_path / "out"), "--context-length", "256", "--runs", "5", "--warmup", "1"],
                         capsys)
    assert code == 1, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (artifact,) = report["artifacts"]
    fits = next(c for c in artifact["checks"] if c["name"] == "tiny-board: fits")
    assert not fits["passed"] and "RAM allowed" in fits["detail"]
    assert artifact["generation"]["devices"]["tiny-board"]["ram"]["verdict"].startswith("does not fit")
    assert "FAILED onnx/int4-weight: tiny-board: fits" in err


@pytest.mark.parametrize("extra, said", [
    (["--context-length", "100000"], "context length 100000 exceeds the model's maximum of 512"),
    (["--sequence-length", "1024"], "sequence length 1024 exceeds the model's maximum of 512"),
    (["--target", "tflite"], "no KV-cache export for text-generation"),
])
def test_bad_lengths_and_targets_without_a_kv_cache_are_one_line_usage_errors(tiny_llama, data, tmp_path, capsys,
                                                                                 extra, said):
    code, _, err = run(["pack", str(tiny_llama), "--recipe", "small-chat-lm", "--data", str(data),
                        "--out", str(tmp_path / "out"), *extra], capsys)
    assert code == 2 and said in err and len(err.strip().splitlines()) <= 2, err
    assert not (tmp_path / "out").exists()


def test_the_targets_without_a_kv_cache_say_so_before_export(tiny_llama):
    from edgepack.registry import TARGETS
    from edgepack.source import resolve

    source = resolve(str(tiny_llama))
    for name in ("tflite", "coreml", "executorch"):
        assert "no KV-cache export" in TARGETS.get(name).unsupported(source, "text-generation")
    assert TARGETS.get("onnx").unsupported(source, "text-generation") is None
    assert TARGETS.get("tflite").unsupported(source, "text-classification") is None
