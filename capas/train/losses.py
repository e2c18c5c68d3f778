"""Training objectives: the slides' squared error, cross-entropy and binary cross-entropy.

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

Class targets y (B,) are encoded for MSE/BCE as one-hot rows (or the slides' +-0.9 /
0.1-0.9 codes for saturating units, ``target_encoding``). Class weights w_c weigh each
sample's q_n by w_{y_n} and normalise by ``sum_n w_{y_n}`` (as ``torch.nn.CrossEntropyLoss``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from capas.errors import TrainingError

TARGET_CODES: dict[str, tuple[float, float]] = {"onehot": (0.0, 1.0), "tanh": (-0.9, 0.9), "sigmoid": (0.1, 0.9)}


def _weighted_mean(per_sample: Tensor, weight: Tensor | None) -> Tensor:
    """Mean of ``per_sample (B,)``; with ``weight (B,)``: sum(w q) / sum(w)."""
    if weight is None:
        return per_sample.mean()
    return (per_sample * weight).sum() / weight.sum()


def _half_sum_squares(output: Tensor, target: Tensor) -> Tensor:
    return 0.5 * (output - target).pow(2).flatten(1).sum(dim=1)  # (B,)


def _mean_squares(output: Tensor, target: Tensor) -> Tensor:
    return (output - target).pow(2).flatten(1).mean(dim=1)  # (B,)


def _mean_abs(output: Tensor, target: Tensor) -> Tensor:
    return (output - target).abs().flatten(1).mean(dim=1)  # (B,)


def _mean_huber(output: Tensor, target: Tensor) -> Tensor:
    return F.huber_loss(output, target, reduction="none", delta=1.0).flatten(1).mean(dim=1)  # (B,)


def _sigmoid_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(dim=1)  # (B,)


def mse_half_sum(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """The slides' q_S: ``1/B sum_n 1/2 sum_i (t_ni - s_ni)^2``; output, target (B, K)."""
    return _weighted_mean(_half_sum_squares(output, target), weight)


def mse(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error over outputs and samples; output, target (B, K)."""
    return _weighted_mean(_mean_squares(output, target), weight)


def mae(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean absolute error over outputs and samples; output, target (B, K)."""
    return _weighted_mean(_mean_abs(output, target), weight)


def huber(output: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Huber loss (quadratic below |e| = 1, linear above), mean over outputs and samples."""
    return _weighted_mean(_mean_huber(output, target), weight)


def cross_entropy(logits: Tensor, labels: Tensor, class_weights: Tensor | None = None) -> Tensor:
    """``-1/B sum_n log softmax(z_n)[y_n]``; logits (B, K), labels (B,) int64."""
    return F.cross_entropy(logits, labels, weight=class_weights)


def binary_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Sigmoid cross-entropy from logits, mean over outputs then samples; (B, K) both."""
    return _weighted_mean(_sigmoid_cross_entropy(logits, target), weight)


LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse_half_sum": mse_half_sum,
    "mse": mse,
    "mae": mae,
    "huber": huber,
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
}
PER_SAMPLE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse_half_sum": _half_sum_squares,
    "mse": _mean_squares,
    "mae": _mean_abs,
    "huber": _mean_huber,
    "binary_cross_entropy": _sigmoid_cross_entropy,
}
ALIASES = {"sse": "mse_half_sum", "ce": "cross_entropy", "bce": "binary_cross_entropy"}
FROM_LOGITS = {"cross_entropy", "binary_cross_entropy"}


def canonical_loss(name: str) -> str:
    """The registry name for ``name`` (aliases resolved) or a TrainingError listing them."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in LOSSES:
        close = difflib.get_close_matches(key, [*LOSSES, *ALIASES], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise TrainingError(f"unknown loss '{name}'; {hint}valid losses: {', '.join([*LOSSES, *ALIASES])}")
    return key


class Loss:
    """A loss bound to the task: encodes class targets and applies class weights.

    ``loss(output, y)``: ``output (B, K)`` is the model's logits when ``from_logits`` else
    its outputs s^L; ``y`` is class indices (B,) for classification or targets (B, K).
    """

    def __init__(
        self,
        name: str,
        *,
        num_classes: int | None = None,
        class_weights: Tensor | None = None,
        target_encoding: str = "onehot",
    ) -> None:
        self.name = canonical_loss(name)
        self.function = LOSSES[self.name]
        self.from_logits = self.name in FROM_LOGITS
        self.num_classes = num_classes
        self.class_weights = class_weights  # (K,) or None
        if target_encoding not in TARGET_CODES:
            raise TrainingError(f"unknown target encoding '{target_encoding}'; valid: {', '.join(TARGET_CODES)}")
        self.target_encoding = target_encoding
        self.codes: Tensor | None = None  # (K, K) or (2, 1): row c is the target of class c
        if num_classes is not None and self.name != "cross_entropy":
            low, high = TARGET_CODES[target_encoding]
            self.codes = torch.full((num_classes, num_classes), low, dtype=torch.float64)
            self.codes.fill_diagonal_(high)

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> Loss:
        """Move the code table (in the model's ``dtype``) and class weights to ``device``."""
        if self.codes is not None:
            self.codes = self.codes.to(device, dtype or self.codes.dtype)
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device, dtype or self.class_weights.dtype)
        return self

    def targets(self, output: Tensor, y: Tensor) -> Tensor:
        """Targets shaped like ``output``: code rows for class indices, else ``y`` itself."""
        if y.dtype.is_floating_point or self.codes is None:
            return y.reshape(output.shape).to(output.dtype)
        if output.shape[1:] == (1,):  # one output unit for two classes
            low, high = TARGET_CODES[self.target_encoding]
            return (low + (high - low) * y.to(output.dtype)).unsqueeze(1)  # (B, 1)
        return self.codes[y].to(output.dtype)  # (B, K)

    def per_sample(self, output: Tensor, y: Tensor) -> Tensor:
        """q_n for every sample (B,), unweighted (e.g. a curriculum's difficulty score)."""
        if self.name == "cross_entropy":
            return F.cross_entropy(output, y, reduction="none")
        return PER_SAMPLE[self.name](output, self.targets(output, y))

    def __call__(self, output: Tensor, y: Tensor) -> Tensor:
        """The batch loss, a 0-dim tensor."""
        if self.name == "cross_entropy":
            return cross_entropy(output, y, self.class_weights)
        weight = None if self.class_weights is None or y.dtype.is_floating_point else self.class_weights[y]
        return self.function(output, self.targets(output, y), weight)

    def predictions(self, output: Tensor) -> Tensor:
        """Class indices (B,) from outputs or logits (B, K): argmax, or a threshold for K = 1."""
        if output.shape[1:] == (1,):
            if self.from_logits:
                return (output[:, 0] > 0).long()
            low, high = TARGET_CODES[self.target_encoding]
            return (output[:, 0] > (low + high) / 2).long()
        return output.argmax(dim=1)

    def __repr__(self) -> str:
        return f"Loss({self.name!r}, num_classes={self.num_classes}, target_encoding={self.target_encoding!r})"
