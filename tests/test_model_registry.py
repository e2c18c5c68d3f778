"""The model registry: model.json names the kind of model and rebuilds it through MODELS."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from capas.errors import RunDirError, SpecError
from capas.models import Network, build
from capas.models.protocol import is_capas_model, layer_names
from capas.models.registry import MODELS, config_of, from_config, kind_of, register
from capas.train.rundir import load_model, model_config, save_model


def test_network_is_registered_and_its_config_names_its_kind():
    assert MODELS["network"] is Network
    net = build("4-3-2", seed=0)
    assert kind_of(net) == "network" and is_capas_model(net)
    assert net.config()["model"] == "network" and config_of(net) == net.config()
    assert kind_of(nn.Linear(2, 2)) is None and config_of(nn.Linear(2, 2)) is None
    rebuilt = from_config(json.loads(json.dumps(net.config())))
    assert isinstance(rebuilt, Network) and rebuilt.config() == net.config()


def test_configs_without_a_model_key_are_networks():
    old = {
        "format": 1,
        "spec": "4 d3 d2",
        "act": "relu",
        "loss": "cross_entropy",
        "output_act": "softmax",
        "init": None,
    }
    assert Network.from_config(old).options["spec"] == "4 d3 d2"
    assert isinstance(from_config(old), Network)
    with pytest.raises(SpecError, match="describes a 'rbm' model, not a 'network'"):
        Network.from_config({**old, "model": "rbm"})
    with pytest.raises(SpecError, match=r"unknown model kind 'diffusion'; capas knows .*network"):
        from_config({**old, "model": "diffusion"})


def test_register_adds_a_kind_and_refuses_a_second_class():
    class Toy(nn.Linear):
        def config(self) -> dict:
            return {"model": "toy", "n": self.in_features}

        @classmethod
        def from_config(cls, config: dict) -> Toy:
            return cls(config["n"], config["n"])

    register("toy")(Toy)
    try:
        assert isinstance(from_config({"model": "toy", "n": 3}), Toy) and kind_of(Toy(2, 2)) == "toy"
        with pytest.raises(SpecError, match="'toy' is already registered to Toy"):
            register("toy")(nn.Linear)
    finally:
        del MODELS["toy"]


def test_run_directories_save_and_rebuild_through_the_registry(tmp_path):
    net = build("4-3-2", seed=1)
    save_model(tmp_path / "net", net)
    assert json.loads((tmp_path / "net" / "model.json").read_text())["model"] == "network"
    again = load_model(tmp_path / "net")
    assert isinstance(again, Network)
    x = torch.randn(5, 4)
    torch.testing.assert_close(again(x), net(x))
    # a model.json written before the registry (no "model" key) still loads
    record = json.loads((tmp_path / "net" / "model.json").read_text())
    del record["model"]
    (tmp_path / "net" / "model.json").write_text(json.dumps(record))
    torch.testing.assert_close(load_model(tmp_path / "net")(x), net(x))


def test_a_plain_module_is_saved_as_a_record_and_refused_in_one_line(tmp_path):
    module = nn.Sequential(nn.Linear(4, 2))
    assert model_config(module) == {"type": "torch_module", "class": "Sequential", "rebuildable": False}
    save_model(tmp_path / "plain", module)
    with pytest.raises(RunDirError) as info:
        load_model(tmp_path / "plain")
    assert "\n" not in str(info.value)
    assert "describes a plain Sequential, not a capas model, so it cannot be rebuilt" in str(info.value)
    (tmp_path / "plain" / "model.json").write_text(json.dumps({"model": "diffusion"}))
    with pytest.raises(RunDirError, match="not a valid capas model config .*unknown model kind 'diffusion'"):
        load_model(tmp_path / "plain")


def test_protocol_answers_without_probing():
    net = build("4-3-2")
    assert layer_names(net) == ["dense1", "dense2"]
    assert layer_names(nn.Sequential(nn.Linear(4, 2))) is None
    assert not is_capas_model(nn.Sequential())
