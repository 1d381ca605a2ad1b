"""The command line end to end on tiny local models: exit codes, gates, outputs, and every bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from edgepack.config import data_dir
from edgepack.devices import load_profile
from edgepack.manifest import sha256

FAST = ["--runs", "5", "--warmup", "1", "--limit", "24"]


@pytest.fixture(scope="module")
def packed(tiny_embedder, tweets_csv, tmp_path_factory):
    """One successful run shared by the tests that read its output."""
    from edgepack.cli import main

    out = tmp_path_factory.mktemp("packed") / "out"
    try:
        main(["pack", str(tiny_embedder), "--device", "raspberry-pi-4,x86-laptop", "--data", str(tweets_csv),
              "--out", str(out), *FAST])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out


def test_pack_writes_artifacts_manifest_and_report(packed):
    code, out = packed
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report)[:5] == ["model", "revision", "task", "license", "passed"]
    assert report["passed"] is True and report["task"] == "feature-extraction" and report["license"] == "mit"
    assert {a["precision"] for a in report["artifacts"]} == {"fp32", "fp16", "int8-dynamic"}
    cores = len(os.sched_getaffinity(0))
    threads = min([load_profile(d).default_threads for d in ("raspberry-pi-4", "x86-laptop")] + [cores])
    assert report["host"] | {"cpu": None} == {"cpu": None, "cores": cores, "threads": threads, "runs": 5,
                                              "warmup": 1}
    assert report["data"]["samples"] == 24
    md = (out / "report.md").read_text()
    assert f"{threads} threads, 1 warm-up runs excluded, 5 timed runs" in md
    for artifact in report["artifacts"]:
        # the numbers are those of the shipped bytes: the same file, hash and size as on disk
        assert artifact["sha256"] == sha256(out / artifact["path"])
        assert artifact["size_bytes"] == (out / artifact["path"]).stat().st_size
        assert f"`{artifact['path']}`, {artifact['size_bytes']:,} bytes, sha256 `{artifact['sha256']}`" in md
        assert set(artifact["accuracy"]) >= {"metric", "value", "drop"}
        assert artifact["accuracy"]["details"]["samples"] == 24  # every evaluation sample went through the file
        host = artifact["latency_ms"]["host"]
        assert host["p50"] <= host["p90"] and (host["threads"], host["runs"], host["warmup"]) == (threads, 5, 1)
        assert f"| {artifact['precision']} | " in md and f"{host['p50']:.2f} / {host['p90']:.2f}" in md
        for device in ("raspberry-pi-4", "x86-laptop"):
            est = artifact["latency_ms"]["devices"][device]
            assert est["low"] <= est["estimate"] <= est["high"] and est["budget"] > 0
            assert isinstance(est["passed"], bool)
        assert all({"name", "passed", "detail"} <= set(c) for c in artifact["checks"])
    assert "# edgepack report" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()  # beside report.md, with the run's distributions plotted
    assert html.startswith("<!doctype html>") and "PASSED" in html and 'src="data:image/png;base64,' in html
    assert all(sum(a["latency_ms"]["host"]["histogram"]["counts"]) == 5 and
               sum(a["accuracy"]["details"]["cosine_histogram"]["counts"]) == 24 for a in report["artifacts"])


def test_manifest_hashes_every_file(packed):
    import hashlib

    _, out = packed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["revision"] == "local" and manifest["commercial_use"] == "yes"
    assert all(manifest["versions"][k] for k in ("python", "torch", "transformers", "onnx", "onnxruntime", "edgepack"))
    report = json.loads((out / "report.json").read_text())  # the manifest agrees with the report
    assert [a["path"] for a in manifest["artifacts"]] == [a["path"] for a in report["artifacts"]]
    assert {k: manifest[k] for k in ("model", "revision", "license", "task", "passed")} == \
        {k: report[k] for k in ("model", "revision", "license", "task", "passed")}
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(listed) == on_disk and "tokenizer/tokenizer.json" in listed
    for path, entry in listed.items():
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == entry["sha256"]
    io = manifest["artifacts"][0]
    assert io["inputs"][0] == {"name": "input_ids", "dtype": "int64", "shape": ["batch_size", "sequence_length"]}
    assert not list(out.parent.glob(".*partial*"))


def test_shipped_files_work_as_an_app_would_use_them(packed, tiny_embedder):
    """Only the output folder: the `tokenizers` library on tokenizer/tokenizer.json, onnxruntime on the artifact."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from edgepack.registry import TASKS
    from edgepack.source import resolve

    _, out = packed
    tokenizer = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    session = ort.InferenceSession(str(out / "onnx" / "model-int8-dynamic.onnx"))
    texts = ["i love the idea of self driving cars", "bad risk for people"]
    got = []
    for text in texts:
        ids = tokenizer.encode(text)
        feed = {"input_ids": np.array([ids.ids]), "attention_mask": np.array([ids.attention_mask]),
                "token_type_ids": np.array([ids.type_ids])}
        names = [i.name for i in session.get_inputs()]
        got.append(session.run(["sentence_embedding"], {k: feed[k] for k in names})[0][0])
    expected = TASKS.get("feature-extraction")(resolve(str(tiny_embedder))).reference(texts, 128)
    cosine = np.sum(np.array(got) * expected, axis=1)  # both L2-normalised
    assert np.all(cosine > 0.95)
    assert (out / "tokenizer" / "config.json").is_file()


def test_threads_are_capped_at_the_cores_this_process_may_use(tiny_embedder, tweets_csv, tmp_path, monkeypatch):
    """In a container or under taskset the machine's core count overstates what the timing runs get."""
    from edgepack.plan import PackOptions, plan
    from edgepack.config import DataSpec

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    options = PackOptions(out=tmp_path / "out", devices=["raspberry-pi-4"], data=DataSpec(path=str(tweets_csv)))
    assert load_profile("raspberry-pi-4").default_threads > 1 and plan(str(tiny_embedder), options).threads == 1


def test_failed_gate_exits_1_and_still_writes_the_report(run_cli, tiny_embedder, tweets_csv, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", out, "--precision",
                                   "fp32,int8-dynamic", "--max-size-mb", "0.01", *FAST)
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is False
    failed = [c for a in report["artifacts"] for c in a["checks"] if not c["passed"]]
    assert failed and all(c["name"] == "max_size_mb" and "over by" in c["detail"] for c in failed)
    assert "FAILED onnx/fp32: max_size_mb" in stderr


def test_json_output_and_classifier(run_cli, tiny_classifier, tweets_csv, tmp_path):
    code, stdout, _ = run_cli("pack", tiny_classifier, "--data", tweets_csv, "--out", tmp_path / "o",
                              "--precision", "fp32", "--json", *FAST)
    report = json.loads(stdout)
    assert code == 0 and report["task"] == "text-classification"
    accuracy = report["artifacts"][0]["accuracy"]
    assert accuracy["metric"] == "top1_agreement" and accuracy["value"] == 1.0  # fp32 agrees with the source
    assert "accuracy_source" in accuracy["details"]  # the tweets' labels match id2label


def test_force_replaces_an_existing_output(run_cli, tiny_classifier, tweets_csv, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("old")
    code, _, _ = run_cli("pack", tiny_classifier, "--data", tweets_csv, "--out", out, "--precision", "fp32",
                         "--force", *FAST)
    assert code == 0 and not (out / "old.txt").exists() and (out / "report.json").exists()


def test_accuracy_and_device_budget_failures_exit_1(run_cli, tiny_embedder, tweets_csv, tmp_path):
    import yaml

    from edgepack.config import data_dir

    device = yaml.safe_load((data_dir("devices") / "raspberry-pi-4.yaml").read_text())
    device["budgets"]["max_latency_ms"] = 1e-6
    (tmp_path / "impossible.yaml").write_text(yaml.safe_dump(device))
    out = tmp_path / "out"
    code, _, stderr = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", out, "--precision",
                              "fp32,int8-dynamic", "--max-accuracy-drop", "0", "--device",
                              tmp_path / "impossible.yaml", *FAST)
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    fp32, int8 = report["artifacts"]
    failed = {a["precision"]: {c["name"] for c in a["checks"] if not c["passed"]} for a in report["artifacts"]}
    assert "max_accuracy_drop" in failed["int8-dynamic"] and "max_accuracy_drop" not in failed["fp32"]
    assert "raspberry-pi-4: latency budget" in failed["fp32"]
    assert fp32["latency_ms"]["devices"]["raspberry-pi-4"]["passed"] is False


def test_a_latency_budget_without_an_estimate_is_said_not_applied(run_cli, tiny_embedder, tweets_csv, tmp_path,
                                                                  monkeypatch):
    def no_counter(path, sha256, feed):
        raise NotImplementedError("no cost counter for .onnx files yet")

    monkeypatch.setattr("edgepack.api.remembered_costs", no_counter)
    code, _, err = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", tmp_path / "o", "--precision", "fp32",
                           "--device", "raspberry-pi-4", *FAST)
    artifact = json.loads((tmp_path / "o" / "report.json").read_text())["artifacts"][0]
    assert code == 0 and "raspberry-pi-4: latency budget" not in {c["name"] for c in artifact["checks"]}, err
    assert any("latency budgets are not applied" in note for note in artifact["notes"])


def test_failed_run_with_force_keeps_the_old_output(run_cli, tiny_embedder, tweets_csv, tmp_path, monkeypatch):
    import edgepack.api

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(edgepack.api, "_build", broken)
    code, _, stderr = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", out, "--force", *FAST)
    assert code == 1 and "internal error: RuntimeError: disk full" in stderr
    assert (out / "keep.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_run_removes_only_the_empty_folders_it_made(run_cli, tiny_embedder, tweets_csv, tmp_path,
                                                          monkeypatch):
    import edgepack.api

    def broken(plan, tmp, progress):
        (tmp.parent / "other-run").mkdir()  # another pack writing beside us in the new folder
        raise RuntimeError("boom")

    monkeypatch.setattr(edgepack.api, "_build", broken)
    code, _, _ = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", tmp_path / "new" / "dist" / "a", *FAST)
    assert code == 1 and (tmp_path / "new" / "dist" / "other-run").is_dir()
    assert not (tmp_path / "new" / "dist" / "a").exists()
    code, _, _ = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", tmp_path / "fresh" / "a", *FAST)
    assert code == 1 and (tmp_path / "fresh" / "other-run").is_dir()


def test_interrupted_swap_brings_the_old_output_back(tiny_embedder, tweets_csv, tmp_path, monkeypatch):
    """--force renames the old folder away, then the new one in; an interrupt between the two restores the old."""
    from pathlib import Path

    import edgepack.api
    from edgepack.api import PackOptions, pack
    from edgepack.config import DataSpec

    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("old")
    monkeypatch.setattr(edgepack.api, "_build", lambda *a: None)
    real_rename = Path.rename

    def interrupted(self, target):
        if self.name.startswith(".out.partial-"):
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack(str(tiny_embedder), PackOptions(out=out, force=True, data=DataSpec(path=str(tweets_csv))))
    assert (out / "precious.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_export_failure_is_reported_not_raised(run_cli, tiny_embedder, tweets_csv, tmp_path, monkeypatch):
    from edgepack.errors import ExportError
    from edgepack.targets.onnx import OnnxTarget

    def fails(self, source, task, opset=None):
        raise ExportError("ONNX export of tiny failed: ValueError: unsupported op Foo", "try --opset 17")

    monkeypatch.setattr(OnnxTarget, "export", fails)
    out = tmp_path / "out"
    code, _, stderr = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", out, "--precision",
                              "fp32,int8-dynamic", *FAST)
    report = json.loads((out / "report.json").read_text())
    assert code == 1 and report["passed"] is False
    assert [a["path"] for a in report["artifacts"]] == [None, None]
    assert report["artifacts"][0]["checks"][0]["name"] == "export"
    assert "unsupported op Foo" in report["artifacts"][0]["checks"][0]["detail"]
    assert "FAILED onnx/fp32: export" in stderr


def test_one_artifact_failing_late_does_not_stop_the_others(run_cli, tiny_embedder, tweets_csv, tmp_path,
                                                             monkeypatch):
    from edgepack.bench import latency

    real = latency.measure

    def flaky(path, *args, **kwargs):
        if "fp16" in path.name:
            raise RuntimeError("runtime crashed")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(latency, "measure", flaky)
    out = tmp_path / "out"
    code, _, _ = run_cli("pack", tiny_embedder, "--data", tweets_csv, "--out", out, *FAST)
    report = json.loads((out / "report.json").read_text())
    by = {a["precision"]: a for a in report["artifacts"]}
    assert code == 1 and by["fp32"]["passed"] and by["int8-dynamic"]["passed"]
    fp16 = by["fp16"]
    assert fp16["path"] is None and fp16["sha256"] is None and fp16["size_bytes"] is None
    assert fp16["checks"][-1] == {"name": "latency run", "passed": False, "detail": "RuntimeError: runtime crashed"}
    assert not (out / "onnx" / "model-fp16.onnx").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["precision"] for a in manifest["artifacts"]] == ["fp32", "int8-dynamic"]


def test_bare_commands_show_help(run_cli):
    for args in ([], ["devices"], ["recipes"]):
        code, stdout, _ = run_cli(*args)
        assert code == 0 and stdout.startswith("Usage: edgepack")


def _bad_recipe(tmp_path):
    path = tmp_path / "bad-recipe.yaml"
    path.write_text("name: bad\ndescription: d\ntask: feature-extraction\nsequence_length: -4\n")
    return path


BAD_INPUTS = {
    "unknown model": (["nobody/no-such-model"], "unknown model 'nobody/no-such-model'"),
    "missing data file": (["{model}", "--data", "{tmp}/missing.csv"], "not found"),
    "malformed data file": (["{model}", "--data", "{bad_data}"], "no text column"),
    "unknown device": (["{model}", "--device", "toaster"], "unknown device 'toaster'"),
    "unknown recipe": (["{model}", "--recipe", "no-such-recipe"], "unknown recipe 'no-such-recipe'"),
    "malformed recipe field": (["{model}", "--recipe", "{bad_recipe}"], "field 'sequence_length'"),
    "unknown precision": (["{model}", "--precision", "int3"], "has precision 'int3'"),
    "unknown target": (["{model}", "--target", "tensorrt"], "unknown target 'tensorrt'"),
    "existing output": (["{model}", "--out", "{tmp}"], "already exists"),
    "pickled weights": (["{pickled}"], "--allow-pickle"),
    "unknown encoding": (["{model}", "--data-encoding", "klingon"], "unknown text encoding 'klingon'"),
    "recipe is a folder": (["{model}", "--recipe", "{tmp}/"], "cannot read"),
    "recipe not UTF-8": (["{model}", "--recipe", "{latin_recipe}"], "not UTF-8"),
    "malformed device profile": (["{model}", "--device", "{bad_device}"], "field 'cpu.cores'"),
    "sequence too long": (["{model}", "--sequence-length", "4096"], "exceeds the model's maximum of 128"),
    "revision for a folder": (["{model}", "--revision", "main"], "--revision applies to hub model ids"),
    "bad option value": (["{model}", "--runs", "zero"], "'zero' is not a valid integer"),
    "architecture the exporter lacks": (["{unknown_arch}"], "does not know model type 'mystery-net'"),
    "missing option": (["{model}", "--out"], "requires an argument"),
    "output under a file": (["{model}", "--out", "{bad_data}/sub"], "is not a writable folder"),
    "unknown gate figure": (["{model}", "--recipe", "{typo_recipe}"], "measures no 'cosine_p01'"),
    "unknown task": (["{model}", "--task", "summarization"], "unknown task 'summarization'"),
    "--force over the model's folder": (["{tmp}/model-copy", "--out", "{tmp}", "--force"], "would delete"),
    "no tokenizer files": (["{no_tokenizer}"], "cannot load the tokenizer"),
    "truncated weights": (["{truncated}"], "not a readable safetensors file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_nothing_written(case, run_cli, tiny_embedder, tweets_csv, tmp_path):
    args, message = BAD_INPUTS[case]
    bad_data = tmp_path / "bad.csv"
    bad_data.write_text("a,b\n1,2\n")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"x")
    latin_recipe = tmp_path / "latin.yaml"
    latin_recipe.write_bytes("name: caf\xe9\n".encode("latin-1"))
    bad_device = tmp_path / "bad-device.yaml"
    bad_device.write_text((data_dir("devices") / "raspberry-pi-4.yaml").read_text().replace("cores: 4", "cores: four"))
    unknown_arch = tmp_path / "unknown-arch"
    shutil.copytree(tiny_embedder, unknown_arch)
    config = json.loads((unknown_arch / "config.json").read_text())
    (unknown_arch / "config.json").write_text(json.dumps({**config, "model_type": "mystery-net"}))
    typo_recipe = tmp_path / "typo.yaml"
    typo_recipe.write_text("name: typo\ndescription: d\ntask: feature-extraction\n"
                           "gates: {min_accuracy: {cosine_p01: 0.99}}\n")
    shutil.copytree(tiny_embedder, tmp_path / "model-copy")
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_embedder / name, no_tokenizer / name)
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_embedder, truncated)
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    values = {"truncated": truncated, "model": tiny_embedder, "no_tokenizer": no_tokenizer, "unknown_arch": unknown_arch,
              "typo_recipe": typo_recipe, "tmp": tmp_path, "bad_data": bad_data, "bad_recipe": _bad_recipe(tmp_path),
              "pickled": pickled, "latin_recipe": latin_recipe, "bad_device": bad_device}
    args = [a.format(**values) for a in args]
    out = tmp_path / "out"
    # Added in front: "missing option" must end with a bare --out.
    if "--data" not in args:
        args = ["--data", str(tweets_csv)] + args
    if "--out" not in args:
        args = ["--out", str(out)] + args
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = run_cli("pack", *FAST, *args)
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if not line.startswith("==> ")]  # progress lines aside
    assert len(errors) == 1 and errors[0].startswith("edgepack: error: ") and message in errors[0], stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no partial folder


def test_interrupted_run_leaves_no_partial_output(tiny_embedder, tweets_csv, tmp_path):
    """SIGTERM in the middle of a real run: the temp folder is removed and --out never appears."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "edgepack.cli", "pack", str(tiny_embedder), "--data", str(tweets_csv),
           "--out", str(out), "--runs", "100000", "--warmup", "1", "--limit", "24", "--precision", "fp32"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EDGEPACK_DEBUG": ""})
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".out.partial-*/onnx/*.onnx")):
        time.sleep(0.2)
    assert list(tmp_path.glob(".out.partial-*")), "the run should be writing its temp folder by now"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and err.endswith("edgepack: terminated; nothing was written\n")
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_inspect_checks_the_device_before_resolving_the_model(run_cli, tmp_path):
    code, _, err = run_cli("inspect", tmp_path / "no-such-model", "--device", "raspberry-pi-9")
    assert code == 2 and "unknown device" in err and "no-such-model" not in err


def test_inspect(run_cli, tiny_classifier):
    code, stdout, _ = run_cli("inspect", tiny_classifier, "--json", "--device", "raspberry-pi-4")
    info = json.loads(stdout)
    assert code == 0 and info["task"] == "text-classification" and info["commercial_use"] == "no"
    assert info["parameters"] > 1000 and info["size_class"].startswith("tiny")
    assert "int8-dynamic" in info["targets"]["onnx"]["precisions"] and info["targets"]["onnx"]["supported"]
    assert info["devices"]["raspberry-pi-4"]["fp32"]["fits"] is True
    code, stdout, _ = run_cli("inspect", tiny_classifier)
    assert code == 0 and "commercial use: no" in stdout


def test_devices_and_recipes_commands(run_cli):
    code, stdout, _ = run_cli("devices", "list")
    assert code == 0 and "raspberry-pi-4" in stdout
    code, stdout, _ = run_cli("devices", "show", "raspberry-pi-4")
    assert code == 0 and "memory_bandwidth_gbps" in stdout
    code, stdout, _ = run_cli("recipes", "list")
    assert code == 0 and "minilm-embeddings" in stdout
    code, stdout, _ = run_cli("recipes", "show", "minilm-embeddings")
    assert code == 0 and "feature-extraction" in stdout
    code, _, stderr = run_cli("devices", "show", "toaster")
    assert code == 2 and "unknown device 'toaster'" in stderr


def test_console_script_error_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgepack.cli", "pack", "nobody/no-such-model", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("edgepack: error: unknown model")
