"""`edgepack matrix`: the matrix file's schema, bad input before any export, the outputs (junit.xml validated against
the JUnit schema and read back by junitparser), the artifact cache (hit, invalidation, corruption), baseline
regressions, the job split and merge, exit codes, and the shipped example and CI files.

COVERS: edgepack/matrix/spec.py, edgepack/matrix/cache.py, edgepack/matrix/run.py, edgepack/matrix/baseline.py,
edgepack/matrix/outputs.py, edgepack/matrix/merge.py, edgepack/cli/matrix.py"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("model", "target", "precision", "device", "accuracy", "size_mb", "memory_mb", "host_p50_ms", "estimate_ms",
           "estimate_low_ms", "estimate_high_ms", "checks", "passed", "worst_margin", "sha256")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _matrix(tmp_path: Path, models: list[dict], name: str = "matrix.yaml", **fields) -> Path:
    spec = {"models": models, "devices": ["raspberry-pi-4", "pixel-4"], "targets": ["onnx"],
            "precisions": ["fp32", "int8-dynamic"], "runs": 5, "warmup": 1, **fields}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _tiny(tiny_embedder, tweets_csv, **extra) -> dict:
    return {"id": str(tiny_embedder), "name": "tiny", "data": str(tweets_csv), "limit": 24, **extra}


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "matrix.json").read_text())["rows"]


def _figures(rows: list[dict]) -> list[dict]:
    return sorted(({k: r[k] for k in FIGURES} for r in rows), key=lambda r: json.dumps(r, sort_keys=True))


def _count_packs(monkeypatch) -> list[tuple]:
    """Records each `pack` the matrix runs (a cache miss) as (target, precisions)."""
    from edgepack.matrix import run as run_mod

    calls, real = [], run_mod.pack

    def counted(model, options, progress=None):
        calls.append((tuple(options.targets), tuple(options.precisions)))
        return real(model, options, progress)

    monkeypatch.setattr(run_mod, "pack", counted)
    return calls


# ---- bad input ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, named", [
    ({"modles": []}, "modles"),
    ({"devices": ["raspbery-pi-4"]}, "devices"),
    ({"precisions": ["int3"]}, "precisions"),
    ({"tolerances": {"size_grow": 0.1}}, "tolerances.size_grow"),
    ({"runs": 1}, "runs"),
])
def test_schema_errors_name_the_field(run_cli, tmp_path, tiny_embedder, tweets_csv, change, named):
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)], **change)
    code, _, err = run_cli("matrix", path, "--out", tmp_path / "out")
    assert code == 2 and f"field '{named}" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_model_errors_name_the_field(run_cli, tmp_path, tiny_embedder, tweets_csv):
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv, gates={"max_size": 1})])
    code, _, err = run_cli("matrix", path, "--out", tmp_path / "out")
    assert code == 2 and "field 'models.0.gates.max_size'" in err


def test_unknown_model_is_exit_2_before_any_export(run_cli, tmp_path, tiny_embedder, tweets_csv, cache,
                                                   monkeypatch):
    calls = _count_packs(monkeypatch)
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv), {"id": "./no-such-model", "data": str(tweets_csv)}])
    code, _, err = run_cli("matrix", path, "--out", tmp_path / "out")
    assert code == 2 and "no-such-model" in err and calls == []  # the first model was not exported either
    assert not (tmp_path / "out").exists() and not (cache / "artifacts").exists()


def test_unknown_recipe_names_the_model_and_is_exit_2(run_cli, tmp_path, tiny_embedder, tweets_csv):
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv, recipe="no-such-recipe")])
    code, _, err = run_cli("matrix", path, "--out", tmp_path / "out")
    assert code == 2 and "matrix model 'tiny': unknown recipe 'no-such-recipe'" in err and "internal" not in err


def test_missing_out_and_bad_job_are_usage_errors(run_cli, tmp_path, tiny_embedder, tweets_csv):
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)])
    code, _, err = run_cli("matrix", path)
    assert code == 2 and "--out" in err
    code, _, err = run_cli("matrix", path, "--job", "5", "--out", tmp_path / "out")
    assert code == 2 and "jobs 0 to 0" in err and not (tmp_path / "out").exists()


# ---- a run, its outputs, and the cache ----------------------------------------------------------------------------

def test_run_writes_every_output_and_a_valid_junit(run_cli, tmp_path, tiny_embedder, tweets_csv):
    import junitparser
    import xmlschema

    out = tmp_path / "out"
    code, stdout, err = run_cli("matrix", _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)]), "--out", out)
    assert code == 0, err
    matrix = json.loads((out / "matrix.json").read_text())
    rows = matrix["rows"]
    assert matrix["passed"] and len(rows) == 1 * 1 * 2 * 2 and matrix["cache"] == {"built": 2, "reused": 0,
                                                                                   "discarded": []}
    assert {(r["precision"], r["device"]) for r in rows} == {(p, d) for p in ("fp32", "int8-dynamic")
                                                             for d in ("raspberry-pi-4", "pixel-4")}
    for row in rows:  # each cell's checks: the artifact's own and its device's, never the other device's
        names = [c["name"] for c in row["checks"]]
        assert f"{row['device']}: fits" in names and not any(n.startswith("pixel-4: ") for n in names
                                                             if row["device"] != "pixel-4")
        assert row["estimate_ms"] > 0 and row["worst_margin"] is not None and (out / row["path"]).is_file()
    for name in ("report.json", "report.md", "report.html", "manifest.json"):  # the model's pack folder
        assert (out / "tiny" / name).is_file()
    assert (out / "tiny" / "tokenizer").is_dir() and (out / "report.html").is_file()

    xmlschema.XMLSchema(str(ROOT / "tests" / "data" / "junit.xsd")).validate(str(out / "junit.xml"))
    suites = list(junitparser.JUnitXml.fromfile(str(out / "junit.xml")))
    assert [s.name for s in suites] == ["tiny on raspberry-pi-4", "tiny on pixel-4"]
    assert sum(s.tests for s in suites) == sum(len(r["checks"]) for r in rows) and all(s.failures == 0
                                                                                      for s in suites)
    summary = (out / "summary.md").read_text()
    assert "PASSED: 4 of 4 cells pass" in summary and "| tiny | ✅ +" in summary and summary in stdout


def test_second_run_reuses_the_cache_and_gives_the_same_figures(run_cli, tmp_path, tiny_embedder, tweets_csv,
                                                                monkeypatch):
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)])
    assert run_cli("matrix", path, "--out", tmp_path / "a")[0] == 0
    calls = _count_packs(monkeypatch)
    code, _, _ = run_cli("matrix", path, "--out", tmp_path / "b")
    assert code == 0 and calls == []
    assert json.loads((tmp_path / "b" / "matrix.json").read_text())["cache"]["reused"] == 2
    assert _figures(_rows(tmp_path / "a")) == _figures(_rows(tmp_path / "b"))
    report = json.loads((tmp_path / "b" / "tiny" / "report.json").read_text())
    assert all(any("from the artifact cache" in n for n in a["notes"]) for a in report["artifacts"])
    # A new device or gate needs no export: estimates and gates are applied afresh.
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)], devices=["raspberry-pi-5"],
                   gates={"max_size_mb": 0.0001})
    code, _, _ = run_cli("matrix", path, "--out", tmp_path / "c")
    assert code == 1 and calls == [] and {r["device"] for r in _rows(tmp_path / "c")} == {"raspberry-pi-5"}


def test_a_changed_setting_rebuilds_only_its_cells(run_cli, tmp_path, tiny_embedder, tweets_csv, monkeypatch):
    models = [_tiny(tiny_embedder, tweets_csv), _tiny(tiny_embedder, tweets_csv, name="tiny-64")]
    assert run_cli("matrix", _matrix(tmp_path, models), "--out", tmp_path / "a")[0] == 0
    calls = _count_packs(monkeypatch)
    models[1]["sequence_length"] = 64  # changes the second model's files only
    code, _, _ = run_cli("matrix", _matrix(tmp_path, models, precisions=["fp32", "int8-dynamic", "fp16"]),
                         "--out", tmp_path / "b")
    matrix = json.loads((tmp_path / "b" / "matrix.json").read_text())
    assert code == 0 and matrix["cache"] == {"built": 4, "reused": 2, "discarded": []}
    assert calls == [(("onnx",), ("fp16",)), (("onnx",), ("fp32", "int8-dynamic", "fp16"))]


def test_a_corrupt_cache_entry_is_detected_and_rebuilt(run_cli, tmp_path, tiny_embedder, tweets_csv, cache,
                                                       monkeypatch):
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)])
    assert run_cli("matrix", path, "--out", tmp_path / "a")[0] == 0
    entry = next(e for e in (cache / "artifacts").iterdir() if "int8" in (e / "entry.json").read_text()
                 and json.loads((e / "entry.json").read_text())["inputs"]["precision"] == "int8-dynamic")
    file = next(f for f in entry.iterdir() if f.suffix == ".onnx")
    file.write_bytes(file.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    calls = _count_packs(monkeypatch)
    code, _, _ = run_cli("matrix", path, "--out", tmp_path / "b")
    matrix = json.loads((tmp_path / "b" / "matrix.json").read_text())
    assert code == 0 and calls == [(("onnx",), ("int8-dynamic",))]
    assert matrix["cache"]["built"] == 1 and "does not match the sha256" in matrix["cache"]["discarded"][0]
    assert "discarded and rebuilt" in (tmp_path / "b" / "summary.md").read_text()
    from edgepack.manifest import sha256

    for row in matrix["rows"]:  # what ships is the rebuilt file, as recorded
        assert sha256(tmp_path / "b" / row["path"]) == row["sha256"]


def test_a_failed_export_is_reported_in_its_cells_and_not_cached(run_cli, tmp_path, tiny_embedder, tweets_csv,
                                                                  cache, monkeypatch):
    import junitparser

    from edgepack.errors import ExportError
    from edgepack.targets.onnx import OnnxTarget

    def fails(self, *args, **kwargs):
        raise ExportError("ONNX export of tiny failed: ValueError: unsupported op Foo")

    monkeypatch.setattr(OnnxTarget, "export", fails)
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)])
    code, stdout, _ = run_cli("matrix", path, "--out", tmp_path / "a")
    rows = _rows(tmp_path / "a")
    assert code == 1 and len(rows) == 4 and not any(r["passed"] or r["path"] for r in rows)
    assert "onnx/fp32 not built" in stdout and not (cache / "artifacts").exists()
    failures = [r for s in junitparser.JUnitXml.fromfile(str(tmp_path / "a" / "junit.xml")) for case in s
                for r in case.result if isinstance(r, junitparser.Failure)]
    assert len(failures) == 4 and all("unsupported op Foo" in f.message for f in failures)
    monkeypatch.undo()  # the toolchain fixed: the next run builds them
    monkeypatch.setenv("EDGEPACK_CACHE", str(cache))
    code, _, _ = run_cli("matrix", path, "--out", tmp_path / "b")
    assert code == 0 and json.loads((tmp_path / "b" / "matrix.json").read_text())["cache"]["built"] == 2


# ---- baseline, exit codes -----------------------------------------------------------------------------------------

def test_a_baseline_regression_fails_the_cell(run_cli, tmp_path, tiny_embedder, tweets_csv):
    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)], tolerances={"size_growth": 0.05})
    assert run_cli("matrix", path, "--out", tmp_path / "a")[0] == 0
    base = json.loads((tmp_path / "a" / "matrix.json").read_text())
    for row in base["rows"]:
        if row["precision"] == "int8-dynamic":
            row["size_mb"] *= 0.8  # the baseline's int8 was 20% smaller: this one grew 25%
    (tmp_path / "base.json").write_text(json.dumps(base))
    code, stdout, _ = run_cli("matrix", path, "--baseline", tmp_path / "base.json", "--out", tmp_path / "b")
    rows = _rows(tmp_path / "b")
    assert code == 1 and (tmp_path / "b" / "junit.xml").is_file()  # every output still written
    for row in rows:
        size = next(c for c in row["checks"] if c["name"] == "baseline: size")
        assert size["passed"] == (row["precision"] == "fp32") and row["passed"] == (row["precision"] == "fp32")
        assert row["baseline"]["size_mb"] > 0
    assert "+25.0%" in next(c for c in rows[-1]["checks"] if c["name"] == "baseline: size")["detail"]
    assert "Against the baseline" in stdout and "REGRESSED" in stdout
    code, _, err = run_cli("matrix", path, "--baseline", tmp_path / "none.json", "--out", tmp_path / "c")
    assert code == 2 and "none.json" in err and not (tmp_path / "c").exists()


def test_a_failed_gate_is_exit_1_with_the_gate_and_margin_named(run_cli, tmp_path, tiny_embedder, tweets_csv):
    import junitparser

    path = _matrix(tmp_path, [_tiny(tiny_embedder, tweets_csv)], gates={"max_size_mb": 0.05})
    code, stdout, _ = run_cli("matrix", path, "--out", tmp_path / "out")
    assert code == 1 and "FAILED" in stdout and "onnx/fp32 max_size_mb" in stdout  # fp32 is 0.13 MB, int8 smaller
    failures = [r for s in junitparser.JUnitXml.fromfile(str(tmp_path / "out" / "junit.xml")) for case in s
                for r in case.result if isinstance(r, junitparser.Failure)]
    assert len(failures) == 2 and all("max_size_mb" in f.message and "over by" in f.message for f in failures)


def test_junit_skips_what_cannot_run_here_and_says_why():
    import junitparser

    from edgepack.matrix import outputs

    row = {"model": "m", "device": "pixel-4", "target": "coreml", "precision": "fp16", "path": "m/coreml/x",
           "not_run": "Core ML runs only on macOS", "accuracy": None, "size_mb": 1.0, "host_p50_ms": None,
           "estimate_ms": None, "checks": [{"name": "format check", "passed": True, "detail": "ok"}]}
    outputs._settle(row)
    matrix = {"models": ["m"], "devices": ["pixel-4"], "rows": [row]}
    xml = outputs.junit(matrix)
    case = [c for s in junitparser.JUnitXml.fromstring(xml) for c in s][-1]
    assert isinstance(case.result[0], junitparser.Skipped) and "macOS" in case.result[0].message


# ---- jobs and merge -----------------------------------------------------------------------------------------------

def test_jobs_then_merge_equal_the_single_run(run_cli, tmp_path, tiny_embedder, tweets_csv):
    models = [_tiny(tiny_embedder, tweets_csv), _tiny(tiny_embedder, tweets_csv, name="tiny-64", sequence_length=64)]
    path = _matrix(tmp_path, models)
    assert run_cli("matrix", path, "--out", tmp_path / "single")[0] == 0
    code, stdout, _ = run_cli("matrix", path, "--jobs", "github")
    jobs = json.loads(stdout)["include"]
    assert code == 0 and jobs == [{"job": 0, "model": "tiny"}, {"job": 1, "model": "tiny-64"}]
    folders = []
    for job in jobs:
        folders.append(tmp_path / f"job-{job['job']}")
        assert run_cli("matrix", path, "--job", job["job"], "--out", folders[-1])[0] == 0
    code, _, err = run_cli("matrix", "merge", folders[0], "--out", tmp_path / "partial")
    assert code == 2 and "job 1 (tiny-64) missing" in err and not (tmp_path / "partial").exists()
    code, _, err = run_cli("matrix", "merge", folders[0], folders[0], "--out", tmp_path / "twice")
    assert code == 2 and "twice" in err
    assert run_cli("matrix", "merge", *reversed(folders), "--out", tmp_path / "merged")[0] == 0
    assert _figures(_rows(tmp_path / "merged")) == _figures(_rows(tmp_path / "single"))
    assert (tmp_path / "merged" / "tiny-64" / "report.json").is_file()
    assert (tmp_path / "merged" / "summary.md").read_text().splitlines()[0] == \
        (tmp_path / "single" / "summary.md").read_text().splitlines()[0]
    code, stdout, _ = run_cli("matrix", path, "--jobs", "gitlab")
    pipeline = yaml.safe_load(stdout)
    assert code == 0 and [k for k in pipeline if not k.startswith(".")] == [
        "edgepack-matrix-job-0", "edgepack-matrix-job-1", "edgepack-matrix-merge"]


# ---- what ships ---------------------------------------------------------------------------------------------------

def test_the_example_matrix_is_valid():
    from edgepack.matrix.spec import load

    spec, _ = load(ROOT / "examples" / "matrix" / "minilm.yaml")
    assert len(spec.devices) >= 4 and {"onnx", "tflite"} <= set(spec.targets) and len(spec.precisions) >= 2
    assert any(m.id == "sentence-transformers/all-MiniLM-L6-v2" for m in spec.models) and len(spec.models) >= 2


SHELL_KEYS = ("run", "script", "before_script", "after_script")


def _edgepack_commands(node, shell: bool = False) -> list[str]:
    """Every shell line (under run: / script: keys) in a CI file that calls edgepack."""
    if isinstance(node, dict):
        return [c for k, v in node.items() for c in _edgepack_commands(v, shell or k in SHELL_KEYS)]
    if isinstance(node, list):
        return [c for v in node for c in _edgepack_commands(v, shell)]
    if isinstance(node, str) and shell:
        return [line.strip() for line in node.splitlines() if line.strip().startswith("edgepack ")]
    return []


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_examples_call_commands_and_options_that_exist(run_cli, name):
    import click

    from edgepack.cli import cli

    commands = _edgepack_commands(yaml.safe_load((ROOT / "examples" / "ci" / name).read_text()))
    if name == "gitlab-ci.yml":  # its jobs and merge are in the child pipeline `--jobs gitlab` writes
        code, child, _ = run_cli("matrix", ROOT / "examples" / "matrix" / "minilm.yaml", "--jobs", "gitlab")
        assert code == 0
        commands += _edgepack_commands(yaml.safe_load(child))
    seen = set()
    for line in commands:
        words = shlex.split(line.split(">")[0])[1:]
        command, args = cli, list(words)
        while isinstance(command, click.Group):  # `matrix FILE` is `matrix run FILE`
            sub = args[0] if args and args[0] in command.commands else "run" if command.name == "matrix" else None
            assert sub is not None, f"{name}: {line!r} names no edgepack command"
            command, args = command.commands[sub], args[1:] if args and args[0] == sub else args
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        for word in args:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"{name}: {line!r}: {command.name} has no {word}"
        seen.add((command.name, "--jobs" in args, "--job" in args))
    assert {("run", True, False), ("run", False, True), ("merge", False, False)} <= seen, seen


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no Chromium at /usr/bin/chromium (Debian: "
                    "apt-get install chromium; .ci/run installs it)")
def test_matrix_report_html_in_headless_chromium(tmp_path):
    import os
    import shutil

    from playwright.sync_api import sync_playwright

    from edgepack.matrix import outputs

    def row(model, device, precision, margin, passed):
        check = {"name": f"{device}: latency budget", "passed": passed, "kind": "max", "value": 1.0, "limit": 1.0,
                 "margin": margin, "detail": f"estimate vs limit: {'within the limit' if passed else 'over by 3 ms'}"}
        r = {"model": model, "device": device, "target": "onnx", "precision": precision, "path": f"{model}/x",
             "not_run": None, "accuracy": {"metric": "cosine_mean", "value": 0.999, "drop": 0.001}, "size_mb": 22.0,
             "host_p50_ms": 3.1, "estimate_ms": 40.0, "estimate_low_ms": 30.0, "estimate_high_ms": 55.0,
             "checks": [check], "baseline": None}
        outputs._settle(r)
        return r

    rows = [row("all-MiniLM-L6-v2", d, p, m, m > 0) for d, m in (("raspberry-pi-4", -0.1), ("pixel-4", 0.4))
            for p in ("fp32", "int8-dynamic")]
    matrix = {"models": ["all-MiniLM-L6-v2"], "devices": ["raspberry-pi-4", "pixel-4"], "rows": rows,
              "passed": False, "baseline": None, "edgepack_version": "test",
              "cache": {"built": 0, "reused": 2, "discarded": []}}
    (tmp_path / "report.html").write_text(outputs.html(matrix))
    errors, outside = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("request", lambda r: r.url.startswith(("data:", "file:")) or outside.append(r.url))
        page.goto((tmp_path / "report.html").as_uri(), wait_until="load")
        verdict = page.inner_text("header.verdict")
        page.screenshot(path=tmp_path / "report-matrix.png", full_page=True)
        page.set_viewport_size({"width": 400, "height": 860})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        browser.close()
    if os.environ.get("EDGEPACK_SCREENSHOTS"):
        shutil.copyfile(tmp_path / "report-matrix.png", Path(os.environ["EDGEPACK_SCREENSHOTS"]) / "report-matrix.png")
    assert errors == [] and outside == [] and overflow <= 0
    assert verdict.startswith("FAILED: 2 of 4 cells pass")
