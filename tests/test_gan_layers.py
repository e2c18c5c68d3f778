"""Transposed convolution and upsampling tokens (``tc``, ``up``) against torch.nn in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from capas.diagnostics.summary import summarize
from capas.errors import SpecError
from capas.layers import TransposedConv, Upsample, layer_from_config
from capas.layers.upsample import transposed_output_length
from capas.models import build


@pytest.mark.parametrize(("dims", "stride", "padding", "dilation"), [(2, 2, 1, 1), (2, 1, 0, 2), (1, 3, 2, 1)])
def test_transposed_conv_equals_torch_in_float64(dims, stride, padding, dilation):
    torch.manual_seed(0)
    layer = TransposedConv(3, 5, 4, stride=stride, padding=padding, dilation=dilation, activation="tanh", dims=dims)
    layer = layer.double()
    reference = (nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d)(
        3, 5, 4, stride=stride, padding=padding, dilation=dilation
    ).double()
    reference.weight.data.copy_(layer.weight.data)
    reference.bias.data.copy_(layer.bias.data)
    x = torch.randn(2, 3, *([6] * dims), dtype=torch.float64, requires_grad=True)
    out = layer(x)
    expected = torch.tanh(reference(x))
    assert torch.allclose(out, expected, atol=1e-12)
    length = transposed_output_length(6, 4, stride, dilation, padding)
    assert out.shape == (2, 5, *([length] * dims))
    (grad,) = torch.autograd.grad(out.sum(), x)
    (ref_grad,) = torch.autograd.grad(expected.sum(), x)
    assert torch.allclose(grad, ref_grad, atol=1e-12)
    assert torch.equal(layer.pre_activation(x), reference(x))
    rebuilt = layer_from_config(layer.config())
    assert isinstance(rebuilt, TransposedConv) and rebuilt.config() == layer.config()


def test_upsample_is_nearest_interpolation():
    x = torch.arange(12.0, dtype=torch.float64).reshape(1, 3, 2, 2)
    out = Upsample(3)(x)
    assert torch.equal(out, F.interpolate(x, scale_factor=3, mode="nearest"))
    assert torch.equal(out, x.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3))
    signal = torch.tensor([[[1.0, 2.0]]])
    assert torch.equal(Upsample(2, dims=1)(signal), torch.tensor([[[1.0, 1.0, 2.0, 2.0]]]))
    assert layer_from_config(Upsample(2).config()).scale == 2


def test_dcgan_generator_spec_shapes_and_exact_summary():
    network = build("100x1x1 tc7x7x64 bn relu tc4x4x32:s2:p1 bn relu tc4x4x1:s2:p1:tanh", loss="mse", seed=0)
    assert network.output_shape == (1, 28, 28)
    assert network.layer_names()[0] == "tconv1"
    summary = summarize(network).to_json()
    rows = {row["name"]: row for row in summary["layers"]}
    assert rows["tconv1"]["output_shape"] == [64, 7, 7] and rows["tconv1"]["params"] == 100 * 64 * 49 + 64
    assert rows["tconv2"]["output_shape"] == [32, 14, 14] and rows["tconv2"]["params"] == 64 * 32 * 16 + 32
    # 2 FLOPs per multiply-add, one per input position, filter tap and channel pair
    assert rows["tconv1"]["flops"] == 2 * 100 * 64 * 49
    assert rows["tconv2"]["flops"] == 2 * 64 * 32 * 16 * 7 * 7
    assert summary["total_params"] == sum(p.numel() for p in network.parameters())
    z = torch.randn(3, 100, 1, 1)
    out = network(z)
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1
    assert torch.equal(network.logits(z).tanh(), out)
    upsampled = build("16x7x7 up2 c3x3x8:same up2 c3x3x1:same", loss="mse")
    assert upsampled.output_shape == (1, 28, 28) and upsampled.layer_names()[0] == "up1"
    assert build("16x7x7 up2 tc3x3x1", loss="mse").config()["spec"] == "16x7x7 up2 tc3x3x1"


def test_table_form_and_canonical_tokens():
    table = [
        "8x1x1",
        {"type": "transposed_conv", "kernel": 4, "filters": 6, "stride": 2, "padding": 1},
        {"type": "upsample", "scale": 2},
    ]
    network = build(table, loss="mse")
    assert network.config()["spec"] == "8x1x1 tc4x4x6:s2:p1 up2"
    assert network.output_shape == (6, 4, 4)  # 1 -> (1-1)*2 - 2 + 3 + 1 = 2 -> 4
    per_axis = build("8x3x3 tc3x3x4:s2x1", loss="mse")  # strides per axis: 3 -> 7 and 3 -> 5
    assert per_axis.output_shape == (4, 7, 5) and per_axis.layers[0].stride == (2, 1)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("100 tc4x4x8", "100x1x1"),
        ("100 up2", "vector"),
        ("8x4x4 tc3x8", "2-D input"),
        ("8x4x4 tc3x3x8:same", ":pN"),
        ("8x1x1 tc1x1x8:p3", "empty output"),
        ("8x4x4 tc0x3x8", "tcKxKxF"),
    ],
)
def test_bad_tokens_are_one_line_spec_errors(spec, words):
    with pytest.raises(SpecError) as err:
        build(spec, loss="mse")
    assert words in str(err.value)
