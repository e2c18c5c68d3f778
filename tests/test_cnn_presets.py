"""Presets by name (capas.models.presets; ``capas train --model lenet5``) and the
``--augment`` option through the command line; recipes sweeping ``model.augment``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from capas.api.recipes import load_recipe
from capas.cli import _register, app
from capas.diagnostics.summary import summarize
from capas.errors import SpecError, TrainingError
from capas.models.presets import PRESETS, preset, resolve


def test_presets_build_with_their_published_sizes():
    counts = {name: summarize(spec) for name, spec in PRESETS.items()}
    assert (counts["lenet5"].total_params, counts["lenet5"].connections) == (60_840, 340_908)
    assert counts["nielsen-ch6"].layers[3].output_shape == (40, 4, 4)  # Nielsen: 40 x 4 x 4 into 1,000 units
    assert counts["lenet"].layers[4].params == 800 * 500 + 500  # 50 x 4 x 4 into 500 units
    assert counts["fashion-inception"].total_params < 20_000
    assert all(summary.output_shape == (10,) for summary in counts.values())
    assert resolve("lenet5") == preset("lenet5") and resolve("784-30-10") == "784-30-10"
    with pytest.raises(SpecError, match="unknown preset 'lenet7'; presets: lenet5"):
        preset("lenet7")


def test_cli_trains_a_conv_net_with_augmentation_and_refuses_a_bad_spec(tmp_path):
    _register()
    run = tmp_path / "run"
    args = ["train", "--data", "digits", "--model", "1x8x8 c3x3x8 mp2 10", "--epochs", "2", "--quiet", "--json"]
    result = CliRunner().invoke(app, [*args, "--augment", "rotate=10,crop=1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["test_accuracy"] > 0.5
    assert json.loads((run / "config.json").read_text())["train"]["augment"] == "rotate=10,crop=1"
    bad = CliRunner().invoke(app, [*args, "--augment", "spin=3", "--out", str(tmp_path / "bad")])
    assert isinstance(bad.exception, TrainingError) and "unknown augmentation 'spin'" in str(bad.exception)


def test_recipes_of_the_issue_load():
    names = {"lenet-mnist": None, "nielsen-ch6": "crop=1", "augment-small": None, "fashion-cnn": "flip,crop=2"}
    for name, augment in names.items():
        recipe = load_recipe(f"recipes/{name}.toml")
        assert recipe.train.get("augment") == augment
    assert load_recipe("recipes/augment-small.toml").model.augment == ["none", "rotate=12,crop=2,scale=0.1,elastic=2"]


def test_a_recipe_compares_with_and_without_augmentation(tmp_path):
    from capas.api.recipes import run_recipe

    path = tmp_path / "aug.toml"
    path.write_text(
        'name = "aug"\nseed = 0\n[data]\nname = "digits"\ntrain_size = 200\nvalidation = 0.0\n'
        '[model]\nspec = "{input} c3x3x4 mp2 {classes}"\naugment = ["none", "rotate=10,crop=1"]\n'
        "[train]\nepochs = 2\nbatch_size = 32\n[plots]\nwhat = []\n"
    )
    result = run_recipe(path, out=tmp_path / "out", quiet=True)
    labels = [variant.label for variant in result.variants]
    assert labels == ["no-augment", "augment-rotate-10-crop-1"]
    configs = [json.loads((tmp_path / "out" / label / "config.json").read_text())["train"] for label in labels]
    assert [c["augment"] for c in configs] == [None, "rotate=10,crop=1"]
    first, second = (v.test_metrics["test_accuracy"] for v in result.variants)
    assert first != second  # same initial weights and batches; only the augmentation differs
    report = result.report.read_text()
    assert "| no-augment |" in report and "| augment-rotate-10-crop-1 |" in report


def test_capas_summary_of_a_preset_prints_connections():
    _register()
    result = CliRunner().invoke(app, ["summary", "lenet5", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert (record["total_params"], record["connections"]) == (60_840, 340_908)
    assert [row["connections"] for row in record["layers"]][:3] == [122_304, 5_880, 151_600]
