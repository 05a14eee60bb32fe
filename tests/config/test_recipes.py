from pathlib import Path

import pytest

from infir.config import EMBEDDED_RECIPES, Recipe, RecipeError, load_recipe

RECIPES = sorted(EMBEDDED_RECIPES.glob("*.yaml"))


def test_there_are_shipped_recipes_and_tiny_is_one():
    assert "tiny" in {p.stem for p in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads_and_validates(path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe) and recipe.stages
    assert recipe.name


def test_override_changes_a_nested_value():
    recipe = load_recipe("tiny", ["pretrain.max_steps=7", "pretrain.optimizer.lr=2e-3", "seed=5"])
    assert recipe.pretrain.max_steps == 7
    assert recipe.pretrain.optimizer.lr == pytest.approx(2e-3)
    assert recipe.seed == 5


def test_unknown_key_names_the_key_the_file_and_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\npretrain:\n  max_steps: 3\n  lrr: 0.1\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert str(path) in msg and "pretrain.lrr" in msg and "unknown key" in msg and "line 4" in msg
    assert "max_steps" in msg  # lists the known keys


def test_wrong_type_names_the_expected_type(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\npretrain:\n  max_steps: lots\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert "pretrain.max_steps" in msg and "expected int" in msg and "'lots'" in msg and "line 3" in msg


def test_bad_override_is_reported_as_an_override():
    with pytest.raises(RecipeError) as err:
        load_recipe("tiny", ["pretrain.precision=fp8"])
    msg = str(err.value)
    assert "pretrain.precision" in msg and "override" in msg and "'fp32'" in msg


def test_stage_order_is_checked(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstages: [sft, pretrain]\n")
    with pytest.raises(RecipeError, match="pipeline order"):
        load_recipe(path)


def test_missing_recipe_lists_the_embedded_ones():
    with pytest.raises(RecipeError, match="tiny"):
        load_recipe("no-such-recipe")


def test_repo_recipes_folder_is_the_embedded_one():
    repo_recipes = Path(__file__).resolve().parents[2] / "recipes"
    assert {p.name for p in repo_recipes.glob("*.yaml")} == {p.name for p in RECIPES}


def test_override_indexes_lists():
    recipe = load_recipe("tiny", ["curate.sources.0.kwargs.max_docs=3"])
    assert recipe.curate.sources[0].kwargs["max_docs"] == 3
    with pytest.raises(RecipeError, match="not an item"):
        load_recipe("tiny", ["curate.sources.99.limit=3"])


def test_every_embedded_recipe_loads_by_its_name():
    from infir.config import EMBEDDED_RECIPES, load_recipe

    names = sorted(p.stem for p in EMBEDDED_RECIPES.glob("*.yaml"))
    assert "infir-vl-1.6b" in names  # a name with a dot in it
    for name in names:
        assert load_recipe(name, []).name, name
