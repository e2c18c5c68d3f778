"""A GAN recipe end to end (variants x seeds, measures, report), ``capas sample`` and the
saturation measurement behind the non-saturating rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from capas.api.recipes import run_recipe
from capas.cli import _register, app
from capas.diagnostics.gan_plots import generator_gradient_norms
from capas.errors import CapasError
from capas.models.gan import build_gan

RECIPE = """
kind = "gan"
name = "tiny-ring"
seeds = [0, 1]
[data]
name = "ring"
options = { n = 600 }
[model]
generator = "4-16-2"
discriminator = "{input}-16-1"
init = "glorot_uniform"
[train]
epochs = 2
batch_size = 64
threads = 1
[[variants]]
label = "minimax"
loss = "minimax"
[[variants]]
label = "packed m=2"
packing = 2
[measures]
samples = 200
"""


def test_gan_recipe_runs_variants_over_seeds_and_writes_its_report(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE)
    result = run_recipe(path, out=tmp_path / "out", quiet=True)
    assert [(run.label, run.seed) for run in result.variants] == [
        ("minimax", 0), ("minimax", 1), ("packed m=2", 0), ("packed m=2", 1)
    ]  # fmt: skip
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["summary"]) == {"minimax", "packed m=2"}
    runs = results["runs"]
    assert all(0 <= r["measures"]["modes"] <= 8 and r["measures"]["total_modes"] == 8 for r in runs)
    modes = [r["measures"]["modes"] for r in runs if r["label"] == "minimax"]
    assert results["summary"]["minimax"]["modes"]["mean"] == pytest.approx(np.mean(modes))
    packed = json.loads((tmp_path / "out" / "packed-m-2" / "seed-0" / "model.json").read_text())
    assert packed["packing"] == 2 and packed["discriminator"]["spec"].startswith("4 ")
    assert packed["generator"]["init"] == packed["discriminator"]["init"] == "glorot_uniform"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| minimax |" in report and "saturation.png" in report
    for name in ("minimax-samples.png", "packed-m-2-curves.png", "saturation.png"):
        assert (tmp_path / "out" / "plots" / name).stat().st_size > 0
    assert (tmp_path / "out" / "minimax" / "seed-1" / "samples.gif").is_file()

    _register()
    runner = CliRunner()
    run_dir = tmp_path / "out" / "minimax" / "seed-0"
    out = runner.invoke(app, ["sample", str(run_dir), "--n", "50", "--npy", str(tmp_path / "s.npy"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.splitlines()[-1])["written"] == [str(tmp_path / "s.npy")]
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (50, 2) and samples.dtype == np.float32
    again = runner.invoke(app, ["sample", str(run_dir), "--n", "50", "--npy", str(tmp_path / "s.npy")])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    nothing = runner.invoke(app, ["sample", str(run_dir)])
    assert nothing.exit_code != 0 and "--out grid.png and/or --npy" in str(nothing.exception)

    bad = tmp_path / "bad.toml"
    bad.write_text(RECIPE.replace('loss = "minimax"', 'loss = "minimax"\nepochs = 3'))
    with pytest.raises(CapasError, match="variants.0.epochs"):
        run_recipe(bad, out=tmp_path / "bad-out", quiet=True)


def test_minimax_generator_gradient_vanishes_as_the_discriminator_learns():
    """The slides' saturation: real points far from the untrained G's outputs (around (3, 3));
    with G fixed and D trained, the minimax generator's gradient norm falls and ends far below
    the non-saturating one, which grows."""
    x = 3 + 0.1 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    gan = build_gan("4-32-2", "2-32-32-1", seed=0)
    norms = generator_gradient_norms(gan, x, steps=60, lr=5e-3)
    minimax, non_saturating = norms["minimax"], norms["non_saturating"]
    assert len(minimax) == len(non_saturating) == 60
    assert minimax[-1] < minimax[0] / 5 and non_saturating[-1] > 5 * non_saturating[0]
    assert non_saturating[-1] > 10 * minimax[-1]


def test_the_samples_gif_keeps_at_most_max_frames_first_and_last_included(tmp_path):
    from PIL import Image

    from capas.diagnostics.gan_plots import animate

    frames = []
    for i in range(7):  # frame i is a flat grey of level 30 i, so the GIF's frames can be told apart
        frames.append(tmp_path / f"epoch-{i:04d}.png")
        Image.fromarray(np.full((8, 8, 3), 30 * i, dtype=np.uint8)).save(frames[-1])
    gif = Image.open(animate(frames, tmp_path / "all.gif"))
    assert gif.n_frames == 7
    gif = Image.open(animate(frames, tmp_path / "three.gif", max_frames=3))
    levels = []
    for k in range(gif.n_frames):
        gif.seek(k)
        levels.append(int(np.asarray(gif.convert("RGB"))[0, 0, 0]))
    assert levels == [0, 90, 180]  # frames 0, 3 and 6
    with pytest.raises(CapasError, match="at least 2"):
        animate(frames, tmp_path / "one.gif", max_frames=1)


def test_parallel_jobs_and_an_interrupted_recipe_give_the_numbers_of_one_plain_run(tmp_path, monkeypatch):
    """Each run is seeded on its own: two worker processes (jobs = 2) measure what one process
    does, and a recipe stopped after its first run, then resumed, ends with the same table."""
    from capas.api import gan_recipe
    from capas.api.recipes import resume_recipe
    from capas.errors import TrainingInterrupted

    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE)
    plain = run_recipe(path, out=tmp_path / "plain", quiet=True)
    numbers = [(r.label, r.seed, r.test_metrics["high_quality"], r.test_metrics["histogram"]) for r in plain.variants]

    both = run_recipe(path, out=tmp_path / "both", overrides={"jobs": 2}, quiet=True)
    assert [
        (r.label, r.seed, r.test_metrics["high_quality"], r.test_metrics["histogram"]) for r in both.variants
    ] == numbers

    calls = []
    train = gan_recipe._train

    def stop_at_the_second(job, x):
        calls.append(job.label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        train(job, x)

    monkeypatch.setattr(gan_recipe, "_train", stop_at_the_second)
    with pytest.raises(TrainingInterrupted, match="capas run --resume"):
        run_recipe(path, out=tmp_path / "cut", quiet=True)
    monkeypatch.setattr(gan_recipe, "_train", train)
    unstarted = tmp_path / "cut" / "minimax" / "seed-1"  # as if killed before its first checkpoint
    unstarted.mkdir(parents=True)
    (unstarted / "config.json").write_text("{}")
    resumed = resume_recipe(tmp_path / "cut", quiet=True)
    assert [
        (r.label, r.seed, r.test_metrics["high_quality"], r.test_metrics["histogram"]) for r in resumed.variants
    ] == numbers
    assert json.loads((tmp_path / "cut" / "recipe.json").read_text())["finished"] is True
    with pytest.raises(CapasError, match="already finished"):
        resume_recipe(tmp_path / "cut", quiet=True)


@pytest.mark.parametrize("name", ["gan-ring", "gan-grid", "gan-mnist", "gan-fashion-mnist"])
def test_shipped_gan_recipes_validate_and_build(name):
    """Every shipped GAN recipe parses, and each variant's generator and (packed) discriminator
    build and fit together, so a typo in a recipe fails here, not after minutes of training."""
    from pathlib import Path

    from capas.api.gan_recipe import load_gan_recipe, read_raw

    path = Path(__file__).parent.parent / "recipes" / f"{name}.toml"
    recipe = load_gan_recipe(path, read_raw(path))
    assert len(recipe.run_seeds) >= 1 and recipe.jobs >= 1
    for variant in recipe.variants:
        data_shape = (2,) if recipe.data.name in ("ring", "grid") else (1, 28, 28)
        packed = "x".join(map(str, (data_shape[0] * variant.packing, *data_shape[1:])))
        gan = build_gan(
            recipe.model.generator, recipe.model.discriminator.format(input=packed, data="x".join(map(str, data_shape))),
            packing=variant.packing, init=recipe.model.init, seed=0,
        )  # fmt: skip
        assert gan.data_shape == data_shape
        assert gan.sample(4, torch.Generator().manual_seed(0)).shape == (4, *data_shape)
