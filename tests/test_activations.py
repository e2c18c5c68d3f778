"""Activations: values by hand and against torch, derivatives against autograd (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from capas.errors import SpecError
from capas.layers.activations import ACTIVATIONS, ALIASES, Softmax, get_activation

SMOOTH_WHERE_DEFINED = [name for name, cls in ACTIVATIONS.items() if cls.elementwise and name not in ("step", "sgn")]


def random_points(shape=(64, 7), seed=0) -> torch.Tensor:
    """Points in (-4, 4) at least 1e-2 away from the kink at 0."""
    z = torch.empty(shape, dtype=torch.float64).uniform_(-4, 4, generator=torch.Generator().manual_seed(seed))
    return z + torch.where(z >= 0, 1e-2, -1e-2)


@pytest.mark.parametrize("name", SMOOTH_WHERE_DEFINED)
@pytest.mark.parametrize("options", [{}, "custom"])
def test_derivative_matches_autograd(name, options):
    cls = ACTIVATIONS[name]
    kwargs = {cls.options[0]: 0.3} if options == "custom" and cls.options else {}
    act = get_activation(name, **kwargs)
    z = random_points().requires_grad_()
    s = act(z)
    (autograd,) = torch.autograd.grad(s.sum(), z)
    torch.testing.assert_close(act.derivative(z.detach(), s.detach()), autograd, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("linear", nn.Identity()),
        ("sigmoid", nn.Sigmoid()),
        ("tanh", nn.Tanh()),
        ("softsign", nn.Softsign()),
        ("softmax", nn.Softmax(dim=-1)),
        ("relu", nn.ReLU()),
        ("leaky_relu", nn.LeakyReLU(0.1)),
        ("elu", nn.ELU(1.0)),
        ("selu", nn.SELU()),
    ],
)
def test_forward_matches_torch(name, reference):
    z = random_points()
    torch.testing.assert_close(get_activation(name)(z), reference(z), atol=1e-14, rtol=0)


def test_hand_worked_values():
    z = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0], dtype=torch.float64)
    expect = {
        "step": [0, 0, 1, 1, 1],
        "sgn": [-1, -1, 1, 1, 1],
        "relu": [0, 0, 0, 1, 3],
        "leaky_relu": [-0.2, -0.1, 0, 1, 3],
        "softsign": [-2 / 3, -0.5, 0, 0.5, 0.75],
        "elu": [math.exp(-2) - 1, math.exp(-1) - 1, 0, 1, 3],
        "sigmoid": [1 / (1 + math.exp(2)), 1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-3))],
    }
    for name, values in expect.items():
        torch.testing.assert_close(get_activation(name)(z), torch.tensor(values, dtype=torch.float64), msg=name)


@pytest.mark.parametrize("name", ["step", "sgn"])
def test_threshold_units_have_zero_derivative(name):
    act = get_activation(name)
    z = random_points()
    assert torch.equal(act.derivative(z, act(z)), torch.zeros_like(z))


def test_slide_identities():
    """tanh(z) = 2 sigmoid(2z) - 1 (slides' exercise) and softsign' = (g(z)/z)^2."""
    z = random_points()
    tanh, sigmoid, fast = (get_activation(n) for n in ("tanh", "sigmoid", "softsign"))
    torch.testing.assert_close(tanh(z), 2 * sigmoid(2 * z) - 1)
    torch.testing.assert_close(fast.derivative(z, fast(z)), (fast(z) / z) ** 2)


def test_softmax_jvp_and_diagonal_match_autograd():
    softmax = get_activation("softmax")
    assert isinstance(softmax, Softmax) and not softmax.elementwise
    z = random_points((5, 6))
    v = random_points((5, 6), seed=1)
    s = softmax(z)
    _, jvp = torch.autograd.functional.jvp(softmax, z, v)
    torch.testing.assert_close(softmax.jacobian_vector_product(s, v), jvp, atol=1e-12, rtol=1e-10)
    jacobian = torch.autograd.functional.jacobian(softmax, z[0])  # (6, 6)
    torch.testing.assert_close(softmax.derivative(z[0], s[0]), jacobian.diagonal())
    torch.testing.assert_close(jacobian, jacobian.T)  # so the JVP is also the VJP


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_config_roundtrip(name):
    act = get_activation(name)
    rebuilt = get_activation(act.config())
    assert type(rebuilt) is type(act) and rebuilt.config() == act.config()


def test_names_aliases_and_options():
    for alias, name in ALIASES.items():
        assert get_activation(alias).name == name
    assert get_activation(" TanH ").name == "tanh"
    lrelu = get_activation("lrelu:0.2")
    assert lrelu.slope == 0.2 and lrelu.config() == {"type": "activation", "name": "leaky_relu", "slope": 0.2}
    assert get_activation("leaky_relu").slope == 0.1
    assert get_activation("elu", alpha=0.5).alpha == 0.5
    assert "slope=0.2" in repr(lrelu)
    same = get_activation("relu")
    assert get_activation(same) is same


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("swish", {}, "valid names: linear"),
        ("relu", {"slope": 0.1}, "takes no options"),
        ("relu:0.1", {}, "no ':value'"),
        ("elu:0.1", {"alpha": 0.2}, "no ':value'"),
        ("leaky_relu:abc", {}, "not a number"),
        ("leaky_relu", {"slope": 1.5}, "[0, 1)"),
        ("elu:-1", {}, "positive"),
        (3, {}, "must be a name"),
        ({"type": "dense", "name": "relu"}, {}, "not an activation config"),
    ],
)
def test_bad_activation_specs_raise_spec_error(spec, options, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace(")", r"\)")):
        get_activation(spec, **options)


def test_softmax_normalises_the_class_axis_of_maps():
    # a classifier ending in a convolution scores K classes per position: (N, K, H, W)
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    s = get_activation("softmax")(z)
    torch.testing.assert_close(s, nn.Softmax2d()(z))
    torch.testing.assert_close(s.sum(dim=1), torch.ones(2, 4, 5, dtype=torch.float64))
    v = torch.randn_like(z)
    _, jvp = torch.autograd.functional.jvp(get_activation("softmax"), z, v)
    torch.testing.assert_close(get_activation("softmax").jacobian_vector_product(s, v), jvp)
