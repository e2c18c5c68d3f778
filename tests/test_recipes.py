"""Recipes: validation naming the bad key, overrides, placeholders, offline fallback, end-to-end runs."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

import capas.cli
from capas.api.recipe_report import hidden_speed_ratio, sweep_errors
from capas.api.recipes import (
    DataSection,
    ModelSection,
    load_recipe,
    load_recipe_data,
    parse_value,
    run_recipe,
    spec_variants,
)
from capas.data import load
from capas.data.subsets import adjust_training_split, reload_dataset
from capas.diagnostics.plots import plot_run
from capas.errors import CapasError
from capas.train import load_run

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


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 1\n" + MINIMAL, "'colour'"),
        (MINIMAL + "[plots]\nwaht = 'curves'\n", "'plots.waht'"),
        (MINIMAL.replace("[data]\n", "[data]\nfallbak = 'digits'\n"), "'data.fallbak'"),
        (MINIMAL.replace("[model]\n", "[model]\nactivation = 'relu'\n"), "'model.activation'"),
    ],
)
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
    with pytest.raises(CapasError, match=r"\[train\]: invalid training option.*epochs"):
        load_recipe(write(tmp_path, MINIMAL), {"train.epochs": "abc"})  # refused before any training


def test_a_misspelled_table_is_named_rather_than_the_missing_one(tmp_path):
    with pytest.raises(CapasError, match="unknown key 'modle'"):
        load_recipe(write(tmp_path, MINIMAL.replace("[model]", "[modle]")))


def test_a_directory_or_binary_file_is_an_error_not_a_traceback(tmp_path):
    with pytest.raises(CapasError, match="not a file"):
        load_recipe(tmp_path)
    binary = tmp_path / "r.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(CapasError, match="UTF-8"):
        load_recipe(binary)


def test_overrides_replace_and_add_nested_keys(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL), {"train.epochs": 2, "train.lr": 0.5, "data.options": {"n": 40}})
    assert recipe.train == {"epochs": 2, "lr": 0.5} and recipe.data.options == {"n": 40}
    with pytest.raises(CapasError, match="'train.epoks'"):
        load_recipe(write(tmp_path, MINIMAL), {"train.epoks": 2})
    with pytest.raises(CapasError, match="is a value, not a table"):
        load_recipe(write(tmp_path, MINIMAL), {"name.x": 1})


@pytest.mark.parametrize(
    ("raw", "value"), [("2", 2), ("0.1", 0.1), ("true", True), ("[1, 2]", [1, 2]), ('"full"', "full"), ("full", "full")]
)
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
    with pytest.raises(CapasError, match="unknown dataset 'semeoin'"):  # a typo is an error, not a fallback
        load_recipe_data(DataSection(name="semeoin", fallback="digits"), seed=0)
    with pytest.raises(CapasError, match="noise"):  # so is a bad option of a dataset that is here
        load_recipe_data(DataSection(name="moons", fallback="digits", options={"noise": -1}), seed=0)


def test_unknown_plot_kind_is_an_error_before_training(tmp_path):
    with pytest.raises(CapasError, match="plots.what.*unknown plot 'curve'"):
        load_recipe(write(tmp_path, MINIMAL + "[plots]\nwhat = ['curve']\n"))


TINY_XOR = {"train.epochs": 2, "data.options": {"n": 80, "noise": 0.2}}


def test_xor_recipe_end_to_end(tmp_path):
    result = run_recipe(RECIPES / "xor-boundary.toml", out=tmp_path / "xor", overrides=TINY_XOR, quiet=True)
    (variant,) = result.variants
    assert variant.run_dir == tmp_path / "xor" and len(variant.history) == 2
    run = load_run(variant.run_dir)  # a proper run dir
    assert run.config["data"]["name"] == "xor" and run.config["train"]["epochs"] == 2
    names = sorted(p.name for p in variant.plots)
    assert names == ["boundary.gif", "boundary.png", "curves.png", "hidden-dense1.png"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in variant.plots)
    report = result.report.read_text()
    assert report.startswith("# xor-boundary") and "| model | `2-4-2` | 22 | 2 |" in report
    assert f"{variant.test_metrics['test_accuracy']:.4f}" in report
    assert "![boundary.gif](plots/boundary.gif)" in report and "epochs = `2`" in report
    replotted = plot_run(variant.run_dir, "boundary", animate=True)  # `capas plot --animate` on the run
    assert [p.name for p in replotted] == ["boundary.png", "boundary.gif"]


def test_a_plot_that_cannot_apply_is_refused_before_training(tmp_path):
    sine = {"data.name": "sine", "data.options": {}, "model.loss": "mse", "train.epochs": 1}
    with pytest.raises(CapasError, match="cannot plot confusion: it needs a classification dataset"):
        run_recipe(
            RECIPES / "xor-boundary.toml",
            out=tmp_path / "c",
            overrides={**sine, "plots.what": ["curves", "confusion"]},
            quiet=True,
        )
    assert not (tmp_path / "c").exists()  # nothing was trained


def test_an_output_file_or_an_unknown_plot_layer_is_refused_before_training(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(CapasError, match="is a file"):
        run_recipe(RECIPES / "xor-boundary.toml", out=taken, overrides=TINY_XOR, quiet=True)
    with pytest.raises(CapasError, match="plots.layer: unknown layer 'dense9'.*dense1, dense2"):
        run_recipe(
            RECIPES / "xor-boundary.toml",
            out=tmp_path / "o",
            quiet=True,
            overrides={**TINY_XOR, "plots.layer": "dense9"},
        )
    assert not (tmp_path / "o").exists()


def test_all_plots_with_animation_skip_the_boundary_of_a_regression(tmp_path):
    sine = {"data.name": "sine", "data.options": {}, "model.loss": "mse", "train.epochs": 1}
    result = run_recipe(
        RECIPES / "xor-boundary.toml",
        out=tmp_path / "s",
        overrides={**sine, "plots.what": "all", "plots.animate": True},
        quiet=True,
    )
    (variant,) = result.variants
    assert sorted(p.name for p in variant.plots) == ["activations.png", "curves.png", "gradients.png", "weights.png"]


def test_sweep_keeps_a_zero_test_loss_and_speed_ratios_skip_the_output_layer():
    from types import SimpleNamespace

    perfect = SimpleNamespace(
        width=4,
        history=[{"train_loss": 0.0, "train_accuracy": 1.0}],
        test_metrics={"test_loss": 0.0, "test_accuracy": 1.0},
    )
    errors = sweep_errors([perfect])
    assert errors["test_loss"].tolist() == [0.0] and errors["test"].tolist() == [0.0]
    assert hidden_speed_ratio({"dense1": 0.01, "dense2": 0.5, "dense3": 9.0}) == ("dense1", "dense2", 0.02)
    assert hidden_speed_ratio({"dense1": 0.01, "dense2": 9.0}) is None


def test_width_sweep_writes_one_run_per_width_and_the_sweep_plot(tmp_path):
    sweep = 'spec = "{input}-{width}-{classes}"\nwidths = [2, 5]'
    recipe = write(tmp_path, MINIMAL.replace('spec = "{input}-3-{classes}"', sweep) + "[plots]\nwhat = []\n")
    result = run_recipe(
        recipe, out=tmp_path / "sweep", overrides={"data.options": {"n": 60}, "train.epochs": 2}, quiet=True
    )
    assert [v.label for v in result.variants] == ["width-2", "width-5"]
    assert [v.params for v in result.variants] == [2 * 2 + 2 + 2 * 2 + 2, 2 * 5 + 5 + 5 * 2 + 2]
    assert (tmp_path / "sweep" / "width-5" / "history.json").is_file()
    errors = sweep_errors(result.variants)
    np.testing.assert_allclose(errors["x"], [2, 5])
    np.testing.assert_allclose(errors["test"], [1 - v.test_metrics["test_accuracy"] for v in result.variants])
    np.testing.assert_allclose(errors["train"], [1 - v.history[-1]["train_accuracy"] for v in result.variants])
    assert result.extra_plots == [tmp_path / "sweep" / "sweep.png"] and result.extra_plots[0].stat().st_size > 1000
    report = result.report.read_text()
    assert "| width-2 | `2-2-2` |" in report and "![sweep.png](sweep.png)" in report


def test_fallback_is_recorded_in_the_report_and_the_speed_ratio_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: (_ for _ in ()).throw(URLError("offline")))
    overrides = {"train.epochs": 1, "data.train_size": 200, "plots.what": ["gradients"]}
    result = run_recipe(RECIPES / "vanishing-gradient.toml", out=tmp_path / "vg", overrides=overrides, quiet=True)
    assert result.data_name == "digits" and "mnist is not available offline" in result.data_note
    report = result.report.read_text()
    assert "**note:** mnist is not available offline" in report and "**digits**" in report
    (variant,) = result.variants
    w1, b1 = variant.initial_grad_norms["dense1"]
    w4, b4 = variant.initial_grad_norms["dense4"]
    assert f"| dense1 / dense4 | {b1 / b4:.4g} |" in report and f"| dense1 / dense4 | {w1 / w4:.4g} |" in report


def test_cli_run_with_overrides_and_json(tmp_path, capsys):
    recipe = write(tmp_path, MINIMAL)
    capas.cli.main(
        [
            "run",
            str(recipe),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "train.epochs=1",
            "--set",
            "data.options={n = 40}",
            "--quiet",
            "--json",
        ]
    )  # returns on success
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["report"] == str(tmp_path / "o" / "report.md") and summary["note"] is None
    (model,) = summary["models"]
    assert model["spec"] == "2-3-2" and 0 <= model["test"]["test_accuracy"] <= 1
    assert len(load_run(tmp_path / "o").history) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.epochs"], "--set expects key=value"),
        (["--set", "train.epoks=1"], "unknown key 'train.epoks'"),
    ],
)
def test_cli_run_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        capas.cli.main(["run", str(write(tmp_path, MINIMAL)), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_label_noise_flips_the_given_share_to_other_classes_and_reloads_identically():
    clean = load("digits", validation=0.0)
    noisy = adjust_training_split(clean, 500, 0.2)
    changed = noisy.y_train != clean.y_train[:500]
    assert int(changed.sum()) == 100  # exactly 20% of 500, each to a different class
    assert (noisy.x_train == clean.x_train[:500]).all() and (noisy.y_test == clean.y_test).all()
    assert noisy.options["label_noise"] == 0.2 and noisy.options["train_size"] == 500
    again = reload_dataset({"name": "digits", "options": noisy.options})
    assert (again.y_train == noisy.y_train).all()
    with pytest.raises(CapasError, match="classification"):
        adjust_training_split(load("sine"), label_noise=0.1)
