"""Accuracy-aware compression: the search's logic and budget (fast fakes), the search and distillation on tiny real
models, static int8 / int4 graphs, and bad --distill values."""

from __future__ import annotations

import json
import time

import onnx
import pytest

from edgepack import search
from edgepack.compress.distill import DistillSpec, parse_spec, pick_layers
from edgepack.errors import UsageError
from edgepack.targets import ExportSettings, Tuning

from .conftest import SENTENCES

def _error_lines(err: str) -> list[str]:
    """stderr less the progress lines: a usage error is exactly one line."""
    return [line for line in err.strip().splitlines() if not line.startswith("==>")]


LAYERS = [f"L{i}" for i in range(8)]
HURT = {"L0": 0.001, "L1": 0.02, "L2": 0.002, "L3": 0.05, "L4": 0.001, "L5": 0.01, "L6": 0.003, "L7": 0.001}


def fake_search(max_drop, budget=60.0, floor=0.0, build_s=0.0, tmp_path=None, burst=None):
    """Drop = sum of the quantized layers' harm (+ floor); latency grows with the layers left in float."""
    built = []

    def build(settings: Tuning, path):
        time.sleep(build_s)
        path.write_text(json.dumps(sorted(settings.exclude)))
        built.append(settings)
        return {"exclude": list(settings.exclude)}

    def evaluate(path, limit):
        excluded = set(json.loads(path.read_text()))
        drop = floor + sum(h for layer, h in HURT.items() if layer not in excluded)
        return search.Measured(drop, drop * 10)

    seen = set()

    def time_it(path):
        excluded = json.loads(path.read_text())
        first = path not in seen
        seen.add(path)
        return 1.0 + len(excluded) + (100.0 if first and excluded == burst else 0.0)  # a burst on its first timing

    dest = tmp_path / "kept.onnx"
    record = search.run(build, evaluate, time_it, LAYERS, max_drop, budget, tmp_path / "work", dest, Tuning())
    return record, dest, built


def test_search_ranks_layers_and_keeps_the_fastest_passing(tmp_path):
    record, dest, _ = fake_search(0.012, tmp_path=tmp_path)
    s = record["search"]
    assert s["passed"] and dest.is_file()
    assert [x["layer"] for x in s["sensitivity_top"][:3]] == ["L3", "L1", "L5"]  # by harm
    # L3 and L1 in float leave 0.019 (misses); L3, L1, L5 leave 0.009 (meets): the fewest float layers win on speed
    assert sorted(json.loads(dest.read_text())) == ["L1", "L3", "L5"]
    assert set(s["layers_in_float"]) == {"L1", "L3", "L5"}
    assert "sensitivity rank 1" in s["layers_in_float"]["L3"]
    passing = [c for c in s["candidates"] if c["passed"]]
    assert passing and all(c["host_p50_ms"] is not None for c in passing)


def test_passing_candidates_are_timed_in_turn_so_one_burst_does_not_pick_the_winner(tmp_path):
    record, dest, _ = fake_search(0.012, tmp_path=tmp_path, burst=["L1", "L3", "L5"])
    assert sorted(json.loads(dest.read_text())) == ["L1", "L3", "L5"]  # still the fastest, by median of its timings
    assert "median" in record["search"]["kept_because"]


def test_search_with_no_passing_candidate_keeps_the_most_accurate(tmp_path):
    record, dest, _ = fake_search(0.001, floor=0.01, tmp_path=tmp_path)  # even all-float misses
    s = record["search"]
    assert not s["passed"] and dest.is_file()
    assert s["kept_because"].startswith("no candidate met the limit")
    kept = next(c for c in s["candidates"] if c["name"] == s["kept"])
    assert kept["drop"] == min(c["drop"] for c in s["candidates"])
    assert s["sensitivity_top"][0] == {"layer": "L3", "error": pytest.approx(0.6), "drop": pytest.approx(0.06)}


def test_search_respects_its_budget(tmp_path):
    start = time.monotonic()
    record, dest, built = fake_search(0.0, budget=1.0, build_s=0.15, tmp_path=tmp_path)
    elapsed = time.monotonic() - start
    assert elapsed < 1.0 + 0.15 + 0.5  # no step started that would overrun, plus the final copy
    assert "budget" in record["search"]["stopped_by"] and dest.is_file()
    assert len(built) < 1 + 4 + len(LAYERS)  # it did not get through every step


def test_the_first_candidate_is_built_even_with_no_budget(tmp_path):
    record, dest, built = fake_search(0.0, budget=0.0, tmp_path=tmp_path)
    assert len(built) == 1 and dest.is_file() and record["search"]["kept"] == "full-default"


def test_search_on_a_tiny_model_explains_the_failure_and_keeps_the_artifact(run_cli, tiny_embedder, tweets_csv,
                                                                         tmp_path, monkeypatch):
    from edgepack.tasks.feature_extraction import FeatureExtraction

    # The tiny model quantizes almost losslessly; a fixed extra drop makes every candidate miss the limit.
    compare = FeatureExtraction.compare

    def harsher(self, reference, candidate, labels):
        acc = compare(self, reference, candidate, labels)
        acc.drop += 0.5
        return acc

    monkeypatch.setattr(FeatureExtraction, "compare", harsher)
    out = tmp_path / "out"
    code, _, err = run_cli("pack", tiny_embedder, "--out", out, "--data", tweets_csv, "--precision", "int8-static",
                           "--max-accuracy-drop", "0.1", "--search-budget", "60", "--runs", "5", "--warmup", "1")
    assert code == 1, err
    report = json.loads((out / "report.json").read_text())
    art = report["artifacts"][0]
    s = art["settings"]["search"]
    assert (out / art["path"]).is_file() and not s["passed"]
    assert s["layers_measured"] == s["layers_total"] > 0 and s["sensitivity_top"]
    assert s["layers_in_float"]  # the fallback left layers in float, and says why
    assert s["spent_s"] <= 60 + 10
    md = (out / "report.md").read_text()
    assert "Layers left in float, and why" in md and "hurt most" in md


def test_search_picks_on_held_out_rows_not_on_the_evaluation_samples(run_cli, tiny_embedder, tweets_csv, tmp_path,
                                                                      monkeypatch):
    from edgepack.bench import accuracy

    scored, artifact_outputs = [], accuracy.artifact_outputs

    def recording(path, task, texts, *args, **kwargs):
        scored.append(list(texts))
        return artifact_outputs(path, task, texts, *args, **kwargs)

    monkeypatch.setattr(accuracy, "artifact_outputs", recording)
    out = tmp_path / "out"
    code, _, err = run_cli("pack", tiny_embedder, "--out", out, "--data", tweets_csv, "--limit", "8",
                           "--precision", "int8-static", "--max-accuracy-drop", "0.5", "--search-budget", "60",
                           "--runs", "5", "--warmup", "1")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    search = report["artifacts"][0]["settings"]["search"]
    assert "none of them evaluation samples" in search["selected_on"]
    evaluation = scored[-1]  # the kept artifact's own accuracy check comes last, on the evaluation samples
    assert len(evaluation) == report["data"]["samples"] == 8
    candidates = scored[:-1]
    assert candidates and all(not set(texts) & set(evaluation) for texts in candidates)
    assert "Candidates scored on" in (out / "report.md").read_text()


def test_search_needs_int8_static(run_cli, tiny_embedder, tweets_csv, tmp_path):
    code, _, err = run_cli("pack", tiny_embedder, "--out", tmp_path / "o", "--data", tweets_csv, "--precision", "fp32",
                           "--search", "--max-accuracy-drop", "0.01")
    assert code == 2 and "int8-static" in err and len(_error_lines(err)) == 1


def test_calibrating_on_the_evaluation_texts_is_said_plainly(run_cli, tiny_classifier, tweets_csv, tmp_path):
    """Without --limit every row is an evaluation sample, so int8-static calibrates on them: the report says so."""
    notes = {}
    for name, limit in (("all", []), ("some", ["--limit", "24"])):
        code, _, err = run_cli("pack", tiny_classifier, "--out", tmp_path / name, "--data", tweets_csv, "--precision",
                               "int8-static", "--runs", "5", "--warmup", "1", *limit)
        assert code == 0, err
        notes[name] = [n for n in json.loads((tmp_path / name / "report.json").read_text())["notes"]
                       if "optimistic" in n]
    assert len(notes["all"]) == 1 and notes["all"][0].startswith("int8-static calibrated on the evaluation texts")
    assert notes["some"] == []


@pytest.fixture(scope="module")
def exported_classifier(tiny_classifier, tmp_path_factory):
    from edgepack.registry import TARGETS
    from edgepack.source import resolve
    from edgepack.tasks.text_classification import TextClassification

    task = TextClassification(resolve(str(tiny_classifier)))
    target = TARGETS.get("onnx")(tmp_path_factory.mktemp("work"))
    settings = ExportSettings(sequence_length=128, buckets=[128], calibration=[t for t, _ in SENTENCES] * 4)
    return target, target.export(task.source, task, settings)


def test_static_int8_is_qdq_with_recorded_calibration(exported_classifier, tmp_path):
    target, exported = exported_classifier
    settings = target.build("int8-static", exported, tmp_path / "s.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "s.onnx")).graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    assert settings["calibration_method"] == "minmax" and settings["calibration_samples"] == 48
    layers = target.quantizable_layers("int8-static", exported)
    tuning = target.default_tuning("int8-static").with_knob("method", "percentile")
    excluded = target.build("int8-static", exported, tmp_path / "e.onnx",
                            Tuning(tuning.samples, tuple(layers[:2]), tuning.knobs))
    assert excluded["layers_in_float"] == layers[:2] and excluded["calibration_method"] == "percentile"


def test_calibration_texts_are_cut_at_the_runs_sequence_length_not_at_128(exported_classifier):
    from edgepack.targets import calibration_sample
    from edgepack.targets.onnx_quant import calibration_feeds

    target, exported = exported_classifier
    long_text = " ".join(["the car"] * 150)  # about 300 tokens
    for length in (16, 256):
        feeds = calibration_feeds(exported.task, [long_text], {"input_ids", "attention_mask"}, 1, length)
        assert feeds[0]["input_ids"].shape == (1, length)
    texts = [f"text {i}" for i in range(300)]
    picked = calibration_sample(texts, 128)
    assert picked == calibration_sample(texts, 128) and len(set(picked)) == 128  # seeded: the search can avoid them


def test_int4_weight_uses_matmulnbits(exported_classifier, tmp_path):
    target, exported = exported_classifier
    settings = target.build("int4-weight", exported, tmp_path / "w.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "w.onnx")).graph.node}
    assert "MatMulNBits" in ops and settings["weights"].startswith("int4")


# ---- distillation ---------------------------------------------------------------------------------------------------

def test_distill_spec_parsing():
    assert parse_spec("layers=3") == DistillSpec(layers=3)
    assert parse_spec(" layers=2, steps=50 ,minutes=1.5,seed=7") == DistillSpec(layers=2, steps=50, minutes=1.5, seed=7)
    assert pick_layers(6, 3) == [1, 3, 5] and pick_layers(12, 4) == [2, 5, 8, 11] and pick_layers(2, 1) == [1]
    for bad in ("", "3", "layers", "layers=", "layers=x", "layers=0", "depth=3", "steps=10", "layers=2,layers=3",
                "layers=2,lr=-1", "layers=2,minutes=0"):
        with pytest.raises(UsageError):
            parse_spec(bad)


@pytest.mark.parametrize("value", ["layers", "layers=three", "depth=2", "layers=0", "layers=5"])
def test_bad_distill_values_are_one_line_usage_errors(run_cli, tiny_embedder, tweets_csv, tmp_path, value):
    out = tmp_path / "o"
    code, _, err = run_cli("pack", tiny_embedder, "--out", out, "--data", tweets_csv, "--precision", "fp32",
                           "--distill", value)
    assert code == 2, err
    assert len(_error_lines(err)) == 1 and "--distill" in _error_lines(err)[0]
    assert not out.exists()


def _weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("which", ["tiny_embedder", "tiny_classifier"])
def test_distillation_is_reproducible_and_learns(which, request, tmp_path):
    from edgepack.compress.distill import distill
    from edgepack.registry import TASKS
    from edgepack.source import resolve
    from edgepack.tasks import detect_task

    source = resolve(str(request.getfixturevalue(which)))
    task = TASKS.get(detect_task(source))(source)
    texts = [t for t, _ in SENTENCES] * 3
    spec = parse_spec("layers=1,steps=30,batch=8,lr=1e-3")
    a = distill(task, texts, spec, tmp_path / "a")
    b = distill(task, texts, spec, tmp_path / "b")
    c = distill(task, texts, parse_spec("layers=1,steps=30,batch=8,lr=1e-3,seed=1"), tmp_path / "c")
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all((wa[k] == wb[k]).all() for k in wa)  # same seed, same weights
    assert any((wa[k] != wc[k]).any() for k in wa)
    assert a["steps_run"] == 30 and a["layers_kept"] == [1] and a["student_parameters"] < a["teacher_parameters"]
    if which == "tiny_embedder":  # the random tiny classifier's logits are all alike: its loss starts near 0
        assert a["loss_last50_mean"] < a["loss_first"]
    student = resolve(str(tmp_path / "a"))
    assert student.config["num_hidden_layers"] == 1 and detect_task(student) == task.name


def test_distillation_seed_drives_the_dropout_too(tiny_embedder, tmp_path):
    """One text repeated, one batch of all of it: the batches are the same whatever the seed, so only the student's
    dropout (torch's generator) can tell seed=0 from seed=1."""
    from edgepack.compress.distill import distill
    from edgepack.registry import TASKS
    from edgepack.source import resolve

    task = TASKS.get("feature-extraction")(resolve(str(tiny_embedder)))
    texts = [SENTENCES[0][0]] * 8
    for seed in (0, 1):
        distill(task, texts, parse_spec(f"layers=1,steps=3,batch=8,lr=1e-3,seed={seed}"), tmp_path / str(seed))
    w0, w1 = _weights(tmp_path / "0"), _weights(tmp_path / "1")
    assert any((w0[k] != w1[k]).any() for k in w0)


def test_distill_with_too_many_layers_is_refused_before_the_model_runs(run_cli, tiny_embedder, tweets_csv, tmp_path):
    code, _, err = run_cli("pack", tiny_embedder, "--out", tmp_path / "out", "--data", tweets_csv,
                           "--distill", "layers=9")
    assert code == 2 and "the teacher has 2 layers" in err and "Running the source model" not in err
    assert not (tmp_path / "out").exists()


def test_pack_with_distill_puts_student_beside_teacher(run_cli, tiny_embedder, tweets_csv, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("pack", tiny_embedder, "--out", out, "--data", tweets_csv, "--precision",
                                "fp32,int8-dynamic", "--distill", "layers=1,steps=10,batch=8", "--runs", "5",
                                "--warmup", "1")
    report = json.loads((out / "report.json").read_text())
    assert code == (0 if report["passed"] else 1), err  # the exit code is the report's verdict
    # no --limit: every row is an evaluation sample, so the student trained on them, and the report says so
    assert any(n.startswith("the student was distilled on the evaluation texts") for n in report["notes"])
    roles = [(a["role"], a["precision"]) for a in report["artifacts"]]
    assert roles == [("teacher", "fp32"), ("teacher", "int8-dynamic"), ("student", "fp32"),
                     ("student", "int8-dynamic")]
    assert report["distillation"]["steps_run"] == 10 and report["distillation"]["student_layers"] == 1
    assert all((out / a["path"]).is_file() for a in report["artifacts"])
    md = (out / "report.md").read_text()
    assert "Distillation: teacher vs student" in md and "student fp32" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert {a["model"] for a in manifest["artifacts"]} == {"teacher", "student"}


def test_search_drives_the_tflite_target_too(run_cli, tiny_embedder, tweets_csv, tmp_path, monkeypatch):
    """`pack --target tflite --precision int8-static --search`: the search knows only the Target contract, so it
    tunes LiteRT's static int8 as it does ONNX's, and a layer it leaves in float keeps float weights in the file."""
    from ai_edge_litert.interpreter import Interpreter

    from edgepack.targets.tflite import layer_name
    from edgepack.tasks.feature_extraction import FeatureExtraction

    compare = FeatureExtraction.compare

    def harsher(self, reference, candidate, labels):  # any quantized layer misses: the fallback must run
        acc = compare(self, reference, candidate, labels)
        acc.drop += 0.5 * (acc.drop > 1e-6)
        return acc

    monkeypatch.setattr(FeatureExtraction, "compare", harsher)
    out = tmp_path / "out"
    code, _, err = run_cli("pack", tiny_embedder, "--out", out, "--data", tweets_csv, "--target", "tflite",
                           "--precision", "int8-static", "--max-accuracy-drop", "0.1", "--search-budget", "90",
                           "--runs", "5", "--warmup", "1")
    assert code in (0, 1), err
    art = json.loads((out / "report.json").read_text())["artifacts"][0]
    s = art["settings"]["search"]
    assert art["path"].endswith(".tflite") and (out / art["path"]).is_file()
    assert s["layers_total"] > 0 and s["layers_measured"] > 0 and s["candidates"][0]["name"] == "full-default"
    floats = [c for c in s["candidates"] if c["layers_in_float"]]
    assert floats, "the fallback left no layer in float"
    # the kept file holds exactly its float layers with float32 weights, the other weighted layers with int8
    interpreter = Interpreter(model_path=str(out / art["path"]))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    weights = {layer_name(tensors[op["outputs"][0]]["name"]): tensors[op["inputs"][1]]["dtype"].__name__
               for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"}
    in_float = set(s["layers_in_float"])
    assert in_float <= {name for name, dtype in weights.items() if dtype == "float32"}
    assert all(dtype == "int8" for name, dtype in weights.items() if dtype != "float32")


def test_tflite_static_int8_leaves_the_excluded_layers_in_float_and_says_what_the_file_holds(tiny_embedder, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from edgepack.registry import TARGETS
    from edgepack.source import resolve
    from edgepack.targets.tflite import layer_name
    from edgepack.tasks.feature_extraction import FeatureExtraction

    task = FeatureExtraction(resolve(str(tiny_embedder)))
    target = TARGETS.get("tflite")(tmp_path)
    exported = target.export(task.source, task, ExportSettings(32, [32], calibration=[t for t, _ in SENTENCES]))
    layers = target.quantizable_layers("int8-static", exported)
    assert len(layers) > 4
    tuning = target.default_tuning("int8-static")
    settings = target.build("int8-static", exported, tmp_path / "m.tflite",
                            Tuning(tuning.samples, tuple(layers[:2]), tuning.knobs))
    assert settings["layers_excluded"] == layers[:2]
    interpreter = Interpreter(model_path=str(tmp_path / "m.tflite"))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    weights = {layer_name(tensors[op["outputs"][0]]["name"]): tensors[op["inputs"][1]]["dtype"].__name__
               for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"}
    in_float = {name for name, dtype in weights.items() if dtype == "float32"}
    # The excluded layers stay float; a layer sharing their input (attention's value projection beside query and
    # key) may too, since that input is then not quantized: the record says what the file holds.
    assert set(layers[:2]) <= in_float and len(in_float) <= 3 and set(settings["layers_in_float"]) == in_float
    assert all(dtype == "int8" for name, dtype in weights.items() if name not in in_float)
