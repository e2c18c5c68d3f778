"""``Batch``: what a training or evaluation step receives, whatever the kind of learning.

A supervised step reads ``x`` and ``y``; an autoencoder or an RBM only ``x``; a sequence
model also ``mask``; an encoder-decoder several inputs and targets. Layout (docs/CORE.md):
batch first; sequences ``(B, T, F)`` with the time on axis 1, masks ``(B, T)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(slots=True)
class Batch:
    """Tensors of one batch, already on the training device.

    Attributes:
        inputs: ``inputs[0]`` is ``x (B, *input_shape)``; more inputs follow (e.g. a decoder's).
        targets: ``targets[0]`` is ``y``: ``(B,)`` int64 class labels or ``(B, K)`` float
            targets; empty for unsupervised learning.
        mask: ``(B, T)`` bool, True at real (not padded) time steps; None without sequences.
    """

    inputs: tuple[Tensor, ...]
    targets: tuple[Tensor, ...] = ()
    mask: Tensor | None = None

    @property
    def x(self) -> Tensor:
        return self.inputs[0]

    @property
    def y(self) -> Tensor | None:
        return self.targets[0] if self.targets else None

    @property
    def size(self) -> int:
        """B, the number of samples."""
        return self.inputs[0].shape[0]
