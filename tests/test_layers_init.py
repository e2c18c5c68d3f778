"""Initialisation schemes: sample statistics against their formulas; defaults per activation."""

from __future__ import annotations

import math

import pytest
import torch

from capas.errors import SpecError
from capas.layers import SCHEMES, Conv, Dense, Maxout, init_for, initialize_

FAN_IN, FAN_OUT = 300, 200  # a (200, 300) weight: 60,000 samples

# scheme -> (expected standard deviation, uniform bound or None)
GLOROT_R = math.sqrt(6 / (FAN_IN + FAN_OUT))
EXPECTED = {
    "glorot_uniform": (GLOROT_R / math.sqrt(3), GLOROT_R),
    "glorot_normal": (math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    "glorot_uniform_x4": (4 * GLOROT_R / math.sqrt(3), 4 * GLOROT_R),
    "he_uniform": (math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
    "he_normal": (math.sqrt(2 / FAN_IN), None),
    "lecun_normal": (math.sqrt(1 / FAN_IN), None),
    "normal": (0.01, None),
}


@pytest.mark.parametrize("scheme", list(EXPECTED))
def test_sample_statistics_match_formula(scheme):
    std, bound = EXPECTED[scheme]
    w = initialize_(torch.empty(FAN_OUT, FAN_IN), scheme, FAN_IN, FAN_OUT, generator=torch.Generator().manual_seed(0))
    # the standard error of a sample std over n = 60,000 draws is below 0.5 %
    assert w.std().item() == pytest.approx(std, rel=0.02)
    assert abs(w.mean().item()) < 4 * std / math.sqrt(w.numel())
    if bound is not None:
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.99 * bound  # it really fills the whole range
    else:  # normal: excess kurtosis ~ 0 (a uniform has -1.2)
        kurtosis = ((w - w.mean()) ** 4).mean() / w.var() ** 2 - 3
        assert abs(kurtosis.item()) < 0.1


def test_he_equals_course_table_when_fans_agree():
    """The course writes He as sqrt(2) x Glorot, which is He when fan_in == fan_out."""
    n = 250
    w = initialize_(torch.empty(n, n), "he_uniform", n, n, generator=torch.Generator().manual_seed(1))
    assert w.abs().max().item() <= math.sqrt(2) * math.sqrt(6 / (n + n)) + 1e-12


def test_zeros_and_generator_reproducibility():
    assert torch.equal(initialize_(torch.ones(3, 4), "zeros", 4, 3), torch.zeros(3, 4))
    a = initialize_(torch.empty(5, 5), "he_normal", 5, 5, generator=torch.Generator().manual_seed(7))
    b = initialize_(torch.empty(5, 5), "he_normal", 5, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_init_for_table():
    assert [init_for(a) for a in ("linear", "sigmoid", "logistic", "tanh", "softmax")] == ["glorot_uniform"] * 5
    assert [init_for(a) for a in ("relu", "leaky_relu", "lrelu", "elu")] == ["he_uniform"] * 4
    assert init_for("selu") == "lecun_normal"
    assert init_for("maxout") == "glorot_uniform"
    assert set(SCHEMES) >= set(EXPECTED) | {"zeros"}


def test_errors():
    with pytest.raises(SpecError, match="valid schemes"):
        initialize_(torch.empty(2, 2), "xavier", 2, 2)
    with pytest.raises(SpecError, match="positive"):
        initialize_(torch.empty(2, 2), "he_normal", 0, 2)
    with pytest.raises(SpecError, match="unknown activation"):
        init_for("swish")
    with pytest.raises(SpecError, match="valid schemes"):
        Dense(3, 2, init="kaiming")


def test_layers_use_the_scheme_of_their_activation():
    torch.manual_seed(0)
    relu = Dense(400, 300, activation="relu")
    assert relu.init_scheme == "he_uniform"
    assert relu.weight.abs().max().item() <= math.sqrt(6 / 400)
    assert relu.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert torch.equal(relu.bias, torch.zeros(300))

    tanh = Dense(400, 300, activation="tanh", init="glorot_normal")
    assert tanh.weight.std().item() == pytest.approx(math.sqrt(2 / 700), rel=0.02)

    conv = Conv(16, 32, 5, activation="tanh")  # fans count the kernel area
    r = math.sqrt(6 / (16 * 25 + 32 * 25))
    assert conv.weight.abs().max().item() <= r
    assert conv.weight.std().item() == pytest.approx(r / math.sqrt(3), rel=0.03)

    maxout = Maxout(300, 100, pieces=3)
    assert maxout.weight.abs().max().item() <= math.sqrt(6 / 400)


def test_reset_parameters_is_recallable():
    torch.manual_seed(0)
    layer = Dense(20, 10, activation="sigmoid")
    with torch.no_grad():
        layer.bias.fill_(3.0)
    before = layer.weight.detach().clone()
    layer.reset_parameters()
    assert not torch.equal(before, layer.weight)
    assert torch.equal(layer.bias, torch.zeros(10))
    torch.manual_seed(5)
    layer.reset_parameters()
    first = layer.weight.detach().clone()
    torch.manual_seed(5)
    layer.reset_parameters()
    assert torch.equal(first, layer.weight)


@pytest.mark.parametrize(("scheme", "low", "high"), [("he_normal", 0.3, 3.0), ("glorot_normal", 0.0, 1e-4)])
def test_why_relu_needs_he(scheme, low, high):
    """Through 20 ReLU layers of width 256, He keeps the mean square of the signal (each
    layer halves it, the factor 2 restores it); Glorot loses half per layer: 2^-20."""
    torch.manual_seed(0)
    x = torch.randn(512, 256, dtype=torch.float64)
    s = x
    for _ in range(20):
        s = Dense(256, 256, activation="relu", init=scheme).double()(s)
    ratio = (s.square().mean() / x.square().mean()).item()
    assert low < ratio < high


def test_an_explicit_init_reaches_every_weight_of_a_separable_conv():
    from capas.layers import SeparableConv

    torch.manual_seed(0)
    layer = SeparableConv(4, 6, 3, init="normal")  # the classic N(0, 0.01^2) for both steps
    for weight in (layer.depthwise.weight, layer.pointwise.weight):  # 36 and 24 draws (glorot: std ~0.33)
        assert 0.006 < weight.std().item() < 0.015
    default = SeparableConv(4, 6, 3, activation="relu")  # depthwise step is linear: glorot by default
    assert default.depthwise.weight.abs().max().item() <= math.sqrt(6 / (9 + 9))
