"""Curriculum learning: present samples from easy to hard (Bengio et al., 2009).

Samples are ranked by a difficulty score (given, or a reference model's per-sample loss:
low loss = easy). At epoch e only the easiest fraction c(e) of the training set is used,
shuffled; the pacing function grows c from ``start`` to 1 over ``ramp`` epochs:

    linear:  c(e) = start + (1 - start) e / ramp
    root:    c(e) = sqrt(start^2 + (1 - start^2) e / ramp)   (Platanios et al., 2019)
    step:    c(e) = start until e >= ramp, then 1
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from capas.errors import TrainingError
from capas.models.modes import eval_mode


@torch.no_grad()
def loss_difficulty(
    model: nn.Module,
    forward: Callable[[Tensor], Tensor],
    per_sample_loss: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    batch_size: int = 4096,
) -> Tensor:
    """Per-sample loss (N,) of a reference model (eval mode): the difficulty of each sample."""
    with eval_mode(model):
        scores = [
            per_sample_loss(forward(x[i : i + batch_size]), y[i : i + batch_size]) for i in range(0, len(x), batch_size)
        ]
    return torch.cat(scores)  # (N,)


def pacing_fraction(epoch: int, pacing: str, start: float, ramp: int) -> float:
    """The fraction c(epoch) of the sorted training set available at ``epoch`` (0-based)."""
    progress = min(1.0, epoch / max(1, ramp))
    if pacing == "linear":
        return start + (1 - start) * progress
    if pacing == "root":
        return math.sqrt(start**2 + (1 - start**2) * progress)
    if pacing == "step":
        return 1.0 if epoch >= ramp else start
    raise TrainingError(f"unknown pacing '{pacing}'; valid: linear, root, step")


class Curriculum:
    """Easy-to-hard order of the training samples and the pacing of how much is used."""

    def __init__(self, scores: Tensor, pacing: str = "linear", start: float = 0.25, ramp: int = 10) -> None:
        if scores.ndim != 1:
            raise TrainingError(
                f"curriculum scores must be one number per training sample, got shape {tuple(scores.shape)}"
            )
        self.order = torch.argsort(scores.detach().cpu(), stable=True)  # (N,) easiest first
        self.pacing = pacing
        self.start = start
        self.ramp = ramp
        pacing_fraction(0, pacing, start, ramp)  # validate the pacing name now

    def available(self, epoch: int) -> Tensor:
        """Indices (n_e,) of the samples used at ``epoch``: the easiest ceil(c(e) N)."""
        n = len(self.order)
        count = max(1, math.ceil(pacing_fraction(epoch, self.pacing, self.start, self.ramp) * n))
        return self.order[:count]
