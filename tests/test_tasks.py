import numpy as np
import pytest

from edgepack.errors import UsageError
from edgepack.registry import TASKS
from edgepack.source import resolve
from edgepack.tasks import detect_task
from edgepack.tasks.feature_extraction import probe_check

from .conftest import SENTENCES

COVERS = {'task': ['feature-extraction', 'text-classification']}

TEXTS = [t for t, _ in SENTENCES]
LABELS = [label for _, label in SENTENCES]




def test_detects_tasks(tiny_embedder, tiny_classifier):
    assert detect_task(resolve(str(tiny_embedder))) == "feature-extraction"
    assert detect_task(resolve(str(tiny_classifier))) == "text-classification"


def test_undetectable_task_asks_for_task_flag(tiny_classifier):
    source = resolve(str(tiny_classifier))
    source.config["architectures"] = ["BertForMaskedLM"]
    with pytest.raises(UsageError, match="--task"):
        detect_task(source)


def test_embedding_reference_matches_sentence_transformers(tiny_embedder):
    from sentence_transformers import SentenceTransformer

    task = TASKS.get("feature-extraction")(resolve(str(tiny_embedder)))
    assert task.pooling == "mean" and task.normalize and task.output_name == "sentence_embedding"
    ours = task.reference(TEXTS, 128)
    theirs = SentenceTransformer(str(tiny_embedder), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_embedding_compare_scores_cosine_and_probe(tiny_embedder):
    task = TASKS.get("feature-extraction")(resolve(str(tiny_embedder)))
    ref = task.reference(TEXTS, 128)
    same = task.compare(ref, ref.copy(), LABELS)
    assert same.metric == "cosine_mean" and same.value == pytest.approx(1.0, abs=1e-6) and same.drop < 1e-6
    assert same.details["probe_agreement"] == 1.0
    noisy = ref + np.random.default_rng(0).normal(0, 0.5, ref.shape).astype(np.float32)
    worse = task.compare(ref, noisy, None)
    assert worse.value < 0.95 and worse.drop > 0.05 and worse.details["cosine_p1"] <= worse.value
    spread = worse.details["cosine_histogram"]  # the per-sample distribution, compact: 20 bins
    assert sum(spread["counts"]) == len(TEXTS) and len(spread["edges"]) == 21
    assert spread["edges"][0] == pytest.approx(worse.details["cosine_min"], abs=1e-6)


def test_probe_agreement_drops_when_embeddings_are_scrambled():
    rng = np.random.default_rng(0)
    labels = ["a", "b"] * 100
    ref = rng.normal(size=(200, 8)) + np.array([[3.0] * 8 if label == "a" else [-3.0] * 8 for label in labels])
    scrambled = ref[rng.permutation(200)]
    assert probe_check(ref, ref, labels)["probe_agreement"] == 1.0
    assert probe_check(ref, scrambled, labels)["probe_agreement"] < 0.8


def test_plain_transformers_model_gets_mean_pooling(tmp_path):
    from .conftest import build_tiny_embedder

    folder = build_tiny_embedder(tmp_path / "plain", sentence_transformers_layout=False)
    task = TASKS.get("feature-extraction")(resolve(str(folder)))
    assert task.graph_pooling() == ("mean", False) and task.output_name == "sentence_embedding"
    # Without an in-graph pooled output, the harness pools the hidden states itself.
    hidden = np.ones((1, 3, 4), dtype=np.float32) * np.array([1, 2, 3])[None, :, None]
    pooled = task.read_outputs({"last_hidden_state": hidden}, {"attention_mask": np.array([[1, 1, 0]])})
    np.testing.assert_allclose(pooled, [[1.5] * 4])


def test_classification_accuracy_with_mapped_labels(tiny_classifier):
    task = TASKS.get("text-classification")(resolve(str(tiny_classifier)))
    ref = task.reference(TEXTS, 128)
    assert ref.shape == (len(TEXTS), 3)
    result = task.compare(ref, ref, LABELS)
    assert result.metric == "top1_agreement" and result.drop == 0.0 and result.details["accuracy_drop"] == 0.0
    flipped = task.compare(ref, -ref, LABELS)
    assert flipped.value < 1.0 and flipped.drop == 1.0 - flipped.value


def test_classification_with_unmatched_labels_uses_agreement(tiny_classifier):
    task = TASKS.get("text-classification")(resolve(str(tiny_classifier)))
    ref = np.eye(3)[[0, 1, 2, 0]]
    result = task.compare(ref, ref[[0, 1, 2, 1]], ["x", "y", "z", "x"])
    assert result.metric == "top1_agreement" and result.value == 0.75 and "labels_ignored" in result.details
    assert sorted(result.details["agreement_by_class"].values()) == [[1, 1], [1, 1], [1, 2]]  # by source class
    assert task.label_ids(["0", "2", "1"]).tolist() == [0, 2, 1]
    assert task.label_ids(["0", "7"]) is None and task.label_ids(["-1"]) is None  # not class ids of this model


def test_cancelling_errors_do_not_hide_changed_predictions(tiny_classifier):
    task = TASKS.get("text-classification")(resolve(str(tiny_classifier)))
    ref = np.eye(3)[[0, 1, 2, 0]]  # right on samples 0 and 3 below, wrong on 1 and 2
    cand = np.eye(3)[[1, 0, 2, 0]]  # wrong on 0, right on 1: the errors cancel
    result = task.compare(ref, cand, ["negative", "negative", "neutral", "negative"])
    assert result.drop == 0.5  # half the predictions changed ...
    assert result.details["accuracy_drop"] == 0.0  # ... and accuracy alone would not show it


@pytest.mark.parametrize("module_type, message", [
    ("sentence_transformers.models.Dense", "module Dense"),
])
def test_unsupported_sentence_transformers_modules_are_refused(tmp_path, module_type, message):
    import json
    import shutil

    from .conftest import build_tiny_embedder

    folder = build_tiny_embedder(tmp_path / "m")
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": module_type})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UsageError, match=message):
        TASKS.get("feature-extraction")(resolve(str(folder)))
    shutil.rmtree(folder / "1_Pooling")
    (folder / "modules.json").unlink()
    assert TASKS.get("feature-extraction")(resolve(str(folder))).pooling == "mean"


def test_unsupported_pooling_mode_is_refused(tmp_path):
    import json

    from .conftest import build_tiny_embedder

    folder = build_tiny_embedder(tmp_path / "m")
    cfg = json.loads((folder / "1_Pooling" / "config.json").read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_weightedmean_tokens=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="weightedmean"):
        TASKS.get("feature-extraction")(resolve(str(folder)))
    cfg.update(pooling_mode_mean_tokens=True, pooling_mode_max_tokens=True, pooling_mode_weightedmean_tokens=False)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="concatenates several poolings"):
        TASKS.get("feature-extraction")(resolve(str(folder)))


@pytest.mark.parametrize("fixture, task, preprocessor, files", [
    ("tiny_classifier", "text-classification", "tokenizer", ("config.json", "model.safetensors")),
    ("tiny_cnn", "image-classification", "processor", ("config.json", "model.safetensors")),
])
def test_folder_without_preprocessor_files_is_a_usage_error(request, tmp_path, fixture, task, preprocessor, files):
    import shutil

    for name in files:  # the weights and config, without the tokenizer or image processor beside them
        shutil.copy(request.getfixturevalue(fixture) / name, tmp_path / name)
    with pytest.raises(UsageError, match="cannot load the"):
        getattr(TASKS.get(task)(resolve(str(tmp_path))), preprocessor)


def test_image_top5_overlap_counts_shared_best_classes(tiny_cnn):
    task = TASKS.get("image-classification")(resolve(str(tiny_cnn)))
    reference = np.array([[9.0, 8, 7, 6, 5, 4, 3], [1, 2, 3, 4, 5, 6, 7]])
    candidate = np.array([[9.0, 8, 7, 6, 0, 4, 3], [1, 2, 3, 4, 5, 6, 7]])  # row 0: class 4 leaves its top 5
    accuracy = task.compare(reference, candidate, None)
    assert accuracy.details["top1_agreement"] == 1.0 and accuracy.details["top5_overlap"] == pytest.approx(0.9)
