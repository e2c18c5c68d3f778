"""Building networks from specs, layer lists and TOML; the Network API."""

from __future__ import annotations

import pytest
import torch

from capas.errors import SpecError
from capas.layers import Dense
from capas.models import Network, build, build_from_toml


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_mlp_structure_and_course_exercise():
    # course file 000: 1000 inputs, layers of 300, 100, 50, 20, 5 and 1 units, biases included
    model = build("1000-300-100-50-20-5-1", loss="mse")
    assert n_params(model) == 336_581
    assert model.layer_names() == ["dense1", "dense2", "dense3", "dense4", "dense5", "dense6"]
    assert model.input_shape == (1000,) and model.output_shape == (1,)
    assert model.is_plain_mlp()


def test_hidden_act_output_act_from_loss():
    model = build("784-30-10", act="sigmoid")
    assert [layer.activation.name for layer in model.layers] == ["sigmoid", "softmax"]
    assert build("784-30-1", loss="binary_cross_entropy").layers[-1].activation.name == "sigmoid"
    assert build("784-30-1", loss="mse").layers[-1].activation.name == "linear"
    assert build("784-30:tanh-10:sigmoid", loss="mse").layers[1].activation.name == "sigmoid"
    assert build("784-30-10", output_act="tanh", loss="mse").layers[1].activation.name == "tanh"


def test_forward_returns_probabilities_and_logits_the_preactivation():
    torch.manual_seed(0)
    model = build("64-32-10", act="tanh", seed=3).double()
    x = torch.randn(5, 64, dtype=torch.float64)
    w1, b1, w2, b2 = (p for p in model.parameters())
    z = torch.tanh(x @ w1.T + b1) @ w2.T + b2  # the slides' two-layer perceptron, by hand
    torch.testing.assert_close(model.logits(x), z)
    torch.testing.assert_close(model(x), torch.softmax(z, dim=1))
    assert torch.equal(model.predict(x), z.argmax(1))


def test_seed_gives_same_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = build("64-32-10", seed=7), build("64-32-10", seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = build("64-32-10", seed=8)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_three_forms_build_the_same_module():
    text = build("1x12x12 c3x3x4:same:tanh mp2 d16+0 d3", seed=1)
    tokens = build(["1x12x12", "c3x3x4:same:tanh", "mp2", "d16+0", "d3"], seed=1)
    tables = build(
        [
            {"type": "input", "shape": [1, 12, 12]},
            {"type": "conv", "kernel": 3, "filters": 4, "padding": "same", "act": "tanh"},
            {"type": "max_pool", "size": 2},
            {"type": "dense", "units": 16, "from": [0]},
            {"type": "dense", "units": 3},
        ],
        seed=1,
    )
    recipe = build_from_toml(
        '[model]\nseed = 1\n'
        '[[model.layers]]\ntype = "input"\nshape = [1, 12, 12]\n'
        '[[model.layers]]\ntype = "conv"\nkernel = [3, 3]\nfilters = 4\npadding = "same"\nact = "tanh"\n'
        '[[model.layers]]\ntype = "max_pool"\nsize = 2\n'
        '[[model.layers]]\ntype = "dense"\nunits = 16\nfrom = [0]\n'
        '[[model.layers]]\ntype = "dense"\nunits = 3\n'
    )
    spec_recipe = build_from_toml('[model]\nspec = "1x12x12 c3x3x4:same:tanh mp2 d16+0 d3"\nseed = 1\n')
    for other in (tokens, tables, recipe, spec_recipe):
        assert other.config() == text.config()
        assert repr(other) == repr(text)
        assert all(torch.equal(p, q) for p, q in zip(text.state_dict().values(), other.state_dict().values()))


def test_config_round_trip_is_json():
    import json

    model = build("1x16 c3x4:d2 res(c3x4:same c3x4:same) mx8x3 d2", act="elu", loss="mse", init="he_normal")
    config = json.loads(json.dumps(model.config()))
    again = Network.from_config(config)
    assert again.config() == model.config() and repr(again) == repr(model)
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    with pytest.raises(SpecError, match="not a capas model config"):
        Network.from_config({"spec": "784-10"})


def test_skip_concatenates_earlier_output():
    # course file 001, "redes hacia adelante": s^2 = g(theta^{2,1} s^1 + theta^{2,0} x)
    model = build("5-3-2+0", act="tanh", loss="mse").double()
    assert not model.is_plain_mlp()
    assert model.layers[1].in_features == 3 + 5
    x = torch.randn(4, 5, dtype=torch.float64)
    s1 = model.layers[0](x)
    torch.testing.assert_close(model(x), model.layers[1](torch.cat([s1, x], dim=1)))


def test_hidden_and_layer_lookup():
    model = build("8 d6 res(d6 d6) d3", seed=0)
    x = torch.randn(4, 8)
    assert [name for name, _ in model.named_layers(nested=True)] == ["dense1", "res1", "res1.dense2", "res1.dense3", "dense4"]
    torch.testing.assert_close(model.hidden(x, "dense1"), model.layers[0](x))
    assert model.hidden(x, "res1.dense2").shape == (4, 6)
    with pytest.raises(SpecError, match="no layer named 'dense9'.*dense1"):
        model.hidden(x, "dense9")


def test_input_checks():
    model = build("64-10")
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # images are flattened for an MLP
    with pytest.raises(SpecError, match=r"expects inputs of shape \(N, 64\)"):
        model(torch.zeros(2, 63))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"loss": "kl"}, "unknown loss 'kl'"),
        ({"act": "swish"}, "unknown activation 'swish'"),
        ({"output_act": "nope"}, "unknown activation 'nope'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(SpecError, match=message):
        build("4-3", **options)


def test_bad_tables():
    with pytest.raises(SpecError, match="unknown keys \\['unit'\\]"):
        build([{"type": "input", "shape": [4]}, {"type": "dense", "unit": 3}])
    with pytest.raises(SpecError, match="'units' must be an integer"):
        build([{"type": "input", "shape": [4]}, {"type": "dense", "units": "3 d9"}])
    with pytest.raises(SpecError, match="exactly one of 'spec' or 'layers'"):
        build({"spec": "4-3", "layers": []})
    with pytest.raises(SpecError, match="given twice"):
        build({"spec": "4-3", "act": "tanh"}, act="relu")
    with pytest.raises(SpecError, match="no \\[model\\] table"):
        build_from_toml("[data]\nname = 'digits'\n")


def test_plain_mlp_detection():
    assert build("784 d30 drop0.5 mx20x3 d10").is_plain_mlp()
    assert not build("784 d30 bn d10").is_plain_mlp()
    assert isinstance(build("784-10").layers[0], Dense)
