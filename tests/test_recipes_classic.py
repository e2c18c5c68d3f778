"""The classic MNIST recipes of issue 19 (DBN, SdA, dropout/maxout, the tutorial MLP): their
settings, and the ``[pretrain]`` table end to end on 300 of scikit-learn's 8x8 digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from capas.api.recipes import load_recipe, run_recipe, spec_variants
from capas.data import load
from capas.errors import CapasError
from capas.models import build
from capas.train import rundir

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
CLASSIC = ["dbn-mnist", "sda-mnist", "dropout-maxout", "mlp-tanh-500"]
#: the recipes on 300 digits (1x8x8), smaller hidden layers, one epoch of each stage
TINY = {
    "data.name": "digits",
    "data.train_size": 300,
    "model.spec": "{input}-24-24-{classes}",
    "train.epochs": 2,
    "plots.what": ["curves"],
}


@pytest.mark.parametrize("name", CLASSIC)
def test_classic_recipes_validate_and_use_all_60000_training_images(name):
    recipe = load_recipe(RECIPES / f"{name}.toml")
    assert recipe.data.name == "mnist" and recipe.data.validation == 0.0  # all 60,000 training images
    assert recipe.train["optimizer"] == "sgd" and recipe.train["scheduler"] == "cosine"


def test_the_recipes_build_the_papers_networks():
    mnist_like = type("D", (), {"input_shape": (1, 28, 28), "num_classes": 10, "task": "classification"})()
    variants = {n: spec_variants(load_recipe(RECIPES / f"{n}.toml").model, mnist_like) for n in CLASSIC}
    ((_, tutorial, _),) = variants["mlp-tanh-500"]
    assert sum(p.numel() for p in build(tutorial).parameters()) == 785 * 500 + 501 * 10 == 397_510
    dropout, maxout = (spec for _, spec, _ in variants["dropout-maxout"])
    assert "d1024 drop0.5 d1024" in dropout and "mx240x5 drop0.5 mx240x5" in maxout
    assert load_recipe(RECIPES / "dbn-mnist.toml").pretrain["method"] == "rbm"
    assert load_recipe(RECIPES / "sda-mnist.toml").pretrain == {
        "method": "dae",
        "noise": 0.25,
        "epochs": 2,
        "lr": 0.001,
        "batch_size": 64,
    }


def test_an_unknown_pretrain_key_is_an_error_naming_it(tmp_path):
    with pytest.raises(CapasError, match="unknown key 'pretrain.epoch'.*layer_epochs"):
        load_recipe(RECIPES / "dbn-mnist.toml", {"pretrain.epoch": 3})


def test_dbn_recipe_fine_tunes_the_pretrained_weights(tmp_path):
    # a rate of 1e-12 leaves the fine-tuned weights where pre-training put them
    overrides = {**TINY, "pretrain.epochs": 1, "train.lr": 1e-12, "train.epochs": 1}
    result = run_recipe(RECIPES / "dbn-mnist.toml", out=tmp_path / "dbn", overrides=overrides, quiet=True)
    pre = tmp_path / "dbn" / "pretrain"
    assert rundir.read_json(pre / "pretrain.json")["finished"]
    assert (pre / "stage1").is_dir() and (pre / "stage2").is_dir() and not (pre / "stage3").exists()
    pretrained, tuned = rundir.load_model(pre), result.variants[0]
    final = rundir.load_model(tuned.run_dir)
    fresh = build("1x8x8-24-24-10", act="sigmoid", seed=0)
    for layer in (0, 1):
        assert torch.allclose(final.layers[layer].weight, pretrained.layers[layer].weight, atol=1e-6)
        assert not torch.allclose(fresh.layers[layer].weight, pretrained.layers[layer].weight, atol=1e-3)
    report = result.report.read_text()
    assert report.startswith("# dbn-mnist") and "- pre-training (greedy" in report and "2 layers in" in report


def test_sda_recipe_pretrains_denoising_autoencoders_then_learns_the_digits(tmp_path):
    overrides = {
        **TINY,
        "pretrain.epochs": 2,
        "pretrain.lr": 0.01,
        "train.lr": 0.5,
        "train.batch_size": 16,
        "train.epochs": 20,
    }
    overrides["train.augment"] = "noise=0.01"  # a one-pixel shift is an eighth of an 8x8 digit
    out = tmp_path / "sda"
    first = run_recipe(RECIPES / "sda-mnist.toml", out=out, overrides=overrides, quiet=True)
    assert first.variants[0].test_metrics["test_accuracy"] > 0.8  # 300 digits, 20 epochs; chance is 0.1
    digits = load("digits")
    assert first.data_name == digits.name
    record = rundir.read_json(out / "pretrain" / "pretrain.json")
    assert record["method"] == "dae" and record["noise"] == 0.25 and len(record["layers"]) == 2
