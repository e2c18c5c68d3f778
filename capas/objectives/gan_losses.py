"""The adversarial objectives of a GAN, written on the discriminator's raw scores.

Course file 002: the discriminator D(x) = sigmoid(a(x)) is the probability that x is real,
and the game is min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]. Every loss
here reads the raw scores ``a`` (N,) of real and generated samples (the logits of a
sigmoid discriminator; the critic's values for the Wasserstein loss), so the logarithms
are computed stably (log D = -softplus(-a), log(1 - D) = -softplus(a)):

=================  ===================================================  ===========================
name               discriminator minimises                              generator minimises
=================  ===================================================  ===========================
``minimax``        -E log D(x) - E log(1 - D(G(z)))  (= -V)             E log(1 - D(G(z)))  (= V)
``non_saturating`` the same                                             -E log D(G(z))
``least_squares``  1/2 E (a(x) - 1)^2 + 1/2 E a(G(z))^2                 1/2 E (a(G(z)) - 1)^2
``wasserstein``    E a(G(z)) - E a(x) + lambda E (||grad a(x^)|| - 1)^2  -E a(G(z))
=================  ===================================================  ===========================

Early in training D rejects G's samples with confidence, a(G(z)) << 0, where
log(1 - sigmoid(a)) is flat: the minimax generator's gradient vanishes (the slides'
"saturation"), while -log D(G(z)) has gradient -1 per unit of a there: the non-saturating
rule. One-sided label smoothing (Salimans et al. 2016) gives real samples the target
``smoothing`` < 1 instead of 1 (fakes keep 0). The gradient penalty (Gulrajani et al.
2017) is taken at x^ = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample. Packing (PacGAN,
Lin et al. 2018) lets D judge m samples at once: :func:`pack` concatenates them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from capas.errors import TrainingError


def _bce(scores: Tensor, target: float) -> Tensor:
    """-E[t log sigmoid(a) + (1 - t) log(1 - sigmoid(a))] over scores (N,)."""
    return F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, target))


def minimax_discriminator(real: Tensor, fake: Tensor, smoothing: float = 1.0) -> Tensor:
    """-V(D, G) = -E log D(x) - E log(1 - D(G(z))); real targets ``smoothing`` (1: none)."""
    return _bce(real, smoothing) + _bce(fake, 0.0)


def minimax_generator(fake: Tensor) -> Tensor:
    """E log(1 - D(G(z))) = -E softplus(a): the generator's half of V, minimised."""
    return -F.softplus(fake).mean()


def non_saturating_generator(fake: Tensor) -> Tensor:
    """-E log D(G(z)) = E softplus(-a)."""
    return F.softplus(-fake).mean()


def least_squares_discriminator(real: Tensor, fake: Tensor, smoothing: float = 1.0) -> Tensor:
    """1/2 E (a(x) - b)^2 + 1/2 E a(G(z))^2 with b = ``smoothing`` (LSGAN's 0-1 coding)."""
    return 0.5 * ((real - smoothing) ** 2).mean() + 0.5 * (fake**2).mean()


def least_squares_generator(fake: Tensor) -> Tensor:
    """1/2 E (a(G(z)) - 1)^2."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def wasserstein_discriminator(real: Tensor, fake: Tensor, smoothing: float = 1.0) -> Tensor:
    """E a(G(z)) - E a(x): the negated estimate of the Wasserstein-1 distance (the gradient
    penalty is added by the task, which can differentiate the critic)."""
    return fake.mean() - real.mean()


def wasserstein_generator(fake: Tensor) -> Tensor:
    """-E a(G(z))."""
    return -fake.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    """E (||grad_x a(x^)||_2 - 1)^2 at x^ = eps x + (1 - eps) G(z), differentiable in the
    critic's parameters (``create_graph``). ``real``, ``fake`` (N, *shape); ``eps`` (N,)."""
    eps = eps.reshape(-1, *([1] * (real.dim() - 1)))
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (N, *shape)
    scores = critic(mixed).reshape(-1)  # (N,)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


@dataclass(frozen=True)
class GanLoss:
    """One adversarial objective: its two halves over raw scores (N,), whether the scores are
    the logits of D(x) = sigmoid(a) (``probability``: the history shows sigmoid(a), else the
    critic's a) and whether the task adds the gradient penalty."""

    name: str
    discriminator: Callable[[Tensor, Tensor, float], Tensor]
    generator: Callable[[Tensor], Tensor]
    probability: bool
    penalty: bool = False
    description: str = ""


GAN_LOSSES: dict[str, GanLoss] = {
    loss.name: loss
    for loss in (
        GanLoss("minimax", minimax_discriminator, minimax_generator, True,
                description="the slides' min_G max_D V(D, G); saturates early in training"),
        GanLoss("non_saturating", minimax_discriminator, non_saturating_generator, True,
                description="G minimises -log D(G(z)) (the slides' practical rule)"),
        GanLoss("least_squares", least_squares_discriminator, least_squares_generator, False,
                description="LSGAN: squared distances of the scores to 1 (real) and 0 (fake)"),
        GanLoss("wasserstein", wasserstein_discriminator, wasserstein_generator, False, penalty=True,
                description="WGAN-GP: critic difference plus lambda (||grad|| - 1)^2"),
    )
}  # fmt: skip
ALIASES = {"ns": "non_saturating", "nonsaturating": "non_saturating", "lsgan": "least_squares",
           "wgan": "wasserstein", "wgan_gp": "wasserstein", "gan": "minimax"}  # fmt: skip


def gan_loss(name: str) -> GanLoss:
    """The record of ``name`` (or an alias); TrainingError naming the known losses."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in GAN_LOSSES:
        raise TrainingError(f"unknown GAN loss {name!r}; choose one of {', '.join(GAN_LOSSES)}")
    return GAN_LOSSES[key]


def pack(x: Tensor, m: int) -> Tensor:
    """PacGAN's packing: m consecutive samples side by side as one input of D.

    (N, F) -> (N // m, m F); (N, C, *L) -> (N // m, m C, *L) (channels concatenated); a
    remainder of N mod m samples is dropped. m = 1 returns ``x``.
    """
    if m == 1:
        return x
    n = x.shape[0] // m * m
    if n == 0:
        raise TrainingError(f"a batch of {x.shape[0]} samples cannot be packed {m} at a time; use batches >= {m}")
    x = x[:n]
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])
