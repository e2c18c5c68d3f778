"""Training-time data operations of regularisation: input noise.

The penalties and constraints on the weights live in :mod:`capas.objectives.penalties`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def add_input_noise(x: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """``x + N(0, std^2)`` drawn from ``generator`` (on x's device); x (B, *)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)  # (B, *)
    return x + std * noise
