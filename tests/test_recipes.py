"""Every shipped recipe is proven: `pack --recipe NAME` runs end to end on a tiny random model of the recipe's model
type (built from a small config of that type), with the recipe's own precisions, gates, devices and default data,
so a recipe cannot rot. Each recipe runs once on ONNX; then each (model type, task) of the catalog runs once on all
the other targets its recipes name, at fp32 and a share of the compressed precisions they name (every such target
and precision once in the suite), on one small sequence bucket (CI's budget)."""

from __future__ import annotations

import json

import pytest
import yaml

from edgepack.config import Recipe, list_names, load_named
from edgepack.plan import load_recipe
from edgepack.registry import TARGETS
from edgepack.source import resolve

from .catalog_models import IMAGE_CONFIGS, NER_LABELS, TEXT_CONFIGS, build_tiny
from .conftest import IMAGE_CLASSES

COVERS = {"task": ["feature-extraction", "text-classification", "token-classification", "question-answering",
                   "image-classification"]}

FAST = ["--runs", "5", "--warmup", "1", "--limit", "16"]
DEFAULT_TYPE = {"image-classification": "resnet"}  # recipes that name no model: any model of the task


def _labels(recipe: Recipe) -> list[str] | None:
    if recipe.task == "token-classification":
        return NER_LABELS
    if recipe.task == "image-classification":
        return list(IMAGE_CLASSES)  # the test images' folder names: accuracy is scored too
    if recipe.task == "text-classification":
        model = recipe.model or ""
        return ["NEGATIVE", "POSITIVE"] if "sst-2" in model else ["negative", "neutral", "positive"]
    return None


def test_there_are_at_least_ten_recipes_naming_a_hub_model():
    recipes = [load_named("recipes", n, Recipe) for n in list_names("recipes")]
    named = [r for r in recipes if r.model]
    assert len(recipes) >= 10 and len(named) >= 10
    assert all("/" in r.model and r.model_type and r.devices for r in named)
    tasks = {r.task for r in named}
    assert {"feature-extraction", "text-classification", "token-classification", "question-answering",
            "image-classification"} <= tasks


@pytest.mark.parametrize("task", sorted({load_named("recipes", n, Recipe).task for n in list_names("recipes")}))
def test_each_tasks_default_recipe_finds_its_data_from_any_folder(task, tmp_path, monkeypatch):
    from edgepack.data import locate

    monkeypatch.chdir(tmp_path)  # a shipped recipe's relative data path means the file in the recipes folder
    recipe = load_recipe(None, task)
    assert recipe.default_for_task and (recipe.data is None or locate(recipe.data).is_file())


@pytest.mark.parametrize("name", list_names("recipes"))
def test_every_default_in_a_recipe_says_why(name):
    """Each top-level field after the description (a default the recipe sets) has a comment on or above it."""
    from edgepack.config import data_dir

    lines = (data_dir("recipes") / f"{name}.yaml").read_text().splitlines()
    explained = {"targets", "precisions", "sequence_length", "devices", "data", "gates"}
    for i, line in enumerate(lines):
        key = line.split(":")[0]
        if key in explained and not line.startswith(" "):
            above = lines[i - 1].lstrip()
            assert "#" in line or above.startswith("#") or key in ("data", "gates") and "#" in lines[i + 1], \
                f"{name}: {key} has no comment saying why"


@pytest.mark.parametrize("name", list_names("recipes"))
def test_recipe_packs_end_to_end_on_a_tiny_model_of_its_type(name, run_cli, image_folder, tmp_path):
    recipe = load_named("recipes", name, Recipe)
    if recipe.task == "text-generation":  # a causal LM with its chat template and generation config
        from .test_text_generation import build_tiny_llama

        model_type = "llama"
        model = build_tiny_llama(tmp_path / "model", max_positions=recipe.context_length or 2048)
    else:
        model_type = recipe.model_type or DEFAULT_TYPE.get(recipe.task, "bert")
        assert model_type in TEXT_CONFIGS or model_type in IMAGE_CONFIGS, f"no tiny config for {model_type}"
        model = build_tiny(tmp_path / "model", model_type, recipe.task, _labels(recipe), recipe.sequence_length)
    source = resolve(str(model))
    assert source.config["model_type"] == model_type
    for target in recipe.targets:  # the targets the run below leaves out still accept the model
        assert TARGETS.get(target).unsupported(source, recipe.task) is None, target

    data = ["--data", image_folder] if recipe.data is None else []
    out = tmp_path / "out"
    code, _, stderr = run_cli("pack", model, "--recipe", name, "--target", "onnx", *data, "--out", out, *FAST)
    assert (out / "report.json").is_file(), (code, stderr)
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"] == name and report["task"] == recipe.task
    assert report["devices"] == recipe.devices
    onnx = TARGETS.get("onnx")
    onnx_precisions = [p for p in recipe.precisions if p in onnx.precisions
                       and recipe.task not in onnx.not_for_tasks.get(p, ())]
    assert [a["precision"] for a in report["artifacts"]] == onnx_precisions
    failed = [(a["precision"], c["name"], c["detail"]) for a in report["artifacts"] for c in a["checks"]
              if not c["passed"]]
    assert code == 0 and failed == [], (stderr, failed)
    for artifact in report["artifacts"]:
        assert artifact["accuracy"]["metric"] and artifact["latency_ms"]["devices"].keys() == set(recipe.devices)


def _converted_groups() -> dict[tuple[str, str], dict]:
    """(model type, task) -> the first recipe of it and, per non-ONNX target its recipes name, the precisions to
    build: fp32 (the conversion itself) and a share of the compressed precisions the recipes name for that target,
    each (target, precision) given to the model type that has the fewest so far: every one is built once in the
    suite, and no run builds them all (CI's budget)."""
    groups: dict[tuple[str, str], dict] = {}
    wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (target, precision) -> groups whose recipes name it
    for name in list_names("recipes"):
        recipe = load_named("recipes", name, Recipe)
        key = (recipe.model_type or DEFAULT_TYPE.get(recipe.task, "bert"), recipe.task)
        group = groups.setdefault(key, {"recipe": name, "targets": {}})
        for target in recipe.targets:
            offered = TARGETS.get(target).precisions
            if target == "onnx":
                continue
            group["targets"].setdefault(target, {"fp32"})
            for precision in recipe.precisions:
                if precision in offered and precision != "fp32":
                    keys = wanted.setdefault((target, precision), [])
                    keys += [] if key in keys else [key]
    for (target, precision), keys in sorted(wanted.items()):
        least = min(keys, key=lambda k: (len(groups[k]["targets"][target]),
                                         sum(len(p) for p in groups[k]["targets"].values()), k))
        groups[least]["targets"][target].add(precision)
    return {key: group for key, group in groups.items() if group["targets"]}


CONVERTED = _converted_groups()
# One fixed-shape entry point, not four: conversion time is per bucket. 64: the QA data's longest question is 43
# tokens of the tiny vocabulary.
ONE_BUCKET = 64


@pytest.mark.parametrize("model_type,task", sorted(CONVERTED))
def test_recipes_other_targets_and_precisions_on_a_tiny_model_of_their_type(model_type, task, run_cli,
                                                                           image_folder, tmp_path):
    group = CONVERTED[(model_type, task)]
    recipe = load_recipe(group["recipe"], None)  # its data path resolved
    model = build_tiny(tmp_path / "model", model_type, task, _labels(recipe), recipe.sequence_length)
    small = recipe.model_copy(update={"sequence_length": ONE_BUCKET, "sequence_buckets": [ONE_BUCKET]})
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(small.model_dump(mode="json", exclude_none=True)))
    precisions = sorted(set().union(*group["targets"].values()))  # a target builds those of them it offers
    data = ["--data", image_folder] if recipe.data is None else []
    out = tmp_path / "out"
    code, _, stderr = run_cli("pack", model, "--recipe", recipe_file, "--target", ",".join(group["targets"]),
                              "--precision", ",".join(precisions), *data, "--out", out, *FAST[:4], "--limit", "8")
    assert (out / "report.json").is_file(), (code, stderr)
    report = json.loads((out / "report.json").read_text())
    built = {(a["target"], a["precision"]) for a in report["artifacts"]}
    wanted = {(t, p) for t, ps in group["targets"].items() for p in ps}
    assert wanted <= built, wanted - built
    failed = [(a["target"], a["precision"], c["name"], c["detail"]) for a in report["artifacts"] for c in a["checks"]
              if not c["passed"]]
    assert code == 0 and failed == [], (stderr, failed)
