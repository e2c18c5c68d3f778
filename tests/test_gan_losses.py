"""GAN objectives against their formulas, the gradient penalty against autograd by hand,
packing, and the saturation of the minimax generator loss."""

from __future__ import annotations

import math

import pytest
import torch

from capas.errors import TrainingError
from capas.objectives.gan_losses import GAN_LOSSES, gan_loss, gradient_penalty, pack


def scores():
    torch.manual_seed(0)
    return torch.randn(7, dtype=torch.float64) * 2, torch.randn(5, dtype=torch.float64) * 2 - 1


def test_minimax_and_non_saturating_against_the_value_function():
    real, fake = scores()
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    value = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()  # V(D, G)
    minimax, non_saturating = gan_loss("minimax"), gan_loss("ns")
    assert torch.allclose(minimax.discriminator(real, fake, 1.0), -value)
    assert torch.allclose(minimax.generator(fake), torch.log(1 - d_fake).mean())
    assert torch.allclose(non_saturating.discriminator(real, fake, 1.0), -value)
    assert torch.allclose(non_saturating.generator(fake), -torch.log(d_fake).mean())
    smoothed = -(0.9 * torch.log(d_real) + 0.1 * torch.log(1 - d_real)).mean() - torch.log(1 - d_fake).mean()
    assert torch.allclose(minimax.discriminator(real, fake, 0.9), smoothed)


def test_least_squares_and_wasserstein_against_their_formulas():
    real, fake = scores()
    ls, w = gan_loss("lsgan"), gan_loss("wgan-gp")
    assert torch.allclose(ls.discriminator(real, fake, 1.0), 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean())
    assert torch.allclose(ls.discriminator(real, fake, 0.9), 0.5 * ((real - 0.9) ** 2).mean() + 0.5 * (fake**2).mean())
    assert torch.allclose(ls.generator(fake), 0.5 * ((fake - 1) ** 2).mean())
    assert torch.allclose(w.discriminator(real, fake, 1.0), fake.mean() - real.mean())
    assert torch.allclose(w.generator(fake), -fake.mean())
    assert w.penalty and not ls.penalty and not ls.probability and GAN_LOSSES["minimax"].probability
    with pytest.raises(TrainingError, match="choose one of minimax, non_saturating"):
        gan_loss("hinge")


def test_minimax_generator_saturates_where_non_saturating_does_not():
    """At a confident rejection a = -10 (D(G(z)) ~ 4.5e-5) the minimax generator's gradient
    is -sigmoid(a) ~ -4.5e-5, the non-saturating one's -(1 - sigmoid(a)) ~ -1."""
    a = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    (g_minimax,) = torch.autograd.grad(gan_loss("minimax").generator(a), a)
    (g_ns,) = torch.autograd.grad(gan_loss("non_saturating").generator(a), a)
    assert g_minimax.item() == pytest.approx(-1 / (1 + math.exp(10)), rel=1e-9)
    assert g_ns.item() == pytest.approx(-1 / (1 + math.exp(-10)), rel=1e-9)


def test_gradient_penalty_against_a_hand_written_gradient():
    """Critic a(x) = w2 . tanh(W1 x + b1): grad_x a = W1^T (w2 * (1 - tanh^2)), written out;
    the penalty is also differentiable in W1 (create_graph), checked by finite differences."""
    torch.manual_seed(1)
    W1 = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    b1 = torch.randn(6, dtype=torch.float64)
    w2 = torch.randn(6, dtype=torch.float64)
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    eps = torch.rand(4, dtype=torch.float64)

    def critic(x):
        return torch.tanh(x @ W1.T + b1) @ w2

    def by_hand(W):
        mixed = eps[:, None] * real + (1 - eps[:, None]) * fake
        slope = 1 - torch.tanh(mixed @ W.T + b1) ** 2  # (4, 6)
        grad = (slope * w2) @ W  # (4, 3)
        return ((grad.norm(dim=1) - 1) ** 2).mean()

    penalty = gradient_penalty(critic, real, fake, eps)
    assert torch.allclose(penalty, by_hand(W1), atol=1e-12)
    (dW,) = torch.autograd.grad(penalty, W1)
    step = 1e-6
    for i, j in [(0, 0), (3, 2), (5, 1)]:
        plus, minus = W1.detach().clone(), W1.detach().clone()
        plus[i, j] += step
        minus[i, j] -= step
        numeric = (by_hand(plus) - by_hand(minus)) / (2 * step)
        assert dW[i, j].item() == pytest.approx(numeric.item(), rel=1e-6, abs=1e-9)


def test_pack_puts_m_samples_side_by_side():
    x = torch.arange(10.0).reshape(5, 2)
    assert torch.equal(pack(x, 2), torch.tensor([[0.0, 1, 2, 3], [4, 5, 6, 7]]))  # the 5th is dropped
    assert pack(x, 1) is x
    images = torch.randn(6, 1, 4, 4)
    packed = pack(images, 3)
    assert packed.shape == (2, 3, 4, 4) and torch.equal(packed[1, 2], images[5, 0])
    with pytest.raises(TrainingError, match="batches >= 4"):
        pack(x[:3], 4)
