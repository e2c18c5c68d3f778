"""Frozen layers keep their weights through fit and the CLI; the run config records them."""

import json

import pytest
import torch

from capas import build, fit
from capas.errors import SpecError, TrainingError
from capas.models.freezing import freeze, layer_indices, unfreeze
from capas.train.rundir import load_model


def _data(n=60):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_indices_and_names_select_the_same_layers():
    net = build("6-5-4-3", seed=0)
    assert layer_indices(net, [0, "dense2", -1, "1"]) == [0, 1, 2, 1]
    with pytest.raises(SpecError, match="no layer named 'dense9'"):
        layer_indices(net, ["dense9"])
    with pytest.raises(SpecError, match="out of range"):
        layer_indices(net, [3])
    freeze(net, ["dense1"])
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True, True, True]
    unfreeze(net)
    assert all(p.requires_grad for p in net.parameters())


def test_fit_keeps_frozen_layers_and_falls_back_to_autograd():
    x, y = _data()
    net = build("6-5-3", seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    result = fit(
        net,
        (x, y),
        optimizer="sgd",
        lr=0.5,
        epochs=3,
        batch_size=10,
        frozen_layers=["dense1"],
        quiet=True,
        warn_gradients=False,
    )
    assert result.engine == "autograd"  # the delta rule would update every layer
    after = list(result.model.parameters())
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert not torch.equal(after[2], before[2])
    with pytest.raises(TrainingError, match="frozen"):
        fit(build("6-5-3", seed=0), (x, y), epochs=1, frozen_layers=[0], engine="backprop", quiet=True)


def test_cli_freeze_is_recorded_in_the_run_config_so_a_resume_refreezes(tmp_path, capsys):
    from capas.cli import main

    start = tmp_path / "start"
    main(["train", "--model", "64-12-10", "--epochs", "1", "--quiet", "--out", str(start)])
    first = tmp_path / "first"
    main(
        [
            "train",
            "--init-from",
            str(start),
            "--freeze",
            "dense1",
            "--epochs",
            "3",
            "--optimizer",
            "sgd",
            "--lr",
            "0.5",
            "--quiet",
            "--out",
            str(first),
            "--json",
        ]
    )
    assert "test_accuracy" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((first / "config.json").read_text())
    assert config["train"]["frozen_layers"] == ["dense1"]
    initial, trained = load_model(start), load_model(first)
    assert torch.equal(initial.layers[0].weight, trained.layers[0].weight)
    assert not torch.equal(initial.layers[1].weight, trained.layers[1].weight)
