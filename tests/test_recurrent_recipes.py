"""The recurrent recipes: valid files, the forecast baseline they quote, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capas.api.recipes import load_recipe, run_recipe
from capas.data import load
from capas.data.sequences import persistence_mse

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
NAMES = ("adding-problem", "sequential-mnist", "reber", "forecast", "bptt-vanishing")


@pytest.mark.parametrize("name", NAMES)
def test_recurrent_recipes_are_valid(name):
    recipe = load_recipe(RECIPES / f"{name}.toml")
    assert recipe.name == name and recipe.model.spec


def test_the_forecast_recipe_quotes_the_persistence_baseline_of_its_split():
    recipe = load_recipe(RECIPES / "forecast.toml")
    data = load(recipe.data.name, seed=recipe.seed, validation=recipe.data.validation, **recipe.data.options)
    baseline = persistence_mse(data.x_test.numpy(), data.y_test.numpy())
    assert f"{baseline:.1e}".replace("e-0", "e-") in recipe.description
    assert 0.01 * baseline < float(data.y_test.var())  # far below predicting the mean


def test_bptt_vanishing_recipe_draws_the_time_gradients(tmp_path):
    tiny = {"data.options.n": 120, "data.options.length": 12, "train.epochs": 1}
    result = run_recipe(RECIPES / "bptt-vanishing.toml", out=tmp_path / "bv", overrides=tiny, quiet=True)
    for variant, layer in zip(result.variants, ("elman1", "lstm1"), strict=True):
        record = json.loads((variant.run_dir / "plots" / "time-gradients.json").read_text())
        assert len(record["norms"][layer]) == 12
        assert (variant.run_dir / "plots" / "time-gradients.png").is_file()
    assert "time-gradients.png" in result.report.read_text()
