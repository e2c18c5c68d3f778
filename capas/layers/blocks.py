"""Blocks that wire layers together: residual sums, tied repetition, concatenation.

* ``Residual`` — the slides' residual connection (course file 001): f(x) + x, with a
  learned projection P x (a linear map, or a 1x1 convolution) when f changes the shape.
* ``Repeat`` — the slides' recursive net (course file 000, "redes recursivas"): the *same*
  small net applied ``times`` times, so its weights are shared by every copy.
* ``Concat`` — parallel branches on the same input, outputs concatenated along the
  channel/feature axis (Inception).
* ``concat_inputs`` — the "redes hacia adelante" skip: a layer that receives the previous
  layer's output together with an earlier layer's output sees their concatenation.

Bodies and branches are ``nn.Sequential`` with named children (``dense2``, ``conv3``) so
every layer of a network has one stable name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from capas.layers.activations import Activation
from capas.layers.dense import ActivatedLayer


def concat_inputs(tensors: Sequence[Tensor], flatten: bool) -> Tensor:
    """Concatenate per-sample outputs along axis 1: (N, C_i, *S) -> (N, sum C_i, *S).

    ``flatten=True`` (for dense layers) first flattens each to (N, F_i) -> (N, sum F_i).
    """
    if flatten:
        return torch.cat([t.flatten(1) for t in tensors], dim=1)  # (N, sum F_i)
    return torch.cat(list(tensors), dim=1)  # (N, sum C_i, *S)


class Residual(ActivatedLayer):
    """s = g(f(x) + P x): ``body`` is f; ``projection`` P is None (identity) when f keeps
    the shape of x, else a learned linear map / 1x1 convolution; ``activation`` g
    (default linear) follows the sum, as in ResNet's ``relu(f(x) + x)``."""

    def __init__(
        self, body: nn.Sequential, projection: nn.Module | None = None, activation: str | Activation = "linear"
    ) -> None:
        super().__init__()
        self.body = body
        self.projection = projection
        self._set_activation(activation, None)

    def pre_activation(self, x: Tensor) -> Tensor:
        """f(x) + P x (N, *out_shape), before the activation g."""
        shortcut = x if self.projection is None else self.projection(x)  # (N, *out_shape)
        return self.body(x) + shortcut


class Repeat(nn.Module):
    """x -> f(f(...f(x))) with ``times`` applications of the same ``body`` (tied weights).

    The body must map a shape to itself; its parameters exist once, so they are counted
    once and their gradient sums the contributions of every application.
    """

    def __init__(self, body: nn.Sequential, times: int) -> None:
        super().__init__()
        self.body = body
        self.times = times

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.times):
            x = self.body(x)  # same shape every time
        return x

    def extra_repr(self) -> str:
        return f"times={self.times}"


class Concat(nn.Module):
    """Run every branch on the same input and concatenate their outputs along axis 1:
    branch outputs (N, C_b, *S) -> (N, sum C_b, *S); vectors (N, F_b) -> (N, sum F_b)."""

    def __init__(self, branches: Sequence[nn.Sequential]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)
