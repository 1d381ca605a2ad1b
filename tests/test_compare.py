"""`edgepack compare` end to end on tiny local models: the ranking outputs and exit codes 0 / 1, and every bad input
(exit 2, nothing written): mismatched tasks, mismatched label sets, unlabelled data, unknown and duplicate
candidates, a bad distil spec, a reused pack folder without the device (or under --metric fidelity). Also
--metric fidelity on unlabelled data (embedders and classifiers, ranked by agreement with the first candidate's
source), the Pareto front and the recommendation on hand-made rows, and --commercial."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from edgepack.compare import CompareOptions, Row, check_candidates, parse_candidate, rank

LABELS = ["negative", "neutral", "positive"]
FAST = ["--runs", "5", "--warmup", "1", "--precision", "fp32,int8-dynamic"]


@pytest.fixture(scope="module", autouse=True)
def artifact_cache(tmp_path_factory):
    """One artifact cache for this module's compare runs (compare shares matrix's cache), not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("cache")
        patch.setenv("EDGEPACK_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def embedders(tiny_embedder, tmp_path_factory):
    """The tiny embedder twice (two folders) and once more under a non-commercial license."""
    root = tmp_path_factory.mktemp("candidates")
    other, nc = root / "other-embedder", root / "nc-embedder"
    shutil.copytree(tiny_embedder, other)
    shutil.copytree(tiny_embedder, nc)
    (nc / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n")
    return tiny_embedder, other, nc


@pytest.fixture(scope="module")
def compared(embedders, tweets_csv, tmp_path_factory):
    """One successful run: two embedders and a 1-layer student of the first, on two devices."""
    from edgepack.cli import main

    out = tmp_path_factory.mktemp("compared") / "out"
    a, b, _ = embedders
    try:
        main(["compare", str(a), str(b), f"{a}@distill:layers=1,steps=5", "--device", "raspberry-pi-4",
              "--device", "pixel-4", "--data", str(tweets_csv), "--out", str(out), *FAST])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out


def test_compare_writes_its_outputs_and_recommends_per_device(compared):
    result = json.loads((compared / "compare.json").read_text())
    assert sorted(p.name for p in compared.iterdir()) == [
        "compare.html", "compare.json", "compare.md", "other-embedder", "tiny-embedder",
        "tiny-embedder-distill-layers-1-steps-5"]
    assert result["task"] == "feature-extraction" and result["metric"] == "probe accuracy"
    assert result["labels"] == ["negative", "neutral", "positive"] and result["passed"]
    assert len(result["rows"]) == 6  # 3 candidates x 2 precisions; the distilled candidate's are its student's
    student = [r for r in result["rows"] if r["candidate"].endswith("steps-5")]
    assert all("student" in r["model"] and "student-model" in r["path"] for r in student)
    assert all(r["license"] == "mit" and r["commercial_use"] == "yes" for r in result["rows"])
    for device in ("raspberry-pi-4", "pixel-4"):
        verdict = result["devices"][device]
        best = verdict["recommended"]
        fastest = min(result["rows"], key=lambda r: r["devices"][device]["estimate"])
        assert (best["candidate"], best["artifact"]) == (fastest["candidate"], fastest["artifact"])
        assert f"{best['candidate']} {best['artifact']}" in verdict["pareto"]
        assert verdict["verdict"].startswith(f"{device}: {best['candidate']} {best['artifact']}")
    md = (compared / "compare.md").read_text()
    assert md.startswith("# edgepack compare: feature-extraction\n\nPASSED") and "| candidate |" in md


def test_a_second_compare_takes_the_candidates_from_the_artifact_cache(compared, embedders, tweets_csv, tmp_path,
                                                                        run_cli, monkeypatch, artifact_cache):
    import edgepack.matrix.run

    built = []
    real_pack = edgepack.matrix.run.pack
    monkeypatch.setattr(edgepack.matrix.run, "pack", lambda *a, **k: built.append(a[0]) or real_pack(*a, **k))
    a, b, _ = embedders
    code, _, err = run_cli("compare", a, b, "--device", "raspberry-pi-4", "--device", "pixel-4", "--data", tweets_csv,
                           "--out", tmp_path / "again", *FAST)
    assert code == 0, err
    assert built == [] and "from the artifact cache" in err
    first, again = (json.loads((folder / "compare.json").read_text())["rows"] for folder in (compared, tmp_path / "again"))
    def figures(row):  # the Pareto front is not compared: the first run had a third candidate
        return {k: row[k] for k in ("candidate", "artifact", "metric", "fidelity", "size_mb")} | {
            d: row["devices"][d]["estimate"] for d in row["devices"]}

    assert [figures(r) for r in again] == [figures(r) for r in first if not r["candidate"].endswith("steps-5")]
    report = json.loads((tmp_path / "again" / "tiny-embedder" / "report.json").read_text())
    assert all(any("from the artifact cache" in n for n in a["notes"]) for a in report["artifacts"])
    assert not (tmp_path / "again" / ".staging").exists()


def test_no_candidate_within_the_limits_exits_1_naming_the_closest(embedders, tweets_csv, tmp_path, run_cli):
    a, b, _ = embedders
    code, out, err = run_cli("compare", a, b, "--device", "raspberry-pi-4", "--data", tweets_csv,
                             "--min-accuracy", "0.5", "--max-latency-ms", "0.001", "--out", tmp_path / "o", *FAST)
    assert code == 1, err
    result = json.loads((tmp_path / "o" / "compare.json").read_text())
    verdict = result["devices"]["raspberry-pi-4"]
    assert verdict["recommended"] is None and not result["passed"]
    assert "no candidate meets the limits; closest is" in verdict["verdict"]
    assert "misses the latency limit by" in verdict["verdict"] and "NONE raspberry-pi-4" in out


def test_commercial_drops_non_commercial_candidates(embedders, tweets_csv, tmp_path, run_cli):
    a, _, nc = embedders
    code, out, err = run_cli("compare", a, nc, "--device", "raspberry-pi-4", "--data", tweets_csv,
                             "--out", tmp_path / "flagged", *FAST)
    assert code == 0, err
    assert "License does not clearly allow commercial use: nc-embedder (cc-by-nc-4.0)" in (
        tmp_path / "flagged" / "compare.md").read_text()
    code, out, err = run_cli("compare", a, nc, "--device", "raspberry-pi-4", "--data", tweets_csv, "--commercial",
                             "--out", tmp_path / "dropped", *FAST)
    result = json.loads((tmp_path / "dropped" / "compare.json").read_text())
    assert code == 0 and {r["candidate"] for r in result["rows"]} == {"tiny-embedder"}
    assert len(result["dropped"]) == 2 and "cc-by-nc-4.0 (commercial use: no)" in result["dropped"][0]


def _unlabelled(tweets_csv, folder):
    data = folder / "unlabelled.csv"
    with tweets_csv.open() as f:
        data.write_text("text\n" + "".join(f"{row['text']}\n" for row in csv.DictReader(f)))
    return data


def test_unlabelled_data_needs_labels_or_fidelity(embedders, tweets_csv, tmp_path, run_cli):
    a, b, _ = embedders
    data = _unlabelled(tweets_csv, tmp_path)
    code, _, err = run_cli("compare", a, b, "--device", "raspberry-pi-4", "--data", data, "--out", tmp_path / "o",
                           *FAST)
    assert code == 2 and "compare needs labels, or pass --metric fidelity" in err and not (tmp_path / "o").exists()
    code, _, err = run_cli("compare", a, b, "--device", "raspberry-pi-4", "--data", data, "--metric", "fidelity",
                           "--out", tmp_path / "o", *FAST)
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert result["metric"] == "agreement with tiny-embedder" and result["reference"] == str(a)
    # The reference's embeddings, clustered, are the labels; b is a copy of a, so it scores the same.
    with (tmp_path / "o" / "reference-labels.csv").open() as f:
        labels = [row["label"] for row in csv.DictReader(f)]
    assert len(labels) == 48 and result["labels"] == sorted(set(labels)) and len(set(labels)) >= 2
    scores = {(r["candidate"], r["artifact"]): r["metric"] for r in result["rows"]}
    assert scores[("tiny-embedder", "onnx/fp32")] is not None
    assert scores[("tiny-embedder", "onnx/fp32")] == scores[("other-embedder", "onnx/fp32")]


def test_reference_clusters_are_the_embeddings_groups():
    from edgepack.compare_reference import clusters

    rng = np.random.default_rng(0)
    centres = np.eye(3, 16) * 10
    groups = np.repeat([0, 1, 2], 30)
    labels = clusters(centres[groups] + rng.normal(0, 0.5, (90, 16)))
    assert len(set(labels)) == 3  # one per group: 90 samples allow 3, the groups' sizes allow no more
    assert all(len({labels[i] for i in np.flatnonzero(groups == g)}) == 1 for g in range(3))
    assert clusters(rng.normal(size=(4, 16))) == ["cluster-0"] * 4  # too few samples for two clusters of 3


def _classifier(folder, labels, seed):
    import torch
    from transformers import BertForSequenceClassification

    from .conftest import _bert_config, _tokenizer

    torch.manual_seed(seed)
    config = _bert_config(_tokenizer(folder), num_labels=len(labels), id2label=dict(enumerate(labels)),
                          label2id={n: i for i, n in enumerate(labels)})
    BertForSequenceClassification(config).eval().save_pretrained(str(folder), safe_serialization=True)
    return folder


def test_fidelity_ranks_classifiers_by_agreement_with_the_first(tiny_classifier, tweets_csv, tmp_path, run_cli):
    other = _classifier(tmp_path / "other-classifier", LABELS, seed=1)
    code, _, err = run_cli("compare", tiny_classifier, other, "--device", "raspberry-pi-4", "--data",
                           _unlabelled(tweets_csv, tmp_path), "--metric", "fidelity", "--out", tmp_path / "o", *FAST)
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert result["metric"] == "agreement with tiny-classifier"
    assert result["labels"] == sorted(LABELS)
    # The reference's predictions are the labels: its own artifacts' score is their top-1 agreement with it.
    for r in result["rows"]:
        assert r["metric"] is not None
        if r["candidate"] == "tiny-classifier":
            assert r["metric"] == r["fidelity"]
    assert f"the labels {tiny_classifier} (fp32, PyTorch) gives" in (tmp_path / "o" / "compare.md").read_text()


@pytest.mark.parametrize("case", ["tasks", "label sets", "unknown", "duplicate", "distill spec", "no device"])
def test_bad_input_exits_2_and_writes_nothing(case, embedders, tiny_classifier, tweets_csv, tmp_path, run_cli):
    a, b, _ = embedders
    candidates, expected = {
        "tasks": ([a, tiny_classifier], "candidates of different tasks: tiny-embedder is feature-extraction, "
                                        "tiny-classifier is text-classification"),
        "label sets": ([tiny_classifier, _classifier(tmp_path / "four", [*LABELS, "mixed"], 0)]
                       if case == "label sets" else [],
                       "candidates with different label sets: tiny-classifier: negative, neutral, positive; "
                       "four: mixed, negative, neutral, positive"),
        "unknown": ([a, tmp_path / "no-such-model"], f"candidate '{tmp_path / 'no-such-model'}'"),
        "duplicate": ([a, b, f"{a}/"], f"duplicate candidate: '{a}/' is the same as '{a}'"),
        "distill spec": ([a, f"{a}@distill:layrs=3"], "--distill: unknown setting 'layrs'"),
        "no device": ([a, b], "compare needs a device"),
    }[case]
    device = [] if case == "no device" else ["--device", "raspberry-pi-4"]
    code, out, err = run_cli("compare", *candidates, *device, "--data", tweets_csv, "--out", tmp_path / "o", *FAST)
    assert code == 2 and expected in err, err
    assert not (tmp_path / "o").exists() and out == ""


def test_a_pack_folder_is_reused_when_it_has_the_devices(compared, embedders, tweets_csv, tmp_path, run_cli):
    packed, (_, b, _) = compared / "tiny-embedder", embedders
    code, _, err = run_cli("compare", packed, b, "--device", "raspberry-pi-4", "--data", tweets_csv,
                           "--out", tmp_path / "o", *FAST)
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert {c["folder"] for c in result["candidates"]} == {str(packed), "other-embedder/"}
    assert not (tmp_path / "o" / "tiny-embedder").exists()  # reused, not rebuilt
    code, _, err = run_cli("compare", packed, b, "--device", "jetson-nano", "--data", tweets_csv,
                           "--out", tmp_path / "o2", *FAST)
    assert code == 2 and "its report has no estimate for device 'jetson-nano'" in err
    code, _, err = run_cli("compare", packed, b, "--device", "raspberry-pi-4", "--data", tweets_csv, "--metric",
                           "fidelity", "--out", tmp_path / "o3", *FAST)
    assert code == 2 and "a pack folder was scored on its own" in err and not (tmp_path / "o3").exists()


def _row(name, metric, ms, size=10.0):
    return Row(name, name, "onnx/fp32", f"{name}/m.onnx", metric, None, 1.0, size, 30.0, 1000, "mit", "yes",
               devices={"pi": {"estimate": ms, "low": ms * 0.8, "high": ms * 1.3, "budget": 100.0}})


def test_pareto_front_and_recommendation_on_hand_made_rows():
    rows = [_row("big", 0.80, 90.0), _row("mid", 0.75, 40.0), _row("dominated", 0.70, 60.0),
            _row("small", 0.60, 10.0)]
    options = CompareOptions(candidates=[], out=None, devices=["pi"], min_accuracy=0.7, max_latency_ms=50.0)
    result = rank(rows, options, {"task": "feature-extraction", "labels": []}, [], [])
    assert result["devices"]["pi"]["pareto"] == ["big onnx/fp32", "mid onnx/fp32", "small onnx/fp32"]
    assert result["devices"]["pi"]["recommended"]["candidate"] == "mid"  # "small" misses the accuracy limit
    options.min_accuracy = 0.9
    verdict = rank(rows, options, {"task": "feature-extraction", "labels": []}, [], [])["devices"]["pi"]["verdict"]
    # "big" misses accuracy by 11% and latency by 80%; "mid" only accuracy, by 17%: the smallest total miss
    assert verdict.endswith("closest is mid onnx/fp32, which misses min accuracy by 0.1500 (0.7500 vs 0.9)")
    options.max_latency_ms = 5.0
    verdict = rank(rows, options, {"task": "feature-extraction", "labels": []}, [], [])["devices"]["pi"]["verdict"]
    assert "closest is small onnx/fp32, which misses min accuracy by 0.3000 (0.6000 vs 0.9) and the latency " \
           "limit by 5.0 ms (10.0 vs 5 ms)" in verdict


def test_candidate_syntax():
    c = parse_candidate("sentence-transformers/all-MiniLM-L6-v2@distill:layers=3,minutes=10")
    assert (c.model, c.distill, c.name) == ("sentence-transformers/all-MiniLM-L6-v2", "layers=3,minutes=10",
                                            "all-MiniLM-L6-v2-distill-layers-3-minutes-10")
    assert [c.name for c in check_candidates(["org-a/model", "org-b/model"])] == ["model", "model-2"]
    with pytest.raises(Exception, match="at least two candidates"):
        check_candidates(["only-one"])
