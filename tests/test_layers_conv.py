"""Convolution layers against torch.nn, the course's output-length formula and exercises."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from harness import check_against_reference, check_config_roundtrip, n_params
from torch import nn

from capas.errors import SpecError
from capas.layers import Conv, ConvMaxout, Pool, SeparableConv, conv_output_length


def test_output_length_formula_matches_torch():
    checked = 0
    for L, k, s, d, p in itertools.product(range(1, 14), (1, 2, 3, 5), (1, 2, 3), (1, 2, 3), (0, 1, 2)):
        expected = conv_output_length(L, k, s, d, p)
        if expected < 1:
            with pytest.raises(RuntimeError):
                F.conv1d(torch.zeros(1, 1, L), torch.zeros(1, 1, k), stride=s, dilation=d, padding=p)
            continue
        out = F.conv1d(torch.zeros(1, 1, L), torch.zeros(1, 1, k), stride=s, dilation=d, padding=p)
        assert out.shape[-1] == expected, (L, k, s, d, p)
        checked += 1
    assert checked > 1000
    assert conv_output_length(37, 5, padding="same") == 37
    assert conv_output_length(37, 5, padding="valid") == 33


def test_course_exercises():
    """Course file 000: "paso 2, salto 2, ancho 4", 100 inputs, 4 units in the layer."""
    layer = Conv(1, 4, 4, stride=2, dilation=2, dims=1)
    assert n_params(layer) == 4 * 4 + 4
    assert layer(torch.zeros(1, 1, 100)).shape == (1, 4, conv_output_length(100, 4, 2, 2)) == (1, 4, 47)
    # 100x100 input, salto=paso=1, ancho=4 -> 97x97
    assert Conv(1, 1, 4)(torch.zeros(1, 1, 100, 100)).shape == (1, 1, 97, 97)
    # paso=1, salto=ancho: a reducing layer, L_out = floor(L_in / ancho); 100 -> 25 -> 6 -> 1
    lengths = [100]
    while lengths[-1] >= 4:
        lengths.append(Pool("max", 4, dims=1)(torch.zeros(1, 1, lengths[-1])).shape[-1])
    assert lengths == [100, 25, 6, 1]


CONV_CASES = [
    dict(dims=1, kernel_size=3),
    dict(dims=1, kernel_size=4, stride=2, dilation=2, padding=1),
    dict(dims=2, kernel_size=3, padding="same"),
    dict(dims=2, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(dims=2, kernel_size=2, dilation=2),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_conv_matches_torch(case, activation):
    torch.manual_seed(0)
    dims = case["dims"]
    layer = Conv(3, 4, activation=activation, **case)
    args = {k: v for k, v in case.items() if k != "dims"}
    act = {"linear": nn.Identity(), "relu": nn.ReLU(), "tanh": nn.Tanh()}[activation]
    reference = nn.Sequential(nn.Conv1d(3, 4, **args) if dims == 1 else nn.Conv2d(3, 4, **args), act)
    x = torch.randn(2, 3, 9) if dims == 1 else torch.randn(2, 3, 7, 6)
    check_against_reference(layer, reference, x)
    assert layer.weight is layer.conv.weight and layer.bias is layer.conv.bias


class ConvMaxoutByHand(nn.Module):
    """Max over consecutive groups of ``pieces`` output channels of a plain convolution."""

    def __init__(self, conv: nn.Module, pieces: int):
        super().__init__()
        self.conv, self.pieces = conv, pieces

    def forward(self, x):
        z = self.conv(x)
        groups = [z[:, j : j + self.pieces].max(dim=1).values for j in range(0, z.shape[1], self.pieces)]
        return torch.stack(groups, dim=1)


@pytest.mark.parametrize("dims", [1, 2])
def test_conv_maxout_matches_hand_formula(dims):
    torch.manual_seed(0)
    layer = ConvMaxout(2, 3, 3, pieces=3, dims=dims, padding=1)
    with torch.no_grad():
        layer.bias.normal_()
    conv = nn.Conv1d(2, 9, 3, padding=1) if dims == 1 else nn.Conv2d(2, 9, 3, padding=1)
    x = torch.randn(2, 2, 8) if dims == 1 else torch.randn(2, 2, 5, 5)
    out = check_against_reference(layer, ConvMaxoutByHand(conv, 3), x)
    assert out.shape == (2, 3, *x.shape[2:])


@pytest.mark.parametrize("depth_multiplier", [1, 2])
def test_separable_conv_matches_depthwise_then_pointwise(depth_multiplier):
    torch.manual_seed(0)
    m = depth_multiplier
    layer = SeparableConv(3, 5, 3, padding=1, activation="relu", depth_multiplier=m)
    reference = nn.Sequential(
        nn.Conv2d(3, 3 * m, 3, padding=1, groups=3, bias=False), nn.Conv2d(3 * m, 5, 1), nn.ReLU()
    )
    check_against_reference(layer, reference, torch.randn(2, 3, 6, 6))
    full = Conv(3, 5, 3)
    assert n_params(layer) == 3 * m * 9 + 3 * m * 5 + 5 < n_params(full) == 3 * 5 * 9 + 5


@pytest.mark.parametrize(
    ("pool", "reference", "shape"),
    [
        (Pool("max", 2, dims=1), nn.MaxPool1d(2), (2, 3, 9)),
        (Pool("avg", 3, stride=2, dims=1), nn.AvgPool1d(3, 2), (2, 3, 9)),
        (Pool("max", 2), nn.MaxPool2d(2), (2, 3, 6, 7)),
        (Pool("avg", (2, 3)), nn.AvgPool2d((2, 3)), (2, 3, 6, 7)),
        (Pool("max", 3, stride=2, padding=1), nn.MaxPool2d(3, 2, 1), (2, 3, 6, 7)),
        (Pool("avg", 2, dims=1, padding=1), nn.AvgPool1d(2, 2, 1), (2, 3, 9)),
    ],
)
def test_pool_matches_torch(pool, reference, shape):
    torch.manual_seed(0)
    check_against_reference(pool, reference, torch.randn(shape))
    assert n_params(pool) == 0


@pytest.mark.parametrize(
    "layer",
    [
        Conv(3, 4, (3, 2), stride=(2, 1), padding=1, activation="elu:0.5", init="he_normal"),
        Conv(2, 2, 3, dims=1, padding="same", bias=False),
        ConvMaxout(3, 2, 3, pieces=4, dims=1),
        SeparableConv(3, 4, 3, depth_multiplier=2, activation="tanh"),
        Pool("avg", 2, stride=1, dims=1),
        Pool("max", (3, 2), padding=(1, 0)),
    ],
    ids=["conv2d", "conv1d-same", "conv-maxout", "separable", "pool1d", "pool2d-padded"],
)
def test_config_roundtrip(layer):
    check_config_roundtrip(layer)


def test_errors():
    with pytest.raises(SpecError, match="needs stride 1"):
        Conv(1, 1, 3, stride=2, padding="same")
    with pytest.raises(SpecError, match="too short for kernel 5"):
        Conv(1, 1, 5, dims=1)(torch.zeros(1, 1, 4))
    with pytest.raises(SpecError, match=r"C=3, got shape \(2, 2, 5, 5\)"):
        Conv(3, 1, 3)(torch.zeros(2, 2, 5, 5))
    with pytest.raises(SpecError, match="has 3 entries but the layer is 2-D"):
        Conv(1, 1, (3, 3, 3))
    with pytest.raises(SpecError, match="dims must be 1"):
        Conv(1, 1, 3, dims=3)
    with pytest.raises(SpecError, match="integers >= 0"):
        Conv(1, 1, 3, padding=-1)
    with pytest.raises(SpecError, match="'max' or 'avg'"):
        Pool("min", 2)
    with pytest.raises(SpecError, match="exceeds half the window"):
        Pool("max", 2, padding=2)
    with pytest.raises(SpecError, match="at least as large as the window"):
        Pool("max", 4)(torch.zeros(1, 1, 3, 3))
