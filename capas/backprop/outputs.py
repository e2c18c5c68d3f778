"""Output-layer errors of the delta rule: ``e^L = -dq_n/ds^L`` and the batch loss ``E``.

Each rule writes, for a batch of ``B`` samples with ``K`` outputs, either the error at the
outputs ``e^L (B, K)`` (the engine multiplies it by ``g'(phi^L)``) or, where the slides'
simplification applies, ``delta^L`` itself (softmax + cross-entropy and sigmoid + binary
cross-entropy both give ``delta^L = t - s^L``, up to the loss's normalisation). It returns
the loss ``E = (1/B) sum_n q_n`` as a 0-dim tensor, with the definitions (and names) of
the loss registry ``capas.objectives.LOSSES``:

========================  ====================================================  ===============
loss                      q_n                                                   written
========================  ====================================================  ===============
``mse_half_sum`` (sse)    1/2 sum_i (t_i - s_i)^2 (the slides)                  e = t - s
``mse``                   (1/K) sum_i (t_i - s_i)^2                             e = (2/K)(t - s)
``cross_entropy``         -sum_i t_i log s_i, s = softmax(phi)                  delta = t - s
``binary_cross_entropy``  -(1/K) sum_i t_i log s_i + (1-t_i) log(1-s_i), sigmoid  delta = (t - s)/K
========================  ====================================================  ===============

Class-index targets ``y (B,)`` become code rows ``t (B, K)`` (one-hot, or the trainer's
``target_encoding`` codes such as +-0.9) by gathering rows of the table of a
``capas.objectives.TargetCoder`` (the very coder the trainer's ``Loss`` uses): one
``index_select`` into a preallocated buffer.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import Tensor

from capas.objectives import TargetCoder


class OutputRule(abc.ABC):
    """Base: turns targets into ``t (B, K)``; subclasses write the output error.

    ``coder`` encodes class labels (default: one-hot for ``outputs`` units); its table is
    moved to the dtype and device of ``like`` (a weight of the net).
    """

    name: str
    writes_delta = False  # True: ``__call__`` writes delta^L, not e^L
    output_activations: tuple[str, ...] = ()  # allowed g of the last layer; () = any elementwise

    def __init__(self, outputs: int, like: Tensor, coder: TargetCoder | None = None) -> None:
        self.outputs = outputs
        self._like = like
        self.coder = (coder or TargetCoder(outputs)).to(like.device, like.dtype)  # coder.outputs == outputs
        self._constants: dict[float, Tensor] = {}

    def constant(self, value: float) -> Tensor:
        """``value`` as a cached 0-dim tensor: multiplying by it skips wrapping a Python
        float into a new tensor on every step (a measurable cost at small batches)."""
        found = self._constants.get(value)
        if found is None:
            found = self._constants[value] = torch.tensor(value, dtype=self._like.dtype, device=self._like.device)
        return found

    def target(self, y: Tensor, out: Tensor) -> Tensor:
        """``t (B, K)``: code rows for class indices, else ``y`` viewed as (B, K)."""
        if y.dtype.is_floating_point:  # already coded (``run_epoch``) or regression targets
            return y if y.shape == out.shape and y.dtype == out.dtype else y.reshape(out.shape).to(out.dtype)
        return torch.index_select(self.coder.table, 0, y, out=out)  # (B, K), (B, 1) for one output

    def encode(self, y: Tensor) -> Tensor:
        """Targets of a whole set: ``y (N,)`` class indices -> code rows ``(N, K)``;
        float ``y`` is returned as ``(N, K)`` in the engine's dtype."""
        if y.dtype.is_floating_point:
            return y.reshape(y.shape[0], self.outputs).to(self._like.dtype)
        return self.coder.encode(y)  # (N, K)

    @abc.abstractmethod
    def __call__(self, z: Tensor, s: Tensor, t: Tensor, out: Tensor) -> Tensor:
        """Write e^L (or delta^L) for pre-activations ``z (B, K)`` and outputs ``s (B, K)``
        into ``out (B, K)``; return the batch loss E (0-dim)."""


class MeanSquaredError(OutputRule):
    name = "mse"

    def __call__(self, z: Tensor, s: Tensor, t: Tensor, out: Tensor) -> Tensor:
        diff = torch.sub(t, s, out=out).view(-1)  # (B*K,) t - s
        loss = torch.dot(diff, diff).mul_(self.constant(1.0 / out.numel()))
        out.mul_(self.constant(2.0 / self.outputs))
        return loss


class HalfSumSquaredError(OutputRule):
    name = "mse_half_sum"

    def __call__(self, z: Tensor, s: Tensor, t: Tensor, out: Tensor) -> Tensor:
        diff = torch.sub(t, s, out=out).view(-1)  # (B*K,) t - s
        return torch.dot(diff, diff).mul_(self.constant(0.5 / out.shape[0]))


class CrossEntropy(OutputRule):
    name = "cross_entropy"
    writes_delta = True
    output_activations = ("softmax",)

    def __call__(self, z: Tensor, s: Tensor, t: Tensor, out: Tensor) -> Tensor:
        log_s = torch.log_softmax(z, dim=1)  # (B, K), stable log of s
        torch.sub(t, s, out=out)  # delta^L = t - s
        return torch.dot(t.view(-1), log_s.view(-1)).mul_(self.constant(-1.0 / out.shape[0]))


class BinaryCrossEntropy(OutputRule):
    name = "binary_cross_entropy"
    writes_delta = True
    output_activations = ("sigmoid",)

    def __call__(self, z: Tensor, s: Tensor, t: Tensor, out: Tensor) -> Tensor:
        torch.sub(t, s, out=out).mul_(self.constant(1.0 / self.outputs))  # delta^L = (t - s)/K
        return F.binary_cross_entropy_with_logits(z, t)


OUTPUT_RULES: dict[str, type[OutputRule]] = {
    cls.name: cls for cls in (MeanSquaredError, HalfSumSquaredError, CrossEntropy, BinaryCrossEntropy)
}
