"""Issue 14's layers against torch (float64) or hand-computed cases, and the course's counts:
depthwise-only and locally connected convolution, per-axis strides, global average pooling,
LeNet-5's trainable subsampling, C3 partial table and RBF output; the connections count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from harness import check_against_reference, check_config_roundtrip, n_params
from torch import nn

from capas.diagnostics.summary import summarize
from capas.errors import SpecError
from capas.layers import Conv, DepthwiseConv, GlobalAvgPool, LocallyConnected, PartialConv, RBFOutput, Subsampling
from capas.layers.lenet import LENET_C3_TABLE
from capas.models import build
from capas.notation import parse

LENET5 = "1x28x28 c5x5x6:p2 sub2 pc5x5x16 sub2 c5x5x120 d84 rbf10"


def test_depthwise_matches_grouped_conv_and_filters_each_channel_alone():
    layer = DepthwiseConv(3, (3, 2), stride=(2, 1), padding=1, depth_multiplier=2, activation="tanh")
    reference = nn.Sequential(nn.Conv2d(3, 6, (3, 2), stride=(2, 1), padding=1, groups=3), nn.Tanh())
    x = torch.randn(4, 3, 9, 8)
    out = check_against_reference(layer, reference, x)
    assert out.shape == (4, 6, 5, 9)
    # channel 1 of the input reaches only outputs 2 and 3 (c*m + j)
    x2 = x.double().clone()
    x2[:, 1] += 1.0
    changed = (layer(x2) - layer(x.double())).abs().amax(dim=(0, 2, 3)) > 0
    assert changed.tolist() == [False, False, True, True, False, False]
    check_config_roundtrip(layer)
    one_d = DepthwiseConv(2, 3, dims=1)
    check_against_reference(one_d, nn.Conv1d(2, 2, 3, groups=2), torch.randn(3, 2, 10))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_xception_exercise_132_weights_with_depthwise_only():
    """Course file 000: 100x100 input; layer 1 = 6 filters of width 4 and 5 of width 3, padded
    to concatenate (11 maps); layer 2 = a 1x1x6 block, then width 3 on each previous output."""
    first = "1x100x100 cat(c4x4x6:same, c3x3x5:same)"
    rows = {row.name: row for row in summarize(first + " c1x1x6 dw3x3").layers}
    assert rows["cat1"].output_shape == (11, 100, 100)
    assert rows["conv3"].params == 11 * 6 + 6 == 72
    assert rows["dwconv1"].params == 6 * (3 * 3 + 1) == 60
    assert rows["conv3"].params + rows["dwconv1"].params == 132
    assert rows["dwconv1"].output_shape == (6, 98, 98)
    separable = {row.name: row for row in summarize(first + " c1x1x6 sc3x3x6").layers}
    assert separable["conv3"].params + separable["sepconv1"].params == 168  # the 1x1 mixing adds 36


def test_locally_connected_equals_conv_when_all_positions_share_weights():
    conv = Conv(2, 3, (3, 2), stride=(2, 1), activation="relu")
    local = LocallyConnected(2, 3, (7, 5), (3, 2), stride=(2, 1), activation="relu").double()
    conv = conv.double()
    with torch.no_grad():
        local.weight.copy_(conv.weight.flatten(1).expand(local.positions, -1, -1))
        local.bias.copy_(conv.bias[:, None].expand(-1, local.positions))
    x = torch.randn(4, 2, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(local(x), conv(x), atol=1e-12, rtol=1e-10)
    assert local(x).shape == (4, 3, 3, 4)
    check_config_roundtrip(local)


def test_locally_connected_1d_hand_computed():
    """Input [1, 2, 3, 4, 5], windows of 2 moved by 2 -> positions [1,2] and [3,4], each with
    its own weights: (1*1 + 2*10 + 0.5, 3*(-1) + 4*2 - 1) = (21.5, 4)."""
    layer = LocallyConnected(1, 1, 5, 2, stride=2, dims=1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[1.0, 10.0]], [[-1.0, 2.0]]]))
        layer.bias.copy_(torch.tensor([[0.5, -1.0]]))
    out = layer(torch.arange(1.0, 6.0, dtype=torch.float64).view(1, 1, 5))
    assert out.tolist() == [[[21.5, 4.0]]]


def test_locally_connected_weight_count_and_gradient_per_position():
    """File 000's "conexión convolutiva": a convolution's weights once per position."""
    layer = LocallyConnected(1, 4, 100, 4, dims=1)
    assert n_params(layer) == 97 * 4 * (4 + 1)
    assert summarize("1x100 lc4x4").total_params == 97 * 4 * 5
    layer(torch.randn(2, 1, 100))[:, :, 0].sum().backward()  # only position 0's weights learn
    assert layer.weight.grad[1:].abs().sum() == 0 and layer.weight.grad[0].abs().sum() > 0


def test_per_axis_strides_and_kernels_match_torch():
    spec = parse("1x12x10 c3x5x4:s2x1 mp2x1:s1x2 d3")
    assert spec.layers[0].stride == (2, 1) and spec.canonical() == "1x12x10 c3x5x4:s2x1 mp2x1:s1x2 d3"
    net = build(spec.canonical()).double()
    conv = net.layers[0]
    reference = nn.Conv2d(1, 4, (3, 5), stride=(2, 1)).double()
    with torch.no_grad():
        reference.weight.copy_(conv.weight)
        reference.bias.copy_(conv.bias)
    x = torch.randn(2, 1, 12, 10, dtype=torch.float64)
    torch.testing.assert_close(conv(x), torch.relu(reference(x)))
    rows = summarize("1x12x10 c3x5x4:s2x1 mp2x1:s1x2 d3").layers
    assert [row.output_shape for row in rows[:2]] == [(4, 5, 6), (4, 4, 3)]


def test_global_average_pooling():
    x = torch.randn(3, 5, 4, 6)
    torch.testing.assert_close(GlobalAvgPool()(x), nn.AdaptiveAvgPool2d(1)(x).flatten(1))
    torch.testing.assert_close(GlobalAvgPool(dims=1)(x[:, :, 0]), x[:, :, 0].mean(-1))
    rows = summarize("1x8x8 c3x3x10 gap").layers
    assert rows[1].output_shape == (10,) and rows[1].params == 0


def test_lenet_subsampling_hand_computed():
    layer = Subsampling(2, 2, activation="linear").double()
    with torch.no_grad():
        layer.coefficient.copy_(torch.tensor([2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0, dtype=torch.float64).view(1, 2, 4, 4)
    # map 0, top-left window: 0 + 1 + 4 + 5 = 10 -> 2 * 10 + 0.5; map 1 bottom-right: 26+27+30+31 = 114 -> -114
    out = layer(x)
    assert out.shape == (1, 2, 2, 2) and out[0, 0, 0, 0] == 20.5 and out[0, 1, 1, 1] == -114.0
    assert n_params(layer) == 4
    fresh = Subsampling(3, 2).double()  # starts as an average pooling
    torch.testing.assert_close(fresh(x[:, :1].expand(1, 3, 4, 4)), F.avg_pool2d(x[:, :1].expand(1, 3, 4, 4), 2))
    check_config_roundtrip(layer)


def test_c3_partial_table_equals_a_masked_convolution():
    layer = PartialConv(6, 16, 5, activation="tanh").double()
    assert sum(map(len, LENET_C3_TABLE)) == 60 and n_params(layer) == 60 * 25 + 16 == 1516
    mask = torch.zeros(16, 6, 1, 1, dtype=torch.float64)
    for out, row in enumerate(LENET_C3_TABLE):
        mask[out, list(row)] = 1
    full = layer.full_weight()
    assert torch.equal(full * mask, full)  # nothing outside the table
    x = torch.randn(2, 6, 14, 14, dtype=torch.float64, requires_grad=True)
    expected = torch.tanh(F.conv2d(x, full.detach() * mask, layer.bias.detach()))
    torch.testing.assert_close(layer(x), expected)
    layer(x).sum().backward()
    assert layer.weight.grad.shape == (60, 5, 5)
    check_config_roundtrip(layer)
    custom = PartialConv(2, 2, 3, table=[[0], [0, 1]])
    assert n_params(custom) == 3 * 9 + 2


def test_rbf_output_is_minus_squared_distance():
    layer = RBFOutput(4, 3).double()
    x = torch.randn(5, 2, 2, dtype=torch.float64)
    expected = -(torch.cdist(x.flatten(1), layer.weight.detach()) ** 2)
    torch.testing.assert_close(layer(x), expected)
    assert set(layer.weight.unique().tolist()) <= {-1.0, 1.0}
    check_config_roundtrip(layer)


def test_lenet5_parameters_and_connections_as_published():
    """LeCun et al. 1998: C1 122,304 connections (156 params), S2 5,880 (12), C3 151,600 (1,516),
    S4 2,000 (32), C5 48,120, F6 10,164, output 840: 340,908 connections, 60,840 parameters."""
    summary = summarize(LENET5, act="tanh")
    rows = [(row.params, row.connections) for row in summary.layers[:7]]
    assert rows == [(156, 122_304), (12, 5_880), (1_516, 151_600), (32, 2_000), (48_120, 48_120), (10_164, 10_164), (840, 840)]  # fmt: skip
    assert (summary.total_params, summary.connections) == (60_840, 340_908)
    assert [row.output_shape for row in summary.layers[:5]] == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]  # fmt: skip
    assert "340,908 connections" in summary.table().caption


def test_connections_of_plain_layers():
    """Dense n -> m: n*m + m; a convolution: per output unit C*K^2 + 1; pooling: none."""
    summary = summarize("1x8x8 c3x3x4 mp2 dw3x3x2 d5")
    assert [row.connections for row in summary.layers] == [4 * 36 * 10, 0, 8 * 1 * 10, 8 * 5 + 5]
    assert summarize("784-30-10").connections == 784 * 30 + 30 + 30 * 10 + 10


def test_lenet5_builds_saves_and_trains_a_step():
    net = build(LENET5, act="tanh", seed=0)
    out = net(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    rebuilt = type(net).from_config(net.config())
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(rebuilt(x), net(x))
    net.logits(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1x4x4 c5x5x2 d3", "window 5x5 .* larger than the 1x4x4"),
        ("1x4x4 lc5x5x2 d3", "window 5x5 .* larger than the 1x4x4"),
        ("1x4x4 dw5x5 d3", "window 5x5 .* larger than the 1x4x4"),
        ("1x4x4 sub5 d3", "window 5x5 is larger than the 1x4x4"),
        ("1x8x8 c3x3x2:s0 d3", "stride must be at least 1"),
        ("1x8x8 c3x3x2:s2x0 d3", "every stride must be at least 1"),
        ("1x8x8 c3x3x2:s2x2x2 d3", "3 strides for a 2-D input"),
        ("1x8x8 dw3x3x2x2 d3", "write dwK .* or dwKxK"),
        ("1x8 dw3x3x2 d3", "2-D window"),
        ("1x8x8 c3x3x4 pc3x3x5 d3", "no default connection table for 4 -> 5"),
        ("16 gap", "'gap' averages each map"),
        ("1x8x8 sub2:s1 d3", "does not apply to subsampling"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(SpecError, match=message) as info:
        build(spec)
    assert "Traceback" not in str(info.value)


def test_bad_python_arguments():
    with pytest.raises(SpecError, match="stride must be integers >= 1"):
        DepthwiseConv(2, 3, stride=0)
    with pytest.raises(SpecError, match="stride must be integers >= 1"):
        LocallyConnected(1, 2, (5, 5), 3, stride=(1, 0))
    with pytest.raises(SpecError, match="larger than the input"):
        LocallyConnected(1, 2, (5, 5), 6)
    with pytest.raises(SpecError, match="distinct input maps"):
        PartialConv(2, 2, 3, table=[[0], [2]])
    with pytest.raises(SpecError, match="LocallyConnected expects inputs"):
        LocallyConnected(1, 2, (5, 5), 3)(torch.zeros(1, 1, 6, 5))
