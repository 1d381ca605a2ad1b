"""question-answering (extractive): span decoding as the pipeline decodes, exact match and token F1 vs the source
and vs gold answers, question + context data, and `pack` end to end on DistilBERT (and BERT, whose context is
segment 1)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepack.config import DataSpec
from edgepack.data import load
from edgepack.data_formats import QAPair
from edgepack.errors import DataError
from edgepack.registry import TASKS
from edgepack.source import resolve
from edgepack.tasks import detect_task
from edgepack.tasks.question_answering import best_span, span_scores

from .catalog_models import build_tiny, write_qa_jsonl

COVERS = {"task": ["question-answering"]}

FAST = ["--runs", "5", "--warmup", "1", "--limit", "24"]


@pytest.fixture(scope="module")
def tiny_qa(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-qa", "distilbert", "question-answering",
                      max_length=384)  # the question-answering recipe's window


@pytest.fixture(scope="module")
def tiny_bert_qa(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-bert-qa", "bert", "question-answering",
                      max_length=384)


@pytest.fixture(scope="module")
def qa_jsonl(tmp_path_factory):
    return write_qa_jsonl(tmp_path_factory.mktemp("data") / "qa.jsonl")


def test_detected_from_the_architecture(tiny_qa):
    assert detect_task(resolve(str(tiny_qa))) == "question-answering"


def test_best_span_stays_in_the_context_and_ordered():
    start = np.array([9.0, 0.0, 1.0, 0.0, 0.0])
    end = np.array([9.0, 0.0, 0.0, 5.0, 0.0])
    allowed = np.array([False, True, True, True, True])  # token 0 (e.g. the question) may not be picked
    assert best_span(start, end, allowed) == (2, 3)
    assert best_span(np.array([0.0, 0.0, 5.0]), np.array([0.0, 5.0, 0.0]), np.ones(3, bool)) != (2, 1)
    assert best_span(start, end, allowed, longest=1) in {(2, 2), (3, 3)}
    assert best_span(start, end, np.zeros(5, bool)) == (-1, -1)


def test_span_scores():
    assert span_scores((2, 4), (2, 4)) == (1.0, 1.0)
    assert span_scores((2, 3), (2, 5)) == (0.0, pytest.approx(2 * 1.0 * 0.5 / 1.5))
    assert span_scores((0, 1), (3, 4)) == (0.0, 0.0)


def test_qa_data_layouts(tmp_path, qa_jsonl):
    data = load(DataSpec(path=str(qa_jsonl)))
    assert isinstance(data.texts[0], QAPair) and data.label_column == "answers"
    assert data.texts[0].answers[0]["answer_start"] >= 0 and json.loads(data.labels[0])
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"question": "who?", "context": "we drive", "answers": ["we"]}) + "\n"
                     + json.dumps({"question": "", "context": "skipped: no question"}) + "\n")
    pairs = load(DataSpec(path=str(plain))).texts
    assert len(pairs) == 1 and pairs[0].answers == [{"text": "we", "answer_start": -1}]
    unlabelled = load(DataSpec(path=str(write_qa_jsonl(tmp_path / "u.jsonl", answers=False))))
    assert unlabelled.labels is None


def test_compare_against_source_and_gold(tiny_qa, qa_jsonl):
    task = TASKS.get("question-answering")(resolve(str(tiny_qa)))
    pairs = load(DataSpec(path=str(qa_jsonl))).texts
    reference = task.reference(pairs, 128)
    assert reference.shape[2] == 4 and (reference[:, :, 3] == 1).any()  # gold answer tokens are marked
    same = task.compare(reference, reference[:, :, :2].copy(), None)
    assert same.metric == "exact_match" and same.value == 1.0 and same.details["f1"] == 1.0
    assert same.details["gold_samples"] == len(pairs)
    assert same.details["f1_gold_source"] == same.details["f1_gold_artifact"]
    # an artifact that always answers the first context token: worse than the source on most questions
    shifted = np.zeros_like(reference[:, :, :2])
    for row, mask in zip(shifted, reference[:, :, 2] > 0):
        first = np.flatnonzero(mask)[0]
        row[first, :] = 100.0
    worse = task.compare(reference, shifted, None)
    assert worse.value < 1.0 and worse.drop == pytest.approx(1 - worse.value)


def test_gold_answer_found_without_answer_start(tiny_qa):
    task = TASKS.get("question-answering")(resolve(str(tiny_qa)))
    pair = QAPair("who drives?", "people drive on the road", [{"text": "people", "answer_start": -1}])
    gold = task.reference([pair], 128)[0, :, 3]
    assert int((gold == 1).sum()) == 1  # "people" is one token of the context


def test_plain_text_data_is_a_usage_error(run_cli, tiny_qa, tweets_csv, tmp_path):
    code, _, stderr = run_cli("pack", tiny_qa, "--data", tweets_csv, "--out", tmp_path / "x", *FAST)
    assert code == 2 and "question + context" in stderr and not (tmp_path / "x").exists()


def test_pack_onnx(run_cli, tiny_qa, qa_jsonl, tmp_path):
    out = tmp_path / "qa"
    code, _, stderr = run_cli("pack", tiny_qa, "--data", qa_jsonl, "--out", out, *FAST)
    report = json.loads((out / "report.json").read_text())
    assert code == 0, stderr
    assert report["task"] == "question-answering"
    for artifact in report["artifacts"]:
        details = artifact["accuracy"]["details"]
        assert details["exact_match"] >= 0.9 and "f1_gold_artifact" in details
    outputs = {o["name"] for o in json.loads((out / "manifest.json").read_text())["artifacts"][0]["outputs"]}
    assert outputs == {"start_logits", "end_logits"}


def test_pack_bert_every_target_feeds_the_context_segment(run_cli, tiny_bert_qa, qa_jsonl, tmp_path):
    """BERT reads token_type_ids; converted files take them as an input, so they agree with the source."""
    out = tmp_path / "all"
    code, _, stderr = run_cli("pack", tiny_bert_qa, "--data", qa_jsonl, "--out", out, "--target",
                              "onnx,tflite,executorch,coreml", "--precision", "fp32,int8-dynamic,int8-weight",
                              "--sequence-length", "128", "--json", *FAST)  # 3 buckets, not 6
    report = json.loads((out / "report.json").read_text())
    assert code == 0, stderr
    built = {(a["target"], a["precision"]) for a in report["artifacts"] if a["path"]}
    assert {("onnx", "fp32"), ("tflite", "fp32"), ("executorch", "fp32"), ("coreml", "fp32")} <= built
    for artifact in report["artifacts"]:
        if artifact["accuracy"]:
            assert artifact["accuracy"]["details"]["exact_match"] >= 0.9, artifact["target"]
    manifest = json.loads((out / "manifest.json").read_text())
    tflite = next(a for a in manifest["artifacts"] if a["target"] == "tflite")
    assert "token_type_ids" in json.dumps(tflite)
