"""Penalties and constraints on the weights, as course file 001 ("Regularización") adds them.

The slides add to the objective q_S(Theta)

    L2:  lambda/2 sum_{l,i,j} (theta_ij^l)^2          gradient  lambda * theta
    L1:  lambda/2 sum_{l,i,j} |theta_ij^l|            (as printed)

capas uses lambda/2 ||w||^2 for L2 (so one SGD step is ``w - rho (g + lambda w)``) and
lambda ||w||_1 for L1 (gradient lambda sign(w)): the printed L1 form repeats the L2 factor
1/2, which only rescales lambda; the explicit BackProp engine uses the same two gradients.
By default only weights are penalised (tensors with 2+ dims: dense matrices, conv kernels),
not biases or normalisation parameters; ``regularize_bias=True`` penalises every
parameter as the slides' sum over all theta_ij^l (j = 0 is the bias) does. This penalty is
part of the objective; torch's decoupled ``weight_decay`` remains an optimizer option.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def penalized_parameters(model: nn.Module, include_bias: bool = False) -> list[nn.Parameter]:
    """Trainable parameters the penalty applies to: weights (ndim >= 2), plus 1-D ones if asked."""
    return [p for p in model.parameters() if p.requires_grad and (include_bias or p.ndim >= 2)]


def penalty(params: list[Tensor], l2: float = 0.0, l1: float = 0.0) -> Tensor:
    """``l2/2 * sum w^2 + l1 * sum |w|`` over ``params`` (0-dim tensor)."""
    total = params[0].new_zeros(())
    for p in params:
        if l2:
            total = total + 0.5 * l2 * p.pow(2).sum()
        if l1:
            total = total + l1 * p.abs().sum()
    return total


@torch.no_grad()
def add_penalty_gradients(pairs: list[tuple[Tensor, Tensor]], l2: float = 0.0, l1: float = 0.0) -> None:
    """``grad += l2 * theta + l1 * sign(theta)`` for each ``(theta, grad)``: the gradient of
    :func:`penalty`, added after the data-loss gradient so that the per-layer gradient norms
    the history records measure the data loss alone (the "speed of learning" of the slides;
    a penalty's ``lambda * w`` would otherwise mask a vanishing gradient)."""
    for theta, grad in pairs:
        if l2:
            grad.add_(theta, alpha=l2)
        if l1:
            grad.add_(torch.sign(theta), alpha=l1)


@torch.no_grad()
def apply_max_norm(params: list[Tensor], max_norm: float) -> None:
    """Rescale every unit's incoming weight vector (row of a (out, in...) weight) to norm <= max_norm."""
    for p in params:
        if p.ndim >= 2:
            torch.renorm(p, 2, 0, max_norm, out=p)
