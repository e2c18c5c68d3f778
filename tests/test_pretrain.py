"""capas.api.pretrain: greedy layer-wise pre-training, the run directory it writes, freezing, CLI, plots."""

import json

import pytest
import torch

import capas
from capas.api.pretrain import fine_tune, freeze, pretrain, unfreeze
from capas.errors import DataError, RunDirError, SpecError
from capas.models import build
from capas.models.autoencoder import Autoencoder
from capas.models.rbm import RBM
from capas.train.rundir import load_model, load_run, read_tensors


@pytest.fixture(scope="module")
def digits():
    from capas.data import load

    return load("digits", seed=0)


def test_rbm_pretraining_is_a_dbn_on_the_training_inputs_copied_into_the_network(digits):
    result = pretrain(
        digits,
        "64-20-12-10",
        method="rbm",
        layer_epochs=[2, 1],
        layer_lr=[0.1, 0.05],
        batch_size=50,
        momentum=0.5,
        seed=3,
        quiet=True,
    )
    x = digits.x_train.flatten(1)
    first, second = RBM(64, 20, seed=3), RBM(20, 12, seed=4)  # stage l: seed + l for the weights and the run
    capas.fit(first, x, epochs=2, lr=0.1, batch_size=50, momentum=0.5, seed=3, quiet=True)
    capas.fit(second, first.hidden_probs(x), epochs=1, lr=0.05, batch_size=50, momentum=0.5, seed=4, quiet=True)
    network = result.network
    for layer, rbm in zip(network.layers[:2], (first, second)):
        assert torch.equal(layer.weight, rbm.weight) and torch.equal(layer.bias, rbm.hidden_bias)
    fresh = build("64-20-12-10", act="sigmoid", seed=3)
    assert torch.equal(network.layers[2].weight, fresh.layers[2].weight)  # output layer: fresh init
    assert [(r["name"], r["n_in"], r["n_out"], r["kind"], len(r["curve"])) for r in result.layers] == [
        ("dense1", 64, 20, "rbm-bernoulli", 2),
        ("dense2", 20, 12, "rbm-bernoulli", 1),
    ]


def test_the_run_directory_round_trips_and_records_the_curves(digits, tmp_path):
    result = pretrain(digits, "64-16-10", method="dae", epochs=2, seed=0, out=tmp_path / "run", quiet=True)
    run_dir = result.run_dir
    assert {p.name for p in run_dir.iterdir()} == {
        "model.json",
        "weights.safetensors",
        "pretrain.json",
        "pretrain.safetensors",
        "stage1",
    }
    stage = load_run(run_dir / "stage1")  # the layer's own run: the autoencoder, its history and checkpoint
    assert stage.config["task"]["kind"] == "autoencoder" and len(stage.history) == 2
    autoencoder = stage.build_model()
    assert isinstance(autoencoder, Autoencoder) and autoencoder.corruption == "mask" and autoencoder.noise == 0.3
    assert torch.equal(autoencoder.encoder.weight, result.network.layers[0].weight)
    loaded = load_model(run_dir)
    for name, tensor in result.network.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    settings = json.loads((run_dir / "pretrain.json").read_text())
    assert settings["method"] == "dae" and settings["input_shape"] == [1, 8, 8] and settings["finished"]
    assert settings["n_samples"] == len(digits.x_train)
    curve = settings["layers"][0]["curve"]
    assert [r["epoch"] for r in curve] == [1, 2] and curve[1]["reconstruction_error"] < curve[0]["reconstruction_error"]
    extras, _ = read_tensors(run_dir / "pretrain.safetensors")
    assert extras["decoder.0.weight"].shape == (64, 16) and extras["examples"].shape == (16, 64)


@pytest.mark.parametrize("method", ["ae", "sparse-ae"])
def test_autoencoder_methods_train_each_hidden_layer_as_an_encoder(digits, method):
    before = build("64-16-8-10", act="sigmoid", seed=1)
    result = pretrain(digits, "64-16-8-10", method=method, epochs=2, seed=1)
    hidden = result.network.layers
    assert not torch.equal(hidden[0].weight, before.layers[0].weight)
    assert not torch.equal(hidden[1].weight, before.layers[1].weight)
    assert torch.equal(hidden[2].weight, before.layers[2].weight)
    assert all(r["curve"][-1]["loss"] < r["curve"][0]["loss"] for r in result.layers)


def test_unlabelled_extra_inputs_join_the_training_inputs(digits):
    extra = torch.rand(100, 1, 8, 8)
    result = pretrain(digits, "64-8-10", method="ae", epochs=1, unlabelled_extra=extra)
    by_name = pretrain(digits, "64-8-10", method="ae", epochs=1, unlabelled_extra="digits")
    n = len(digits.x_train)
    assert result.n_samples == n + 100
    assert by_name.n_samples == n + n + len(digits.x_val)  # another dataset: its train + validation inputs
    with pytest.raises(DataError, match="65 features"):
        pretrain(digits, "64-8-10", method="ae", epochs=1, unlabelled_extra=torch.rand(5, 65))


def test_real_valued_inputs_get_a_gaussian_first_rbm_with_a_smaller_default_lr():
    from capas.data import load

    standardized = load("digits", seed=0, standardize=True)
    result = pretrain(standardized, "64-12-8-10", method="rbm", epochs=1, batch_size=64)
    assert [(r["kind"], r["lr"]) for r in result.layers] == [("rbm-gaussian", 0.01), ("rbm-bernoulli", 0.1)]
    assert all(torch.isfinite(p).all() for p in result.network.parameters())


def test_a_regression_dataset_gets_a_network_with_the_mse_loss(digits):
    from capas.data import load

    sine = load("sine", seed=0, n=80)
    result = pretrain(sine, "1x20-6-1", method="ae", epochs=1)
    assert result.network.loss == "mse"  # cross-entropy on one real-valued output trains nothing
    assert pretrain(digits, "64-6-10", method="ae", epochs=1).network.loss == "cross_entropy"
    assert pretrain(digits, "64-6-10", method="ae", epochs=1, loss="mse").network.loss == "mse"


def test_the_public_api_reexports_pretraining():
    import capas.api.pretrain as pretraining

    assert capas.pretrain is pretraining.pretrain and capas.freeze is pretraining.freeze
    assert capas.unfreeze is pretraining.unfreeze and capas.fine_tune is pretraining.fine_tune


def test_bad_requests_are_refused_with_a_hint(digits):
    with pytest.raises(SpecError, match="sigmoid"):
        pretrain(digits, "64-8-10", method="rbm", act="relu")
    with pytest.raises(SpecError, match="Dense layers"):
        pretrain(digits, "1x8x8 c3x3x4 d10", method="ae")
    with pytest.raises(SpecError, match="at least one hidden"):
        pretrain(digits, "64-10", method="ae")
    with pytest.raises(SpecError, match="unknown pre-training method"):
        pretrain(digits, "64-8-10", method="pca")
    with pytest.raises(SpecError, match="one per layer"):
        pretrain(digits, "64-8-8-10", layer_epochs=[1, 2, 3])


def test_an_output_path_that_is_a_file_is_refused_before_training(digits, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a run")
    with pytest.raises(RunDirError, match="is a file"):
        pretrain(digits, "64-8-10", method="rbm", epochs=1, out=taken)
    assert taken.read_text() == "not a run"


def test_freeze_and_unfreeze_control_which_layers_learn(digits, tmp_path):
    network = build("64-8-8-10", act="sigmoid", seed=0)
    freeze(network, [0, -2])
    assert [all(not p.requires_grad for p in layer.parameters()) for layer in network.layers] == [True, True, False]
    unfreeze(network, [1])
    assert [all(p.requires_grad for p in layer.parameters()) for layer in network.layers] == [False, True, True]
    unfreeze(network)
    assert all(p.requires_grad for p in network.parameters())
    with pytest.raises(SpecError, match="out of range"):
        freeze(network, [3])
    result = pretrain(digits, "64-8-10", method="ae", epochs=1, out=tmp_path / "run")
    tuned = fine_tune(result.run_dir, digits, frozen=[0], epochs=1, quiet=True)
    assert torch.equal(tuned.model.layers[0].weight, result.network.layers[0].weight)
    assert not torch.equal(tuned.model.layers[1].weight, result.network.layers[1].weight)


def test_cli_writes_the_run_and_prints_a_json_summary(tmp_path, capsys):
    from capas.cli import main

    out = tmp_path / "cli-run"
    main(
        [
            "pretrain",
            "--data",
            "digits",
            "--model",
            "64-12-8-10",
            "--method",
            "rbm",
            "--layer-epochs",
            "2,1",
            "--batch-size",
            "64",
            "--out",
            str(out),
            "--plots",
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [layer["epochs"] for layer in summary["layers"]] == [2, 1]
    assert sorted(p.rsplit("/", 1)[-1] for p in summary["plots"]) == [
        "filters.png",
        "pretrain_curves.png",
        "reconstructions.png",
        "samples.png",
    ]
    assert (out / "weights.safetensors").is_file()
    main(["plot", str(out), "--json"])  # `capas plot` recognises a pre-training directory
    plotted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["plots"]
    assert sorted(p.rsplit("/", 1)[-1] for p in plotted) == sorted(p.rsplit("/", 1)[-1] for p in summary["plots"])
    tuned = tmp_path / "tuned"  # the trainer starts from the pre-trained weights (a tiny lr keeps them)
    main(
        [
            "train",
            "--data",
            "digits",
            "--init-from",
            str(out),
            "--optimizer",
            "sgd",
            "--lr",
            "1e-9",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(tuned),
            "--json",
        ]
    )
    assert "test_accuracy" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    pretrained, fine_tuned = load_model(out), load_model(tuned)
    assert torch.allclose(fine_tuned.layers[0].weight, pretrained.layers[0].weight, atol=1e-6)
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--model", "64-12-10", "--layer-epochs", "2,x", "--out", str(tmp_path / "bad")])
    assert exit_info.value.code == 2
    assert "--layer-epochs takes comma-separated" in capsys.readouterr().err


def test_plot_functions_return_what_they_drew(tmp_path):
    from capas.diagnostics.pretrain_plots import plot_filters, plot_pretrain_curves, plot_reconstructions

    filters = plot_filters(torch.arange(3 * 64.0).reshape(3, 64), (1, 8, 8), tmp_path / "f.png")
    assert filters.shape == (3, 8, 8) and filters[1, 0, 1] == 65.0
    x = torch.rand(4, 64)
    top, bottom = plot_reconstructions(x, 1 - x, (64,), tmp_path / "r.png")
    assert top.shape == (4, 8, 8) and float(abs(top + bottom - 1).max()) < 1e-6
    layers = [{"layer": 0, "name": "dense1", "curve": [{"reconstruction_error": 0.5}, {"reconstruction_error": 0.2}]}]
    assert plot_pretrain_curves(layers, tmp_path / "c.png") == {"reconstruction_error": {"dense1": [0.5, 0.2]}}
    assert all((tmp_path / name).stat().st_size > 1000 for name in ("f.png", "r.png", "c.png"))
