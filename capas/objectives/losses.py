"""The loss registry: the slides' squared error, the cross-entropies, and robust regression.

Course file 001 ("Aprendizaje de los pesos de un perceptrón multicapa") defines, for N
samples with M_L outputs,

    q_S = 1/N sum_n q_n,     q_n = 1/2 sum_i (t_ni - s_i^L(x_n))^2          (mse_half_sum)

so the slides' "error cuadrático medio" is averaged over the samples and *half-summed*
over the outputs (its gradient is exactly the delta rule's ``t - s``); ``mse`` is the
usual mean over outputs and samples. Cross-entropy is ``q_S = -1/N sum_n sum_i t_ni log s_i``
with softmax outputs, computed from the logits z^L (log-softmax is stable where
``log(softmax)`` underflows). Binary cross-entropy uses sigmoid outputs, also from logits,
averaged over outputs and samples (torch's and Keras's convention). ``mae`` and ``huber``
(robust regression) average over outputs and samples like ``mse``.

Every loss is ``function(output, target, weight) = sum_n w_n q_n / sum_n w_n`` (the plain
mean without weights) of its ``per_sample(output, target) -> q_n (B,)``. Class weights w_c
become sample weights ``w_n = w_{y_n}``, which is exactly ``torch.nn.CrossEntropyLoss``'s
weighting. :data:`LOSSES` holds one :class:`LossInfo` per loss with what the rest of capas
needs to know about it: whether it takes logits, the output activation it implies and how
its outputs decide a class.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from capas.errors import TrainingError
from capas.objectives.targets import TargetCoder, check_encoding

Decision = Literal["argmax", "threshold", "identity"]


def _weighted_mean(per_sample: Tensor, weight: Tensor | None) -> Tensor:
    """Mean of ``per_sample (B,)``; with ``weight (B,)``: sum(w q) / sum(w)."""
    if weight is None:
        return per_sample.mean()
    return (per_sample * weight).sum() / weight.sum()


def half_sum_squares(output: Tensor, target: Tensor) -> Tensor:
    """q_n = 1/2 sum_i (t_ni - s_ni)^2, (B,)."""
    return 0.5 * (output - target).pow(2).flatten(1).sum(dim=1)


def mean_squares(output: Tensor, target: Tensor) -> Tensor:
    """q_n = mean_i (t_ni - s_ni)^2, (B,)."""
    return (output - target).pow(2).flatten(1).mean(dim=1)


def mean_abs(output: Tensor, target: Tensor) -> Tensor:
    """q_n = mean_i |t_ni - s_ni|, (B,)."""
    return (output - target).abs().flatten(1).mean(dim=1)


def mean_huber(output: Tensor, target: Tensor) -> Tensor:
    """q_n = mean_i huber_1(t_ni - s_ni) (quadratic below |e| = 1, linear above), (B,)."""
    return F.huber_loss(output, target, reduction="none", delta=1.0).flatten(1).mean(dim=1)


def softmax_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """q_n = -log softmax(z_n)[y_n] for labels ``target (B,)`` int64, or
    -sum_i t_ni log softmax(z_n)_i for probability rows ``target (B, K)``; (B,)."""
    return F.cross_entropy(logits, target, reduction="none")


def sigmoid_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """q_n = -mean_i [t_ni log sigma(z_ni) + (1 - t_ni) log(1 - sigma(z_ni))], (B,)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(dim=1)


def mse_half_sum(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """The slides' q_S: ``1/B sum_n 1/2 sum_i (t_ni - s_ni)^2``; output, target (B, K)."""
    return _weighted_mean(half_sum_squares(output, target), weight)


def mse(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error over outputs and samples; output, target (B, K)."""
    return _weighted_mean(mean_squares(output, target), weight)


def mae(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean absolute error over outputs and samples; output, target (B, K)."""
    return _weighted_mean(mean_abs(output, target), weight)


def huber(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Huber loss (quadratic below |e| = 1, linear above), mean over outputs and samples."""
    return _weighted_mean(mean_huber(output, target), weight)


def cross_entropy(logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """``-1/B sum_n log softmax(z_n)[y_n]``; logits (B, K), labels (B,) int64 (or
    probability rows (B, K)); ``weight (B,)`` per sample."""
    if weight is None:
        return F.cross_entropy(logits, target)  # one fused kernel on the common path
    return _weighted_mean(softmax_cross_entropy(logits, target), weight)


def binary_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Sigmoid cross-entropy from logits, mean over outputs then samples; (B, K) both."""
    return _weighted_mean(sigmoid_cross_entropy(logits, target), weight)


@dataclass(frozen=True)
class LossInfo:
    """What capas knows about one loss.

    Attributes:
        name: the registry name.
        function: ``(output, target, weight=None) -> 0-dim``, the (weighted) batch mean.
        per_sample: ``(output, target) -> (B,)``, q_n of every sample.
        from_logits: the loss takes the output layer's pre-activation z^L, not s^L.
        output_activation: the output activation the loss implies (``build`` uses it).
        decision: how the outputs s^L name classes when nothing else is known: ``argmax``
            (softmax), ``threshold`` (sigmoid outputs above 1/2), ``identity`` (the outputs
            are the prediction; a squared-error *classifier* decides by argmax).
        regression_ok: the loss can fit real-valued targets.
    """

    name: str
    function: Callable[..., Tensor]
    per_sample: Callable[[Tensor, Tensor], Tensor]
    from_logits: bool
    output_activation: Literal["softmax", "sigmoid", "linear"]
    decision: Decision
    regression_ok: bool


LOSSES: dict[str, LossInfo] = {
    info.name: info
    for info in (
        LossInfo("mse_half_sum", mse_half_sum, half_sum_squares, False, "linear", "identity", True),
        LossInfo("mse", mse, mean_squares, False, "linear", "identity", True),
        LossInfo("mae", mae, mean_abs, False, "linear", "identity", True),
        LossInfo("huber", huber, mean_huber, False, "linear", "identity", True),
        LossInfo("cross_entropy", cross_entropy, softmax_cross_entropy, True, "softmax", "argmax", False),
        LossInfo(
            "binary_cross_entropy", binary_cross_entropy, sigmoid_cross_entropy, True, "sigmoid", "threshold", True
        ),
    )
}
ALIASES = {"sse": "mse_half_sum", "ce": "cross_entropy", "bce": "binary_cross_entropy"}


def canonical_loss(name: str) -> str:
    """The registry name for ``name`` (case, ``-`` and aliases resolved) or a TrainingError
    with a did-you-mean that lists the valid names."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in LOSSES:
        close = difflib.get_close_matches(key, [*LOSSES, *ALIASES], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise TrainingError(f"unknown loss '{name}'; {hint}valid losses: {', '.join([*LOSSES, *ALIASES])}")
    return key


def loss_info(name: str) -> LossInfo:
    """The :class:`LossInfo` of ``name`` (an alias too)."""
    return LOSSES[canonical_loss(name)]


def output_activation(loss: str) -> str:
    """The output activation ``loss`` implies: softmax, sigmoid or linear."""
    return loss_info(loss).output_activation


class Loss:
    """A loss bound to the task: encodes class targets and applies class weights.

    ``loss(output, y)``: ``output (B, K)`` is the model's logits when ``from_logits`` else
    its outputs s^L; ``y`` is class indices (B,) for classification or targets (B, K).
    Class indices are encoded for every loss but cross-entropy by a :class:`TargetCoder`
    of the output width (``target_encoding``: onehot, tanh +-0.9, sigmoid 0.1/0.9).
    """

    def __init__(
        self,
        name: str,
        *,
        num_classes: int | None = None,
        class_weights: Tensor | None = None,
        target_encoding: str = "onehot",
    ) -> None:
        self.info = loss_info(name)
        self.name = self.info.name
        self.function = self.info.function
        self.from_logits = self.info.from_logits
        self.num_classes = num_classes
        self.class_weights = class_weights  # (K,) or None
        self.target_encoding = check_encoding(target_encoding)
        self._device: torch.device | None = None
        self._dtype = torch.float64
        self._coders: dict[int, TargetCoder] = {}

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> Loss:
        """Move the code tables (in the model's ``dtype``) and class weights to ``device``."""
        self._device, self._dtype = torch.device(device), dtype or self._dtype
        for coder in self._coders.values():
            coder.to(self._device, self._dtype)
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device, dtype or self.class_weights.dtype)
        return self

    def coder(self, outputs: int) -> TargetCoder:
        """The target coder for ``outputs`` output units (one-hot for cross-entropy, whose
        softmax targets are class probabilities; ``target_encoding`` otherwise)."""
        found = self._coders.get(outputs)
        if found is None:
            encoding = "onehot" if self.name == "cross_entropy" else self.target_encoding
            found = self._coders[outputs] = TargetCoder(outputs, encoding, device=self._device, dtype=self._dtype)
        return found

    def targets(self, output: Tensor, y: Tensor) -> Tensor:
        """Targets for ``output (B, K)``: code rows for class indices (labels themselves for
        cross-entropy), else the float ``y`` shaped like ``output``."""
        if self.name == "cross_entropy" and not y.dtype.is_floating_point:
            return y  # (B,) labels: F.cross_entropy gathers their log-probabilities
        if y.dtype.is_floating_point or self.num_classes is None:
            return y.reshape(output.shape).to(output.dtype)
        return self.coder(output.shape[1]).encode(y).to(output.dtype)  # (B, K) or (B, 1)

    def per_sample(self, output: Tensor, y: Tensor) -> Tensor:
        """q_n for every sample (B,), unweighted (e.g. a curriculum's difficulty score)."""
        return self.info.per_sample(output, self.targets(output, y))

    def __call__(self, output: Tensor, y: Tensor) -> Tensor:
        """The batch loss, a 0-dim tensor."""
        weight = None if self.class_weights is None or y.dtype.is_floating_point else self.class_weights[y]
        return self.function(output, self.targets(output, y), weight)

    def predictions(self, output: Tensor) -> Tensor:
        """Class indices (B,) from outputs or logits (B, K): argmax, or for K = 1 a
        threshold (logit 0, else the midpoint of the target codes)."""
        if output.shape[1:] == (1,):
            threshold = 0.0 if self.from_logits else self.coder(1).threshold
            return (output[:, 0] > threshold).long()
        return output.argmax(dim=1)

    def __repr__(self) -> str:
        return f"Loss({self.name!r}, num_classes={self.num_classes}, target_encoding={self.target_encoding!r})"
