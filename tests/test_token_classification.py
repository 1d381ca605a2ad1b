"""token-classification: spans grouped as the transformers pipeline groups them, agreement and entity F1 vs the
source, F1 vs gold tags (CoNLL columns, JSONL tags or tag ids), unlabelled text, and `pack` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepack.config import DataSpec
from edgepack.data import load
from edgepack.errors import DataError
from edgepack.registry import TASKS
from edgepack.source import resolve
from edgepack.tasks import detect_task
from edgepack.tasks.token_classification import group_spans, span_f1

from .catalog_models import NER_LABELS, build_tiny, write_conll, write_tagged_jsonl
from .conftest import SENTENCES

COVERS = {"task": ["token-classification"]}

FAST = ["--runs", "5", "--warmup", "1", "--limit", "24"]
TEXTS = [t for t, _ in SENTENCES]


@pytest.fixture(scope="module")
def tiny_ner(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-ner", "bert", "token-classification", NER_LABELS)


@pytest.fixture(scope="module")
def conll(tmp_path_factory):
    return write_conll(tmp_path_factory.mktemp("data") / "ner.conll")


def test_detected_from_the_architecture(tiny_ner):
    assert detect_task(resolve(str(tiny_ner))) == "token-classification"


@pytest.mark.parametrize("tags, spans", [
    (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 1), ("LOC", 3, 3)}),
    (["B-PER", "B-PER", "I-ORG"], {("PER", 0, 0), ("PER", 1, 1), ("ORG", 2, 2)}),  # B- starts a new entity
    (["I-PER", "I-PER", "O", "O"], {("PER", 0, 1)}),  # I- without B- still makes an entity, as in the pipeline
    (["PER", "PER", "LOC"], {("PER", 0, 1), ("LOC", 2, 2)}),  # tags without a prefix
    (["O", "O"], set()),
])
def test_groups_spans_like_simple_aggregation(tags, spans):
    assert group_spans(tags, list(range(len(tags)))) == spans


def test_span_f1_counts_exact_matches_only():
    assert span_f1([{("PER", 0, 1)}], [{("PER", 0, 1)}]) == 1.0
    assert span_f1([{("PER", 0, 0)}], [{("PER", 0, 1)}]) == 0.0
    assert span_f1([{("PER", 0, 1), ("LOC", 3, 3)}], [{("PER", 0, 1)}]) == pytest.approx(2 / 3)
    assert span_f1([set()], [set()]) == 1.0


def test_source_spans_match_the_transformers_pipeline(tiny_ner):
    """Our word-level spans of the source model are the pipeline's aggregation_strategy="simple" entities."""
    from transformers import pipeline

    task = TASKS.get("token-classification")(resolve(str(tiny_ner)))
    reference = task.reference(TEXTS, 128)
    ner = pipeline("token-classification", model=str(tiny_ner), aggregation_strategy="simple", device="cpu")
    checked = 0
    for text, row in zip(TEXTS, reference):
        starts = np.cumsum([0] + [len(w) + 1 for w in text.split()])[:-1]
        theirs = {(e["entity_group"], int(np.searchsorted(starts, e["start"], side="right")) - 1,
                   int(np.searchsorted(starts, e["end"] - 1, side="right")) - 1) for e in ner(text)}
        ours = task._spans(row[:, 0], row[:, 1])
        assert ours == theirs, text
        checked += len(ours)
    assert checked > 0  # the random model does predict entities, so the comparison is not vacuous


def test_compare_agreement_and_entity_f1(tiny_ner):
    task = TASKS.get("token-classification")(resolve(str(tiny_ner)))
    gold = [" ".join(["B-ORG" if w == "google" else "O" for w in t.split()]) for t in TEXTS]
    reference = task.reference(TEXTS, 128)
    same = task.compare(reference, reference.copy(), gold)
    assert same.metric == "token_agreement" and same.value == 1.0 and same.details["entity_f1"] == 1.0
    assert same.details["entity_f1_gold_source"] == same.details["entity_f1_gold_artifact"]
    changed = reference.copy()
    real = np.flatnonzero(changed[0, :, 1] >= 0)
    changed[0, real, 0] = (changed[0, real, 0] + 1) % len(NER_LABELS)  # every token of one sentence relabelled
    worse = task.compare(reference, changed, None)
    n_tokens = int((reference[:, :, 1] >= 0).sum())
    assert worse.value == pytest.approx(1 - len(real) / n_tokens) and worse.drop > 0
    assert worse.details["entity_f1"] < 1.0 and "entity_f1_gold_source" not in worse.details


def test_gold_f1_reads_tag_ids_through_id2label(tiny_ner):
    task = TASKS.get("token-classification")(resolve(str(tiny_ner)))
    assert task.gold_spans("3 4 0 5", 4) == {("ORG", 0, 1), ("LOC", 3, 3)}
    assert task.gold_spans("B-ORG I-ORG O B-LOC", 2) == {("ORG", 0, 1)}  # words the model did not see are cut


def test_word_ids_follow_whitespace_words_not_the_tokenizers_splits(tiny_ner):
    task = TASKS.get("token-classification")(resolve(str(tiny_ner)))
    ids = task.word_ids(["cars, road"], 16)[0]
    assert list(ids) == [-1, 0, 0, 1, -1]  # [CLS] cars , road [SEP]: "cars" and "," are one word


def test_conll_and_jsonl_data(tmp_path, conll):
    data = load(DataSpec(path=str(conll)))
    assert data.text_column == "tokens" and data.label_column == "tags" and len(data.texts) == 2 * len(SENTENCES)
    assert all(len(t.split()) == len(tags.split()) for t, tags in zip(data.texts, data.labels))
    assert "B-ORG" in " ".join(data.labels)
    ids = load(DataSpec(path=str(write_tagged_jsonl(tmp_path / "ids.jsonl", ids=True))))
    assert ids.labels[5].split()[0] == str(NER_LABELS.index("B-ORG"))  # "google cars drive ..." as tag ids
    (tmp_path / "bad.jsonl").write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(DataError, match="2 tokens but 1 tags"):
        load(DataSpec(path=str(tmp_path / "bad.jsonl")))
    (tmp_path / "bad.conll").write_text("word\n")
    with pytest.raises(DataError, match="no tag column"):
        load(DataSpec(path=str(tmp_path / "bad.conll")))


def test_pack_onnx_with_gold_tags(run_cli, tiny_ner, conll, tmp_path):
    out = tmp_path / "ner"
    code, stdout, stderr = run_cli("pack", tiny_ner, "--data", conll, "--out", out, "--json", *FAST)
    report = json.loads((out / "report.json").read_text())
    assert code == 0, stderr
    assert report["task"] == "token-classification" and report["data"]["labels"]
    by_precision = {a["precision"]: a for a in report["artifacts"]}
    assert set(by_precision) == {"fp32", "fp16", "int8-dynamic"}
    for artifact in by_precision.values():
        details = artifact["accuracy"]["details"]
        assert artifact["accuracy"]["metric"] == "token_agreement" and details["tokens"] > 0
        assert {"entity_f1", "entity_f1_gold_source", "entity_f1_gold_artifact"} <= set(details)
    assert by_precision["fp32"]["accuracy"]["value"] == 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"][0]["outputs"][0]["name"] == "logits"


def test_pack_on_unlabelled_text(run_cli, tiny_ner, tweets_csv, tmp_path):
    code, _, stderr = run_cli("pack", tiny_ner, "--data", tweets_csv, "--out", tmp_path / "a", "--precision", "fp32",
                              *FAST)
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    details = report["artifacts"][0]["accuracy"]["details"]
    # the tweets' sentiment labels are not tags: only agreement with the source is measured
    assert code == 0, stderr
    assert details["token_agreement"] == 1.0 and "entity_f1_gold_source" not in details
    assert "not one tag per word" in details["labels_ignored"]


def test_pack_every_converted_target(run_cli, tiny_ner, conll, tmp_path):
    """TFLite (signature buckets), ExecuTorch (methods) and Core ML (file checks on Linux) from the same model."""
    out = tmp_path / "all"
    code, _, stderr = run_cli("pack", tiny_ner, "--data", conll, "--out", out, "--target", "tflite,executorch,coreml",
                              "--precision", "fp32,int8-dynamic,int8-weight", "--json", *FAST)
    report = json.loads((out / "report.json").read_text())
    built = {(a["target"], a["precision"]) for a in report["artifacts"] if a["path"]}
    assert code == 0, stderr
    assert built == {("tflite", "fp32"), ("tflite", "int8-dynamic"), ("tflite", "int8-weight"),
                     ("executorch", "fp32"), ("executorch", "int8-dynamic"), ("coreml", "fp32"),
                     ("coreml", "int8-weight")}
    ran = [a for a in report["artifacts"] if a["accuracy"]]
    assert ran and all(a["accuracy"]["details"]["token_agreement"] >= 0.98 for a in ran)
