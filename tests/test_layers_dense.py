"""Dense and Maxout against nn.Linear / a hand formula; parameter counts; configs; errors."""

from __future__ import annotations

import pytest
import torch
from harness import check_against_reference, check_config_roundtrip, n_params
from torch import nn

from capas.errors import SpecError
from capas.layers import LAYERS, Dense, Maxout, layer_from_config, register_layer

TORCH_ACTIVATIONS = {
    "linear": nn.Identity(),
    "sigmoid": nn.Sigmoid(),
    "tanh": nn.Tanh(),
    "relu": nn.ReLU(),
    "leaky_relu": nn.LeakyReLU(0.1),
    "elu": nn.ELU(),
    "softmax": nn.Softmax(dim=-1),
}


@pytest.mark.parametrize("activation", list(TORCH_ACTIVATIONS))
def test_dense_matches_linear_plus_activation(activation):
    torch.manual_seed(0)
    layer = Dense(6, 4, activation=activation)
    reference = nn.Sequential(nn.Linear(6, 4), TORCH_ACTIVATIONS[activation])
    check_against_reference(layer, reference, torch.randn(5, 6))


def test_dense_flattens_and_works_without_bias():
    torch.manual_seed(0)
    layer = Dense(6, 3, activation="tanh", bias=False)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(6, 3, bias=False), nn.Tanh())
    out = check_against_reference(layer, reference, torch.randn(4, 2, 3))
    assert out.shape == (4, 3) and n_params(layer) == 18
    assert layer(torch.zeros(0, 2, 3, dtype=torch.float64)).shape == (0, 3)  # an empty batch is still a batch


class MaxoutByHand(nn.Module):
    """max(w_1 x + b_1, ..., w_k x + b_k) per unit, written as the slide's loop."""

    def __init__(self, n_in, n_out, pieces):
        super().__init__()
        self.n_out, self.pieces = n_out, pieces
        self.weight = nn.Parameter(torch.empty(n_out * pieces, n_in))
        self.bias = nn.Parameter(torch.empty(n_out * pieces))

    def forward(self, x):
        units = []
        for j in range(self.n_out):
            rows = range(j * self.pieces, (j + 1) * self.pieces)
            pieces = torch.stack([x @ self.weight[r] + self.bias[r] for r in rows], dim=1)  # (N, k)
            units.append(pieces.max(dim=1).values)
        return torch.stack(units, dim=1)  # (N, out)


@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_maxout_matches_hand_formula(pieces):
    torch.manual_seed(pieces)
    layer = Maxout(5, 4, pieces=pieces)
    with torch.no_grad():
        layer.bias.normal_()  # non-zero biases so every piece matters
    out = check_against_reference(layer, MaxoutByHand(5, 4, pieces), torch.randn(7, 5))
    assert out.shape == (7, 4) and n_params(layer) == (5 + 1) * 4 * pieces


def test_maxout_with_one_piece_is_linear_and_two_pieces_can_be_relu():
    torch.manual_seed(0)
    x = torch.randn(8, 3)
    layer = Maxout(3, 2, pieces=2)
    with torch.no_grad():
        layer.weight[1::2] = 0  # second piece of each unit is the constant 0
        expected = torch.relu(x @ layer.weight[0::2].T)
    torch.testing.assert_close(layer(x), expected)


def test_maxout_tie_sends_gradient_to_first_piece():
    layer = Maxout(3, 2, pieces=3)  # zero biases: a zero input ties all pieces
    layer(torch.zeros(1, 3)).sum().backward()
    assert layer.bias.grad.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]


def test_course_exercise_parameter_count():
    """1000-300-100-50-20-5-1 with biases has 336,581 parameters (course file 000)."""
    widths = [1000, 300, 100, 50, 20, 5, 1]
    layers = [Dense(a, b, activation="relu") for a, b in zip(widths, widths[1:])]
    assert sum(n_params(layer) for layer in layers) == 336_581


@pytest.mark.parametrize(
    "layer",
    [Dense(3, 2), Dense(4, 5, activation="leaky_relu:0.2", init="he_normal", bias=False), Maxout(3, 2, pieces=4)],
    ids=["dense", "dense-options", "maxout"],
)
def test_config_roundtrip(layer):
    check_config_roundtrip(layer)


def test_shape_and_argument_errors():
    with pytest.raises(SpecError, match=r"expects inputs of 6 features per sample, got a tensor of shape \(2, 5\)"):
        Dense(6, 2)(torch.randn(2, 5))
    with pytest.raises(SpecError, match="out_features must be a positive integer"):
        Dense(3, 0)
    with pytest.raises(SpecError, match="pieces must be a positive integer"):
        Maxout(3, 2, pieces=0)
    with pytest.raises(SpecError, match="unknown activation"):
        Dense(3, 2, activation="swish")


def test_registry_errors():
    with pytest.raises(SpecError, match="unknown layer type 'lstm'"):
        layer_from_config({"type": "lstm", "hidden": 3})
    with pytest.raises(SpecError, match="bad arguments for a 'dense' layer"):
        layer_from_config({"type": "dense", "in_features": 3, "width": 2})
    with pytest.raises(SpecError, match="'type' key"):
        layer_from_config({"in_features": 3})
    with pytest.raises(SpecError, match="already registered"):
        register_layer("dense", Maxout)
    register_layer("dense", LAYERS["dense"])  # re-registering the same class is harmless
    assert layer_from_config({"type": "activation", "name": "tanh"}).name == "tanh"
