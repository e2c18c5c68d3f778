"""Sequences: the time axis, and layers applied at every time step.

capas lays a batch of sequences out batch first, time on axis 1: ``(B, T, *F)`` with
``F`` the features of one step (``(B, T, 28)`` for the notation's ``Tx28``). A layer that
knows nothing about time (dense, convolution on per-step images, dropout, an activation,
a residual block...) is applied to each step independently by :class:`PerStep`: the
steps are folded into the batch, ``(B, T, *F) -> (B*T, *F)``, the layer runs, and the
result is unfolded to ``(B, T, *F')``. This is what a many-to-many head needs (one output
per step, e.g. ``Tx28-64-10``: a 10-way softmax at every step), and a per-step layer has
exactly the parameters of the same layer on one step. Layers that read across time
(recurrent kinds) consume the time axis themselves and are not wrapped.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from capas.errors import SpecError
from capas.layers.activations import Activation
from capas.layers.dense import ActivatedLayer


def _fold(function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``function`` applied to every step of x (B, T, *F) -> (B, T, *F')."""
    if x.dim() < 3:
        raise SpecError(
            f"a per-step layer expects sequences (B, T, features...), got a tensor of shape {tuple(x.shape)}"
        )
    batch, steps = x.shape[:2]
    out = function(x.reshape(batch * steps, *x.shape[2:]))  # (B*T, *F')
    return out.reshape(batch, steps, *out.shape[1:])  # (B, T, *F')


class PerStep(nn.Module):
    """``inner`` applied at every time step: (B, T, *F) -> (B, T, *F'), weights shared by all
    steps (a dense layer of ``Tx28-64`` holds the 28*64 + 64 parameters of ``28-64``)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return _fold(self.inner, x)


class PerStepActivated(PerStep, ActivatedLayer):
    """A per-step layer that owns an activation (Dense, Conv, Residual) or is one (a
    standalone activation): ``pre_activation`` stops before it, per step, so
    ``Network.logits`` of a sequence net is z^L at every step; softmax normalises each
    step's classes, not the time axis."""

    @property
    def activation(self) -> Activation:  # type: ignore[override]
        return self.inner if isinstance(self.inner, Activation) else self.inner.activation

    @property
    def init(self) -> str | None:  # type: ignore[override]
        return self.inner.init if isinstance(self.inner, ActivatedLayer) else None

    def forward(self, x: Tensor) -> Tensor:
        return _fold(self.inner, x)

    def pre_activation(self, x: Tensor) -> Tensor:
        """z (B, T, *F') at every step; the input itself for a standalone activation."""
        if isinstance(self.inner, Activation):
            return x
        return _fold(self.inner.pre_activation, x)


def per_step(layer: nn.Module) -> PerStep:
    """``layer`` wrapped to run at every time step (``PerStepActivated`` when it has an activation)."""
    return PerStepActivated(layer) if isinstance(layer, (ActivatedLayer, Activation)) else PerStep(layer)
