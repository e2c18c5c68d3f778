"""Attention against hand computations on a tiny example; masks; gradients."""

import math

import pytest
import torch

from capas.errors import SpecError
from capas.layers.attention import AdditiveAttention, DotAttention, GeneralAttention, make_attention, masked_softmax

# one query, three keys; the third key is padding (mask False)
QUERY = torch.tensor([[1.0, 2.0]], dtype=torch.float64)  # (1, 2)
KEYS = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]], dtype=torch.float64)  # (1, 3, 2)
MASK = torch.tensor([[True, True, False]])


def softmax2(a: float, b: float) -> tuple[float, float]:
    return math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))


def check(context: torch.Tensor, weights: torch.Tensor, expected: tuple[float, float]) -> None:
    assert weights.shape == (1, 3) and context.shape == (1, 2)
    assert weights[0, 2].item() == 0.0  # exactly 0 at the padded position
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-15)
    assert weights[0, :2].tolist() == pytest.approx(list(expected), abs=1e-12)
    hand = [expected[0] * 1.0 + expected[1] * 0.0, expected[0] * 0.0 + expected[1] * 1.0]  # sum_j a_j h_j
    assert context[0].tolist() == pytest.approx(hand, abs=1e-12)


def test_dot_attention_by_hand():
    # e = q . h: 1*1 + 2*0 = 1 and 1*0 + 2*1 = 2
    context, weights = DotAttention(2, 2)(QUERY, KEYS, MASK)
    check(context, weights, softmax2(1.0, 2.0))


def test_general_attention_by_hand():
    layer = GeneralAttention(2, 2).double()
    with torch.no_grad():
        layer.W.weight.copy_(torch.tensor([[2.0, 0.0], [1.0, -1.0]]))  # W h: h1 -> (2, 1), h2 -> (0, -1)
    # e = q . W h: (1, 2).(2, 1) = 4; (1, 2).(0, -1) = -2
    context, weights = layer(QUERY, KEYS, MASK)
    check(context, weights, softmax2(4.0, -2.0))


def test_additive_attention_by_hand():
    layer = AdditiveAttention(2, 2, attention_dim=2).double()
    with torch.no_grad():
        layer.W.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.5]]))  # W q = (1, 1)
        layer.U.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, 0.0]]))
        layer.U.bias.copy_(torch.tensor([0.0, 0.5]))  # U h1 + b = (1, -0.5); U h2 + b = (1, 0.5)
        layer.v.weight.copy_(torch.tensor([[2.0, -1.0]]))
    e1 = 2 * math.tanh(1 + 1) - math.tanh(1 - 0.5)
    e2 = 2 * math.tanh(1 + 1) - math.tanh(1 + 0.5)
    context, weights = layer(QUERY, KEYS, MASK)
    check(context, weights, softmax2(e1, e2))


def test_no_mask_weights_all_positions_and_masked_softmax_rows():
    context, weights = DotAttention(2, 2)(QUERY, KEYS)
    scores = [1.0, 2.0, 15.0]
    total = sum(math.exp(s) for s in scores)
    assert weights[0].tolist() == pytest.approx([math.exp(s) / total for s in scores], rel=1e-12)
    many = masked_softmax(torch.randn(4, 6), torch.tensor([[True] * k + [False] * (6 - k) for k in (1, 2, 5, 6)]))
    assert torch.allclose(many.sum(1), torch.ones(4))
    assert (many[0, 1:] == 0).all() and many[0, 0] == 1.0


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_gradients_match_finite_differences(kind):
    torch.manual_seed(0)
    layer = make_attention(kind, 3, 3).double()
    query = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    assert torch.autograd.gradcheck(lambda q, k: layer(q, k, mask)[0], (query, keys))


def test_bad_attention_names_and_sizes():
    with pytest.raises(SpecError, match="unknown attention"):
        make_attention("cosine", 2, 2)
    with pytest.raises(SpecError, match="dot attention needs"):
        DotAttention(3, 4)
