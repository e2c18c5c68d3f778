"""Every command on every kind of run directory (network, GAN, autoencoder, RBM,
encoder-decoder): numbers, pictures or a one-line error, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clirun import run_cli
from torch.nn import functional as F

import capas
from capas.data.pairs import load_pairs
from capas.diagnostics.gan_plots import drawn_shape
from capas.models import build
from capas.models.autoencoder import Autoencoder
from capas.models.gan import build_gan
from capas.models.rbm import RBM
from capas.models.seq2seq import Seq2Seq
from capas.train import rundir

FAST = {"epochs": 2, "quiet": True, "warn_gradients": False}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    capas.fit("64-8-10", "digits", out=root / "net", **FAST)
    capas.fit(build_gan("4-16-64", "64-16-1", seed=1), "digits", out=root / "gan", **FAST)  # an MLP GAN on images
    capas.fit(build_gan("4-8-5", "5-8-1", seed=1), torch.randn(96, 5), out=root / "gan5", **FAST)  # no picture
    capas.fit(Autoencoder(build("64-12", act="sigmoid")), "digits", out=root / "ae", **FAST)
    capas.fit(RBM(64, 12), "digits", out=root / "rbm", **FAST)
    pairs = load_pairs("reverse", n=80, max_len=4, alphabet=3)
    capas.fit(Seq2Seq.for_data(pairs, embed=4, hidden=8), pairs, out=root / "s2s", **FAST)
    np.save(root / "x.npy", np.zeros((2, 64), dtype=np.float32))
    return root


@pytest.mark.parametrize("kind", ["net", "gan", "gan5", "ae", "rbm", "s2s"])
def test_every_command_answers_every_kind_of_run(runs, kind):
    run = str(runs / kind)
    commands = [
        ["evaluate", run],
        ["predict", run, str(runs / "x.npy")],
        ["plot", run, "--what", "all"],
        ["summary", run],
        ["draw", run, "--out", str(runs / f"{kind}-draw.png")],
        ["translate", run, "abc"],
        ["sample", run, "--n", "4", "--out", str(runs / f"{kind}-samples.png")],
    ]
    for argv in commands:
        code, _, err = run_cli(argv)
        assert code in (0, 2) and "Traceback" not in err, (argv, err[-1500:])
        if code == 2:
            assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, (argv, err)


def test_autoencoder_and_rbm_runs_report_test_reconstruction_and_evaluate_repeats_it(runs):
    data = capas.data.load("digits")
    for kind, keys in (("ae", {"test_loss", "test_reconstruction_error"}), ("rbm", {"test_free_energy"})):
        metrics = json.loads((runs / kind / "metrics.json").read_text())
        evaluated = capas.evaluate(runs / kind).metrics
        assert keys | {"test_reconstruction_error"} <= set(metrics)
        for key in evaluated:
            assert evaluated[key] == pytest.approx(metrics[key], rel=1e-6), (kind, key)
    rbm = rundir.load_model(runs / "rbm")
    x = data.x_test.reshape(len(data.x_test), -1)
    by_hand = F.mse_loss(
        torch.sigmoid(torch.sigmoid(x @ rbm.weight.T + rbm.hidden_bias) @ rbm.weight + rbm.visible_bias), x
    )
    assert json.loads((runs / "rbm" / "metrics.json").read_text())["test_reconstruction_error"] == pytest.approx(
        float(by_hand), rel=1e-5
    )
    code, out, _ = run_cli(["evaluate", str(runs / "rbm")])
    assert code == 0 and "test reconstruction error:" in out and "free energy:" in out


def test_plots_that_apply_to_each_kind(runs):
    expected = {
        "gan": ["curves.png"],
        "ae": ["curves.png", "weights.png"],
        "rbm": ["curves.png", "weights.png"],
        "s2s": ["attention.png", "curves.png"],  # the heatmap of its first test source
    }
    for kind, files in expected.items():
        assert run_cli(["plot", str(runs / kind), "--what", "all"])[0] == 0
        assert sorted(p.name for p in (runs / kind / "plots").glob("*.png")) == files
    code, _, err = run_cli(["plot", str(runs / "rbm"), "--what", "hidden"])
    assert code == 2 and "cannot plot hidden: it reads the layers of a network" in err
    code, _, err = run_cli(["plot", str(runs / "net"), "--what", "attention"])
    assert code == 2 and "cannot plot attention: it needs an encoder-decoder with attention" in err


def test_an_mlp_gan_on_images_draws_its_flat_samples_as_images(runs):
    frames = sorted(p.name for p in (runs / "gan" / "samples").glob("*.png"))
    assert frames == ["epoch-0001.png", "epoch-0002.png"] and (runs / "gan" / "samples.gif").is_file()
    assert not (runs / "gan5" / "samples").exists()  # five numbers have no picture: trained without grids
    assert [drawn_shape(s) for s in [(784,), (3072,), (64,), (2,), (1, 8, 8), (5,), (3,), (4, 4)]] == [
        (1, 28, 28),
        (3, 32, 32),
        (1, 8, 8),
        (2,),
        (1, 8, 8),
        None,
        None,
        None,
    ]


def test_a_pre_training_directory_is_pointed_to_fine_tuning(tmp_path):
    code, _, _ = run_cli(
        ["pretrain", "--model", "64-8-10", "--method", "rbm", "--out", str(tmp_path / "dbn"), "--quiet"]
    )
    assert code == 0
    for command in (["evaluate"], ["train", "--resume"]):
        code, _, err = run_cli([*command, str(tmp_path / "dbn")])
        assert code == 2 and "is a pre-training, not a training run; fine-tune its network with capas train " in err


def test_translate_checks_its_attention_pictures_before_any_work(runs, tmp_path):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    run = str(runs / "s2s")
    for extra, message in (
        (["--attention", str(taken)], "already exists; choose another --attention file, or add --force"),
        (["--attention", str(tmp_path / "map.txt")], "--attention must be a .png or .svg file"),
    ):
        code, _, err = run_cli(["translate", run, "abc", *extra])
        assert code == 2 and message in err
    assert taken.read_bytes() == b"mine"
    assert run_cli(["translate", run, "abc", "--attention", str(taken), "--force"])[0] == 0
    assert taken.stat().st_size > 1000
    assert run_cli(["translate", run, "ab", "ba", "--attention", str(tmp_path / "m.svg")])[0] == 0
    assert sorted(p.name for p in tmp_path.glob("m-*")) == ["m-1.svg", "m-2.svg"]


def test_sample_refuses_what_memory_cannot_hold_and_draws_large_n_in_chunks(runs, monkeypatch):
    from capas import limits
    from capas.api import sample as sampling

    gan = rundir.load_model(runs / "gan")
    small = sampling.sample(runs / "gan", 10, seed=3)
    assert torch.equal(small, gan.sample(10, torch.Generator().manual_seed(3)))  # one chunk: as drawn whole
    monkeypatch.setattr(sampling, "CHUNK", 7)
    chunked = sampling.sample(runs / "gan", 20, seed=3)
    assert chunked.shape == (20, 64) and torch.equal(chunked[:7], gan.sample(7, torch.Generator().manual_seed(3)))
    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    code, _, err = run_cli(["sample", str(runs / "gan"), "--n", "1000", "--npy", str(runs / "big.npy")])
    assert code == 2 and "1,000 samples of 64 values needs about 250.0 KiB" in err and "ask for fewer samples" in err


def test_options_no_task_but_supervised_training_reads_are_refused_and_l2_spares_biases():
    pairs = load_pairs("reverse", n=40, max_len=3, alphabet=3)
    cases = [
        (Seq2Seq.for_data(pairs, embed=4, hidden=8), pairs, "seq2seq"),
        (Autoencoder(build("64-12", act="sigmoid")), "digits", "autoencoder"),
        (RBM(64, 12), "digits", "RBM"),
        (build_gan("4-8-64", "64-8-1"), "digits", "GAN"),
    ]
    for model, data, kind in cases:
        for option in ({"augment": "flip"}, {"tbptt": 3}):
            with pytest.raises(capas.TrainingError, match=f"{next(iter(option))} do.es. not apply to {kind}"):
                capas.fit(model, data, epochs=1, quiet=True, **option)
        closure = (
            "optimizer do.es. not apply" if kind == "RBM" else f"LBFGS re-evaluates .*, which {kind} training does not"
        )
        with pytest.raises(capas.TrainingError, match=closure):  # was a TypeError from LBFGS.step()
            capas.fit(model, data, epochs=1, quiet=True, optimizer="lbfgs")

    class Groups(capas.Callback):
        def on_fit_begin(self, trainer):
            self.decays = [
                (group["weight_decay"], {p.dim() > 1 for p in group["params"]})
                for optimizer in trainer.optimizers.values()
                for group in optimizer.param_groups
            ]

    for regularize_bias, expected in ((False, [(0.01, {True}), (0.0, {False})]), (True, [(0.01, {True, False})])):
        seen = Groups()
        model = Seq2Seq.for_data(pairs, embed=4, hidden=8)
        capas.fit(model, pairs, epochs=1, quiet=True, l2=0.01, regularize_bias=regularize_bias, callbacks=[seen])
        assert seen.decays == expected  # weights (2+ axes) decayed; biases only with regularize_bias


def test_an_rbm_run_samples_from_its_gibbs_chains(runs, tmp_path):
    from capas.api.sample import draw, sample

    code, out, _ = run_cli(["sample", str(runs / "rbm"), "--n", "9", "--steps", "50", "--npy", str(tmp_path / "s.npy")])
    samples = np.load(tmp_path / "s.npy")
    assert code == 0 and samples.shape == (9, 64) and samples.min() >= 0 and samples.max() <= 1
    assert torch.equal(sample(runs / "rbm", 9, steps=50), torch.from_numpy(samples))  # the seed decides them
    rbm = RBM(4, 3)  # no weights: P(v|h) = sigmoid(b) whatever the chain did
    with torch.no_grad():
        rbm.weight.zero_()
        rbm.visible_bias.copy_(torch.tensor([-2.0, 0.0, 1.0, 3.0]))
    assert torch.allclose(draw(rbm, 5, steps=7), torch.sigmoid(rbm.visible_bias).expand(5, 4))
    code, _, err = run_cli(["sample", str(runs / "gan"), "--steps", "3", "--npy", str(tmp_path / "g.npy")])
    assert code == 2 and "--steps counts an RBM's Gibbs steps" in err


def test_evaluate_measures_a_toy_gan_by_its_modes(tmp_path):
    from capas.data.gan_toys import mode_centres
    from capas.diagnostics.gan_measures import mode_measures

    capas.fit(build_gan("4-16-2", "2-16-1", seed=0), "ring", out=tmp_path / "ring", **FAST)
    metrics = capas.evaluate(tmp_path / "ring").metrics
    gan = rundir.load_model(tmp_path / "ring")
    by_hand = mode_measures(gan.sample(2500, torch.Generator().manual_seed(0)), mode_centres("ring"), 0.01)
    assert (metrics["test_modes"], metrics["test_high_quality"]) == (by_hand.modes, by_hand.high_quality)
    assert metrics["mode_histogram"] == by_hand.histogram and metrics["test_total_modes"] == 8
    code, out, _ = run_cli(["evaluate", str(tmp_path / "ring")])
    assert code == 0 and f"modes captured: {by_hand.modes}/8" in out and "2500 samples of its generator" in out


@pytest.mark.parametrize(
    "recipe, setting, message",
    [
        ("dates", "train.epochs=abc", "[train]: invalid training option(s): epochs"),
        ("dates", "train.seed=3", "unknown key 'train.seed'; set the top-level seed instead"),
        ("dates", "task.bogus=1", "[task]: Seq2SeqTask does not take bogus"),
        ("dates", "task.teacher_forcing=2", "[task]: teacher_forcing is a probability in [0, 1], got 2"),
        (
            "dates",
            "plots.example='3 de mayo §'",
            "plots.example '3 de mayo §' holds symbols the dates sources never use",
        ),
        ("gan-ring", "train.epochs=abc", "[train]: invalid training option(s): epochs"),
        ("gan-ring", "train.seed=1", "unknown key 'train.seed'; set the top-level seeds instead"),
    ],
)
def test_seq2seq_and_gan_recipes_that_cannot_run_leave_nothing(tmp_path, recipe, setting, message):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "recipes" / f"{recipe}.toml"
    code, _, err = run_cli(
        ["run", str(path), "--set", setting, "--set", "data.options.n=200", "--out", str(tmp_path / "out")]
    )
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_summary_init_reads_presets_and_names_models_it_has_no_table_for(runs):
    code, out, _ = run_cli(["summary", "lenet5", "--init", "--json"])
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["init"][0]["layer"] == "conv1"
    for kind, noun in (("s2s", "an encoder-decoder"), ("rbm", "an RBM")):
        code, _, err = run_cli(["summary", str(runs / kind), "--init"])
        assert code == 2 and f"holds {noun} with no layer of capas's initialisation table" in err
    code, out, _ = run_cli(["summary", str(runs / "gan"), "--init", "--json"])
    layers = [row["layer"] for row in json.loads(out.strip().splitlines()[-1])["init"]]
    assert code == 0 and layers[0].startswith("generator.") and layers[-1].startswith("discriminator.")


def test_capas_train_builds_a_gan_from_a_model_table_and_resumes_it(tmp_path):
    table = '{generator = "4-16-2", discriminator = "2-16-1", loss = "minimax", d_steps = 2, init = "glorot_uniform"}'
    run = tmp_path / "gan"
    code, out, err = run_cli(
        ["train", "--data", "ring", "--model", table, "--epochs", "2", "--out", str(run), "--quiet", "--json"]
    )
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["test_total_modes"] == 8 and 0 <= summary["test_high_quality"] <= 1
    assert summary["test_modes"] == capas.evaluate(run).metrics["test_modes"]
    task = json.loads((run / "config.json").read_text())["task"]
    assert task["kind"] == "gan" and task["options"]["loss"] == "minimax" and task["options"]["d_steps"] == 2
    gan = rundir.load_model(run)
    assert gan.generator.options["spec"] == "4 d16 d2" and gan.generator.options["init"] == "glorot_uniform"
    assert run_cli(["train", "--resume", str(run), "--epochs", "3", "--quiet"])[0] == 0
    assert len(json.loads((run / "history.json").read_text())) == 3
    for model, message in (
        ('{generator = "4-16-2"}', "a GAN needs both a generator and a discriminator spec; add discriminator"),
        ('{generator = "4-16-2", discriminator = "2-16-1", lose = "minimax"}', "no GAN option lose; the options are"),
        ("{hidden = 8}", "a --model table describes a GAN or, on sequence pairs, an encoder-decoder"),
    ):
        code, _, err = run_cli(["train", "--data", "ring", "--model", model, "--out", str(tmp_path / "refused")])
        assert code == 2 and message in err, err
        assert not (tmp_path / "refused").exists()


def test_capas_sample_draws_from_the_dbn_of_an_rbm_pretraining(tmp_path):
    from capas.diagnostics.pretrain_plots import load_pretrained_dbn

    for method in ("rbm", "ae"):
        args = ["pretrain", "--model", "64-16-8-10", "--method", method, "--epochs", "2", "--quiet"]
        assert run_cli([*args, "--out", str(tmp_path / method)])[0] == 0
    code, _, err = run_cli(
        ["sample", str(tmp_path / "rbm"), "--n", "6", "--steps", "20", "--npy", str(tmp_path / "s.npy")]
    )
    assert code == 0, err
    dbn = load_pretrained_dbn(tmp_path / "rbm")
    expected = dbn.sample(6, 20, torch.Generator().manual_seed(0))  # Gibbs in the top RBM, then down
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "s.npy")), expected) and expected.shape == (6, 64)
    code, _, err = run_cli(["sample", str(tmp_path / "ae"), "--npy", str(tmp_path / "a.npy")])
    assert code == 2 and "is not an RBM pre-training (capas pretrain --method rbm); it has no DBN" in err
