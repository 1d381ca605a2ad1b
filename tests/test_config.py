import pytest

from edgepack.config import Gates, Recipe, list_names, load_named, load_yaml_model
from edgepack.errors import ConfigError, UnknownName


@pytest.mark.parametrize("name", list_names("recipes"))
def test_every_shipped_recipe_validates(name):
    recipe = load_named("recipes", name, Recipe)
    assert recipe.name == name
    if recipe.data is None:  # no offline corpus for this task (images): the recipe must say what to pass
        assert "--data" in recipe.description, "a shipped recipe names offline data or says to pass --data"
    else:
        from edgepack.data import locate
        from edgepack.plan import load_recipe

        # (a shipped recipe's relative data path means the file in the recipes folder: load_recipe resolves it)
        assert locate(load_recipe(name, None).data).exists(), "a shipped recipe's evaluation data is available offline"


def test_the_required_recipes_ship():
    names = set(list_names("recipes"))
    assert "minilm-embeddings" in names
    tasks = {load_named("recipes", n, Recipe).task for n in names}
    assert {"feature-extraction", "text-classification", "image-classification"} <= tasks


def test_each_task_has_at_most_one_default_recipe():
    recipes = [load_named("recipes", n, Recipe) for n in list_names("recipes")]
    defaults = [r.task for r in recipes if r.default_for_task]
    assert len(defaults) == len(set(defaults))


def test_unknown_recipe_lists_valid_names():
    with pytest.raises(UnknownName) as err:
        load_named("recipes", "no-such-recipe", Recipe)
    assert "minilm-embeddings" in str(err.value)


@pytest.mark.parametrize("body, field", [
    ("name: x\ndescription: d\ntask: feature-extraction\nsequence_lenght: 64\n", "sequence_lenght"),
    ("name: x\ndescription: d\ntask: feature-extraction\nsequence_length: many\n", "sequence_length"),
    ("name: x\ndescription: d\ntask: translation\n", "task"),
    ("name: x\ndescription: d\ntask: feature-extraction\ngates: {max_size_mb: -3}\n", "gates.max_size_mb"),
    ("name: x\ndescription: d\ntask: feature-extraction\nprecisions: [int3]\n", "precisions"),
    ("description: d\ntask: feature-extraction\n", "name"),
    ("name: x\ndescription: d\ntask: feature-extraction\nsequence_buckets: [32, 0]\n", "sequence_buckets.1"),
    ("name: x\ndescription: d\ntask: feature-extraction\ntargets: [onnx, tensorrt]\n", "targets"),
    ("name: x\ndescription: d\ntask: feature-extraction\ndevices: [toaster]\n", "devices"),
])
def test_malformed_recipe_names_the_field(tmp_path, body, field):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_yaml_model(path, Recipe)
    assert f"'{field}'" in str(err.value) and str(path) in str(err.value)


def test_invalid_yaml_and_non_mapping(tmp_path):
    (tmp_path / "a.yaml").write_text("name: [unclosed\n")
    (tmp_path / "b.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_model(tmp_path / "a.yaml", Recipe)
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml_model(tmp_path / "b.yaml", Recipe)


def test_cli_gates_override_recipe_gates():
    merged = Gates(max_accuracy_drop=0.01, max_size_mb=50).merged(Gates(max_size_mb=20))
    assert merged.max_accuracy_drop == 0.01 and merged.max_size_mb == 20


def test_a_recipe_files_data_path_is_relative_to_the_recipe(tmp_path, monkeypatch):
    from edgepack.plan import load_recipe

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "recipe.yaml").write_text("name: mine\ndescription: d\ntask: text-classification\n"
                                        "data: {path: data/eval.csv, text_column: text}\n")
    monkeypatch.chdir(tmp_path)  # edgepack run from elsewhere than the recipe's folder
    assert load_recipe("project/recipe.yaml", None).data.path == str(folder.relative_to(tmp_path) / "data/eval.csv")
    (folder / "abs.yaml").write_text("name: mine\ndescription: d\ntask: text-classification\n"
                                     f"data: {{path: {tmp_path / 'x.csv'}}}\n")
    assert load_recipe(str(folder / "abs.yaml"), None).data.path == str(tmp_path / "x.csv")
