"""BatchNorm, LayerNorm, Dropout and Flatten against their torch.nn counterparts."""

from __future__ import annotations

import pytest
import torch
from harness import check_against_reference, check_config_roundtrip
from torch import nn

from capas.errors import SpecError, TrainingError
from capas.layers import BatchNorm, Dropout, Flatten, LayerNorm


@pytest.mark.parametrize(
    ("shape", "reference"),
    [((8, 4), nn.BatchNorm1d), ((8, 4, 5), nn.BatchNorm1d), ((6, 4, 3, 5), nn.BatchNorm2d)],
    ids=["features", "sequences", "images"],
)
def test_batch_norm_matches_torch_in_train_and_eval(shape, reference):
    torch.manual_seed(0)
    layer, ref = BatchNorm(4, momentum=0.2), reference(4, momentum=0.2)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    x = torch.randn(shape) * 3 + 1
    check_against_reference(layer, ref, x, train=True)  # also compares the updated running stats
    assert not torch.equal(layer.running_mean, torch.zeros(4))
    check_against_reference(layer, ref, torch.randn(shape), train=False)
    assert layer.state_dict().keys() == nn.BatchNorm2d(4).state_dict().keys()


def test_batch_norm_normalises_each_channel_of_an_image():
    layer = BatchNorm(3).double()
    x = torch.randn(10, 3, 4, 4, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1) + 2
    y = layer(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    x_var = x.var(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), x_var / (x_var + layer.eps))


@pytest.mark.parametrize(("normalized", "shape"), [(5, (4, 5)), ([3, 4], (2, 3, 4)), ((2, 3, 3), (2, 2, 3, 3))])
def test_layer_norm_matches_torch(normalized, shape):
    torch.manual_seed(0)
    layer = LayerNorm(normalized)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    check_against_reference(layer, nn.LayerNorm(normalized), torch.randn(shape))


def test_dropout_matches_torch_and_scales_survivors():
    check_against_reference(Dropout(0.3), nn.Dropout(0.3), torch.randn(50, 20), train=True)
    x = torch.ones(200, 50, dtype=torch.float64)
    torch.manual_seed(0)
    y = Dropout(0.25)(x)
    assert set(y.unique().tolist()) == {0.0, 1 / 0.75}
    assert (y == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert torch.equal(Dropout(0.25).eval()(x), x)


def test_flatten():
    out = check_against_reference(Flatten(), nn.Flatten(), torch.randn(3, 2, 4, 5))
    assert out.shape == (3, 40)


@pytest.mark.parametrize(
    "layer",
    [BatchNorm(6, eps=1e-3, momentum=0.05, affine=False), LayerNorm([3, 4], affine=False), Dropout(0.2), Flatten()],
    ids=["batch_norm", "layer_norm", "dropout", "flatten"],
)
def test_config_roundtrip(layer):
    check_config_roundtrip(layer)


def test_errors():
    with pytest.raises(SpecError, match=r"expects inputs \(N, 4, ...\), got shape \(2, 3\)"):
        BatchNorm(4)(torch.zeros(2, 3))
    with pytest.raises(SpecError, match="momentum"):
        BatchNorm(4, momentum=2.0)
    with pytest.raises(SpecError, match=r"ending in \[3, 4\]"):
        LayerNorm([3, 4])(torch.zeros(2, 4, 3))
    with pytest.raises(SpecError, match=r"\[0, 1\)"):
        Dropout(1.0)
    with pytest.raises(SpecError, match="positive integer"):
        LayerNorm(0)


def test_batch_norm_on_a_single_value_per_channel_says_why():
    bn = BatchNorm(3)
    with pytest.raises(TrainingError, match="more than one value per channel.*another batch size"):
        bn(torch.randn(1, 3))  # the 1-sample last batch of an epoch
    bn(torch.randn(1, 3, 2, 2))  # one image still has 4 values per channel
    bn.eval()
    assert bn(torch.randn(1, 3)).shape == (1, 3)  # running statistics need no batch
