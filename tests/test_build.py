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
        "[model]\nseed = 1\n"
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
    with pytest.raises(SpecError, match=r"unknown keys \['dropout'\]"):
        Network.from_config({**config, "dropout": 0.5})


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
    names = [name for name, _ in model.named_layers(nested=True)]
    assert names == ["dense1", "res1", "res1.dense2", "res1.dense3", "dense4"]
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
        ({"act": torch.nn.ReLU()}, "'act' must be an activation name"),
        ({"init": "xavier"}, "unknown init scheme 'xavier'"),
        ({"init": ["he_normal"]}, "unknown init scheme"),
        ({"seed": -1}, "'seed' must be a non-negative integer"),
        ({"seed": "7"}, "'seed' must be a non-negative integer"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(SpecError, match=message):
        build("4-3", **options)


@pytest.mark.parametrize(
    "table, message",
    [
        ({"type": ["dense"]}, "needs 'type' = one of"),
        ({"type": "dense", "units": -3}, "'units' must be a positive integer"),
        ({"type": "dense", "units": True}, "'units' must be a positive integer"),
        ({"type": "dense", "units": 0}, "dN with N >= 1"),
        ({"type": "dropout", "p": -0.5}, r"'p' must be a number in \[0, 1\)"),
        ({"type": "conv", "kernel": [3, -1], "filters": 2}, "'kernel' must be a non-negative integer"),
        ({"type": "conv", "kernel": 3, "filters": 2, "padding": [1]}, "'padding' must be an integer"),
        ({"type": "conv", "kernel": [3, 3, 3], "filters": 2}, "write cKxF .1-D. or cKxKxF"),
        ({"type": "dense", "units": 3, "from": "0"}, "'from' must be"),
        ({"type": "dense", "units": 3, "act": "relu d9"}, "'act' must be an activation name"),
        ({"type": "residual", "layers": "d3"}, "needs layers = \\[...\\]"),
        ({"type": "repeat", "times": 2, "layers": [{"type": "dense", "units": 3, "from": [0]}]}, "unknown keys"),
        ({"type": "concat", "branches": [{"type": "dense", "units": 3}]}, "branches = \\[\\[layers"),
        ("d3)", "unexpected '\\)'"),
        (3, "a layer must be a token string or a table"),
    ],
)
def test_bad_layer_tables(table, message):
    with pytest.raises(SpecError, match=message):
        build([{"type": "input", "shape": [1, 6, 6]}, table])


def test_bad_tables():
    with pytest.raises(SpecError, match="unknown keys \\['unit'\\]"):
        build([{"type": "input", "shape": [4]}, {"type": "dense", "unit": 3}])
    with pytest.raises(SpecError, match="'units' must be a positive integer"):
        build([{"type": "input", "shape": [4]}, {"type": "dense", "units": "3 d9"}])
    with pytest.raises(SpecError, match="exactly one of 'spec' or 'layers'"):
        build({"spec": "4-3", "layers": []})
    with pytest.raises(SpecError, match="given twice"):
        build({"spec": "4-3", "act": "tanh"}, act="relu")
    with pytest.raises(SpecError, match="no \\[model\\] table"):
        build_from_toml("[data]\nname = 'digits'\n")
    with pytest.raises(SpecError, match="cannot read the recipe missing.toml"):
        build_from_toml("missing.toml")
    with pytest.raises(SpecError, match="not valid TOML"):
        build_from_toml("[model\nspec = 1")


def test_plain_mlp_detection():
    assert build("784 d30 drop0.5 mx20x3 d10").is_plain_mlp()
    assert not build("784 d30 bn d10").is_plain_mlp()
    assert isinstance(build("784-10").layers[0], Dense)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("1x4x4 mp5", "window 5x5 is larger than the 1x4x4 output of the input"),
        ("1x28x28 c5x5x6 mp2 c5x5x16 mp2 c5x5x16", r"conv3: .* larger than the 16x4x4 output of pool2 \(mp2\)"),
        ("784 c3x3x8", "needs a signal .* but the input gives a vector of 784 features"),
        ("1x28x28 c3x8", "has a 1-D window but the input gives 1x28x28, a 2-D input"),
        ("1x28x28 c3x3x8:s2:same", "needs stride 1 with :same padding"),
        ("784 rep2(d30)", "must keep the shape, but they map 784 features .* to 30 features"),
        ("1x8x8 c3x3x4 c3x3x2+0", r"cannot concatenate conv1 \(c3x3x4\) \(4x6x6\) with the input \(1x8x8\)"),
        ("1x8x8 cat(c3x3x2, c1x1x2)", "branches give 2x6x6, 2x8x8"),
        ("1x8x8 res(c3x3x2)", "turns 1x8x8 .* into 2x6x6; no strided 1x1"),
        ("1x8x8 res(flat)", "a different rank"),
    ],
)
def test_shape_errors_name_layers_and_shapes(spec, message):
    with pytest.raises(SpecError, match=message) as info:
        build(spec)
    assert spec in str(info.value) and "^" in str(info.value).splitlines()[-1]


def test_residual_adds_input_and_projection():
    model = build("6 res(d6:tanh d6:linear) d2", loss="mse").double()
    res = model.layers[0]
    x = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(model.hidden(x, "res1"), res.body(x) + x)
    model = build("3x8x8 res(c3x3x4:s2:p1):relu", loss="mse").double()
    res = model.layers[0]
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    shortcut = torch.nn.functional.conv2d(x, res.projection.weight, res.projection.bias, stride=2)  # (2, 4, 4, 4)
    torch.testing.assert_close(model(x), torch.relu(res.body(x) + shortcut))


def test_repeat_applies_one_layer_with_tied_weights():
    model = build("4 rep3(d4:tanh)", loss="mse").double()
    dense = model.layers[0].body.dense1
    assert len(list(model.parameters())) == 2
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    step = lambda h: torch.tanh(h @ dense.weight.T + dense.bias)  # noqa: E731
    torch.testing.assert_close(model(x), step(step(step(x))))
    model(x).sum().backward()  # the gradient sums over the three applications
    manual = torch.autograd.grad(step(step(step(x))).sum(), dense.weight)[0]
    torch.testing.assert_close(dense.weight.grad, manual)


def test_concat_branches_on_channels():
    model = build("1x6x6 cat(c3x3x2:same, c1x1x3, mp1)", loss="mse")
    cat = model.layers[0]
    x = torch.randn(2, 1, 6, 6)
    expected = torch.cat([branch(x) for branch in cat.branches], dim=1)  # (2, 6, 6, 6)
    assert expected.shape == (2, 6, 6, 6)
    torch.testing.assert_close(model(x), expected)


def test_output_activation_placement_and_logits():
    x = torch.randn(3, 4)
    appended = build("4 d4 cat(d2, d3)", seed=0)  # a concat has no activation slot: a softmax layer follows
    assert appended.layer_names() == ["dense1", "cat1", "act1"] and appended.layers[-1].name == "softmax"
    torch.testing.assert_close(appended(x), torch.softmax(appended.logits(x), dim=1))
    residual = build("4 d4 res(d4)", seed=0)  # a residual block ending the net applies it after the sum
    res = residual.layers[-1]
    assert residual.layer_names() == ["dense1", "res1"] and res.activation.name == "softmax"
    h = residual.layers[0](x)
    torch.testing.assert_close(residual.logits(x), res.body(h) + h)
    assert build("4 d4 res(d4) d2").layers[1].activation.name == "linear"  # hidden sums stay linear
    linear = build("4 d4 mx3x2", loss="mse")
    torch.testing.assert_close(linear.logits(x), linear(x))


@pytest.mark.parametrize(
    "spec, loss",
    [
        ("64-32-10", "cross_entropy"),
        ("1x6x6 c3x3x2 c3x3x3", "binary_cross_entropy"),
        ("1x6x6 sc3x3x2:same", "binary_cross_entropy"),
        ("8 d5 d3+0", "cross_entropy"),
    ],
)
def test_logits_skip_the_output_activation(spec, loss):
    model = build(spec, loss=loss, seed=0).double()
    x = torch.randn(4, *model.input_shape, dtype=torch.float64)
    calls = []
    model.layers[-1].activation.register_forward_hook(lambda m, args, out: calls.append(out))
    z = model.logits(x)  # must not run (nor hook into) the output activation
    assert calls == []
    s = model(x)
    assert len(calls) == 1
    squash = torch.sigmoid if loss == "binary_cross_entropy" else lambda t: torch.softmax(t, dim=1)
    torch.testing.assert_close(s, squash(z))
    z.sum().backward()  # the logits are differentiable w.r.t. every weight
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_predict_and_hidden_take_inputs_of_any_dtype_and_device():
    model = build("4-3-2", seed=0).double()
    x = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=torch.uint8)  # raw integer features
    expected = model(x.double()).argmax(1)
    assert torch.equal(model.predict(x), expected)
    assert torch.equal(model.predict(x.float().numpy()), expected)
    torch.testing.assert_close(model.hidden(x.float(), "dense1"), model.layers[0](x.double()))
    on_meta = build("4-3-2", seed=0).to("meta")  # stands for a CUDA model fed CPU data
    out = on_meta.predict(torch.zeros(5, 4))
    assert out.device.type == "meta" and out.shape == (5,)


def test_weights_too_large_for_memory_are_a_spec_error(monkeypatch):
    import capas.models.network as network

    def refuse(self):  # what torch's allocator raises (without really asking for terabytes)
        raise RuntimeError(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 3240000000000000000 bytes"
        )

    monkeypatch.setattr(network.Builder, "build", refuse)
    with pytest.raises(SpecError, match="not enough memory for the weights of '784 d900000000 d10'"):
        build("784-900000000-10")
    monkeypatch.setattr(network.Builder, "build", lambda self: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # other failures are bugs, not user errors: not masked
        build("784-10")


def test_predict_binary_and_regression():
    model = build("3-1", loss="binary_cross_entropy", seed=0)
    x = torch.randn(6, 3)
    assert torch.equal(model.predict(x), (model(x)[:, 0] > 0.5).long())
    regression = build("3-2", loss="mse", seed=0)
    torch.testing.assert_close(regression.predict(x), regression(x).detach())


def test_skip_into_a_convolution_concatenates_channels():
    model = build("1x6x6 c3x3x2:same c3x3x3:same+0", loss="mse")
    conv2 = model.layers[1]
    assert conv2.in_channels == 2 + 1 and model.output_shape == (3, 6, 6)
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(model(x), conv2(torch.cat([model.layers[0](x), x], dim=1)))


def test_multi_label_predict():
    model = build("3-4", loss="binary_cross_entropy", seed=0)
    x = torch.randn(5, 3)
    assert torch.equal(model.predict(x), (model(x) > 0.5).long())


def test_config_names_the_model_kind_and_old_configs_rebuild():
    net = build("Tx6 d4:tanh d2", loss="mse", seed=0)
    config = net.config()
    assert config["model"] == "network" and config["spec"] == "Tx6 d4:tanh d2"
    old = {k: v for k, v in config.items() if k != "model"}
    assert Network.from_config(old).config() == config
