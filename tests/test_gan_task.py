"""The GAN task on the one loop: exact resume, the fixed-noise sample grids and their GIF,
k discriminator steps, packing, and bad inputs as one-line errors."""

from __future__ import annotations

import math

import pytest
import torch

import capas
from capas.data.gan_toys import SIGMAS, mode_centres, ring
from capas.diagnostics.gan_measures import mode_measures
from capas.errors import SpecError, TrainingError
from capas.models.gan import GAN, build_gan
from capas.tasks import GanTask, for_model

OPTIONS = dict(batch_size=64, lr=2e-3, optimizer_options={"betas": (0.5, 0.999)}, quiet=True)


def ring_data(n=512):
    return torch.from_numpy(ring(n=n, seed=0).x_train)


def test_killed_run_resumes_to_the_same_weights_and_history(tmp_path):
    x = ring_data()

    class StopAfter(capas.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if epoch == 3:
                raise KeyboardInterrupt

    task_options = {"loss": "wasserstein", "d_steps": 3, "grid": 16}
    options = dict(epochs=4, seed=2, task_options=task_options, scheduler="cosine", **OPTIONS)
    whole = capas.fit(build_gan("4-16-2", "2-16-1", seed=1), x, out=tmp_path / "whole", **options)
    with pytest.raises(KeyboardInterrupt):
        capas.fit(build_gan("4-16-2", "2-16-1", seed=1), x, out=tmp_path / "cut", callbacks=[StopAfter()], **options)
    resumed = capas.fit(build_gan("4-16-2", "2-16-1", seed=1), x, resume=tmp_path / "cut", epochs=4, quiet=True)
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    assert whole.history.without_timing() == resumed.history.without_timing()
    assert set(whole.history[-1]) >= {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake"}
    reloaded = capas.load_model(tmp_path / "whole")
    assert isinstance(reloaded, GAN) and torch.equal(
        reloaded.generator(torch.ones(2, 4)), whole.model.generator(torch.ones(2, 4))
    )
    frames = sorted(p.name for p in (tmp_path / "cut" / "samples").glob("*.png"))
    assert frames == [f"epoch-000{i}.png" for i in (1, 2, 3, 4)]
    assert (tmp_path / "cut" / "samples.gif").stat().st_size > 0


def test_a_finished_gan_run_trained_longer_ends_as_a_longer_run(tmp_path):
    x = ring_data()
    options = dict(seed=2, task_options={"grid": 16}, **OPTIONS)
    longer = capas.fit(build_gan("4-16-2", "2-16-1", seed=1), x, out=tmp_path / "longer", epochs=4, **options)
    capas.fit(build_gan("4-16-2", "2-16-1", seed=1), x, out=tmp_path / "run", epochs=2, **options)
    extended = capas.fit(build_gan("4-16-2", "2-16-1", seed=1), x, resume=tmp_path / "run", epochs=4, quiet=True)
    for name, tensor in longer.model.state_dict().items():
        assert torch.equal(extended.model.state_dict()[name], tensor), name
    assert longer.history.without_timing() == extended.history.without_timing()
    frames = sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png"))
    assert frames == [f"epoch-000{i}.png" for i in (1, 2, 3, 4)]


def test_d_steps_update_the_generator_every_kth_step():
    x = ring_data(128)
    gan = build_gan("4-8-2", "2-8-1", seed=0)
    start = [p.detach().clone() for p in gan.generator.parameters()]
    capas.fit(gan, x, epochs=1, batch_size=64, task_options={"d_steps": 3}, quiet=True)  # 2 steps < 3: G untouched
    assert all(torch.equal(a, b) for a, b in zip(start, gan.generator.parameters()))
    capas.fit(gan, x, epochs=2, batch_size=64, task_options={"d_steps": 2}, quiet=True)
    assert not all(torch.equal(a, b) for a, b in zip(start, gan.generator.parameters()))


def test_a_short_non_saturating_run_spreads_over_the_ring():
    """Packed (m = 2) non-saturating training, 2,000 samples, 600 steps: most of the 8 modes."""
    x = ring_data(2000)
    gan = build_gan("4-64-64-2", "4-64-64-1", packing=2, seed=0)
    capas.fit(gan, x, epochs=20, batch_size=64, lr=1e-3, optimizer_options={"betas": (0.5, 0.999)}, quiet=True)
    measures = mode_measures(
        gan.sample(2000, torch.Generator().manual_seed(0)), mode_centres("ring"), 10 * SIGMAS["ring"]
    )
    assert measures.modes >= 6, measures


def test_init_overrides_both_networks_and_survives_a_reload():
    """``init="glorot_uniform"`` (what the toy recipes use; the He default leaves D and G with
    sqrt(6/fan_in) weights, and the ring recipe then ends near 80% high quality instead of 96%):
    every weight of both networks inside its Glorot bound, and the config rebuilds it so."""
    he, glorot = build_gan("4-128-2", "2-128-1", seed=0), build_gan("4-128-2", "2-128-1", init="glorot_uniform", seed=0)
    for gan, widest in ((glorot, 1.0), (he, math.sqrt(6 / 4) / math.sqrt(6 / 132))):
        first = gan.generator.layers[0].weight  # (128, 4): fan_in 4, fan_out 128
        assert first.abs().max().item() / math.sqrt(6 / 132) == pytest.approx(widest, rel=0.05)
    for net in (glorot.generator, glorot.discriminator):
        for layer in net.layers:
            if hasattr(layer, "weight") and layer.weight is not None:
                fan_out, fan_in = layer.weight.shape
                assert layer.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))
    again = GAN.from_config(glorot.config())
    assert again.config() == glorot.config()


def test_bad_inputs_are_one_line_errors():
    x = ring_data(64)
    with pytest.raises(SpecError, match="end the generator's spec with 3 features") as err:
        capas.fit(build_gan("4-8-2", "2-8-1"), torch.randn(64, 3), epochs=1, quiet=True)
    assert "\n" not in str(err.value)
    with pytest.raises(SpecError, match="one score per sample .* end its spec with d1"):
        build_gan("4-8-2", "2-8-2")
    with pytest.raises(SpecError, match="must read 4 features \\(2 samples packed\\).*start it with 4"):
        build_gan("4-8-2", "2-8-1", packing=2)
    with pytest.raises(TrainingError, match="unknown GAN loss 'hinge'"):
        for_model(build_gan("4-8-2", "2-8-1"), loss="hinge")
    with pytest.raises(TrainingError, match="l2 do\\(es\\) not apply to GAN training"):
        capas.fit(build_gan("4-8-2", "2-8-1"), x, epochs=1, l2=0.1, quiet=True)
    bad = x.clone()
    bad[5] = math.inf
    with pytest.raises(TrainingError, match="became nan at epoch 1.*Lower the learning rate") as err:
        capas.fit(build_gan("4-8-2", "2-8-1"), bad, epochs=1, quiet=True)
    assert "\n" not in str(err.value)
    assert isinstance(for_model(build_gan("4-8-2", "2-8-1")), GanTask)
