"""Recipes: validation naming the bad key, overrides, placeholders, offline fallback, end-to-end runs."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from urllib.error import URLError

import pytest

from capas.data import load
from capas.errors import CapasError
from capas.recipes import (
    DataSection,
    ModelSection,
    load_recipe,
    load_recipe_data,
    parse_value,
    spec_variants,
)

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SHIPPED = ["vanishing-gradient", "semeion-2d", "xor-boundary", "spirals-depth", "mnist-depth", "double-descent"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


MINIMAL = """
name = "tiny"
[data]
name = "xor"
[model]
spec = "{input}-3-{classes}"
[train]
epochs = 3
"""


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_validate(name):
    recipe = load_recipe(RECIPES / f"{name}.toml")
    assert recipe.name == name and recipe.description


def test_vanishing_gradient_recipe_is_nielsens_protocol():
    recipe = load_recipe(RECIPES / "vanishing-gradient.toml")
    assert recipe.model.spec == "{input}-30-30-30-30-{classes}" and recipe.model.act == "sigmoid"
    assert recipe.data.train_size == 1000 and recipe.data.fallback == "digits"
    assert recipe.train["batch_size"] == "full" and recipe.train["lr"] == 0.1 and recipe.train["epochs"] == 500
    assert recipe.train["l2"] == pytest.approx(5 / 1000)  # Nielsen's lambda / n


@pytest.mark.parametrize(("text", "key"), [
    ("colour = 1\n" + MINIMAL, "'colour'"),
    (MINIMAL + "[plots]\nwaht = 'curves'\n", "'plots.waht'"),
    (MINIMAL.replace("[data]\n", "[data]\nfallbak = 'digits'\n"), "'data.fallbak'"),
    (MINIMAL.replace("[model]\n", "[model]\nactivation = 'relu'\n"), "'model.activation'"),
])
def test_unknown_keys_are_errors_naming_the_key(tmp_path, text, key):
    with pytest.raises(CapasError, match=f"unknown key {key}"):
        load_recipe(write(tmp_path, text))


def test_unknown_training_option_is_an_error_listing_the_options(tmp_path):
    with pytest.raises(CapasError, match=r"unknown key 'train.epoch'.*epochs"):
        load_recipe(write(tmp_path, MINIMAL.replace("epochs = 3", "epoch = 3")))


def test_wrong_type_and_bad_toml_are_errors(tmp_path):
    with pytest.raises(CapasError, match="seed"):
        load_recipe(write(tmp_path, 'seed = "x"\n' + MINIMAL))
    with pytest.raises(CapasError, match="not valid TOML"):
        load_recipe(write(tmp_path, "name = \n"))
    with pytest.raises(CapasError, match="no recipe at"):
        load_recipe(tmp_path / "missing.toml")


def test_overrides_replace_and_add_nested_keys(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL), {"train.epochs": 2, "train.lr": 0.5, "data.options": {"n": 40}})
    assert recipe.train == {"epochs": 2, "lr": 0.5} and recipe.data.options == {"n": 40}
    with pytest.raises(CapasError, match="'train.epoks'"):
        load_recipe(write(tmp_path, MINIMAL), {"train.epoks": 2})
    with pytest.raises(CapasError, match="is a value, not a table"):
        load_recipe(write(tmp_path, MINIMAL), {"name.x": 1})


@pytest.mark.parametrize(("raw", "value"), [("2", 2), ("0.1", 0.1), ("true", True), ("[1, 2]", [1, 2]),
                                            ('"full"', "full"), ("full", "full")])
def test_set_values_are_parsed_as_toml(raw, value):
    assert parse_value(raw) == value


def test_placeholders_and_width_sweeps():
    data = load("digits")
    section = ModelSection(spec="{input}-{width}-{classes}", widths=[3, 7])
    assert spec_variants(section, data) == [("width-3", "1x8x8-3-10", 3), ("width-7", "1x8x8-7-10", 7)]
    pair = ModelSection(spec=["{input}-5-{classes}", "{input}-5-5-{classes}"])
    assert [s for _, s, _ in spec_variants(pair, data)] == ["1x8x8-5-10", "1x8x8-5-5-10"]
    with pytest.raises(CapasError, match="placeholder"):
        spec_variants(ModelSection(spec="{inputs}-3-2"), data)
    with pytest.raises(ValueError, match="widths"):
        ModelSection(spec="{input}-3-2", widths=[1])


def test_train_size_keeps_the_first_samples_in_file_order():
    data, note = load_recipe_data(DataSection(name="digits", train_size=100, validation=0.0), seed=0)
    full = load("digits", validation=0.0)
    assert note is None and len(data.x_train) == 100
    assert (data.x_train == full.x_train[:100]).all() and data.options["train_size"] == 100


def test_offline_dataset_falls_back_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))

    def offline(url, timeout):
        raise URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    data, note = load_recipe_data(DataSection(name="semeion", fallback="digits"), seed=0)
    assert data.name == "digits"
    assert note.startswith("semeion is not available offline") and "fallback dataset digits" in note
    with pytest.raises(CapasError, match="semeion"):
        load_recipe_data(DataSection(name="semeion"), seed=0)
