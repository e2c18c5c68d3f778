"""Normalisation and regularisation layers: thin ``torch.nn`` subclasses with ``config()``.

They add nothing to the maths of their parents; what they add is one name per concept
(one ``BatchNorm`` for features and for images), argument checks with clear errors, and a
round-trippable config.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from capas.errors import SpecError, TrainingError
from capas.layers.dense import check_positive


class BatchNorm(nn.BatchNorm1d):
    """Batch normalisation over the batch (and spatial positions) of each feature/channel.

    Accepts ``(N, C)`` features, ``(N, C, L)`` sequences and ``(N, C, H, W)`` images: what
    ``nn.BatchNorm1d`` and ``nn.BatchNorm2d`` compute is the same per-channel statistic, so
    images are viewed as ``(N, C, H*W)``. Parameters and buffers match ``nn.BatchNorm2d``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True) -> None:
        check_positive("BatchNorm", num_features=num_features)
        if not 0 <= momentum <= 1 or not eps > 0:
            raise SpecError(f"BatchNorm needs 0 <= momentum <= 1 and eps > 0, got momentum={momentum}, eps={eps}")
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise SpecError(
                f"BatchNorm({self.num_features}) expects inputs (N, {self.num_features}, ...), "
                f"got shape {tuple(x.shape)}"
            )
        if self.training and x.numel() == x.shape[1]:
            raise TrainingError(
                f"batch norm in training needs more than one value per channel, got a batch of shape "
                f"{tuple(x.shape)}; a last batch of 1 sample (N_train % batch_size == 1) does this: "
                "choose another batch size"
            )
        if x.dim() <= 3:
            return super().forward(x)
        return super().forward(x.flatten(2)).view(x.shape)  # (N, C, H, W)

    def config(self) -> dict[str, Any]:
        return {
            "type": "batch_norm",
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
        }


class LayerNorm(nn.LayerNorm):
    """Normalise each sample over its last dimensions ``normalized_shape`` (Ba et al. 2016)."""

    def __init__(self, normalized_shape: int | list[int] | tuple[int, ...], eps: float = 1e-5, affine: bool = True):
        shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
        check_positive("LayerNorm", **{f"normalized_shape[{i}]": n for i, n in enumerate(shape)})
        super().__init__(shape, eps=eps, elementwise_affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[x.dim() - len(self.normalized_shape) :]) != self.normalized_shape:
            raise SpecError(
                f"LayerNorm{list(self.normalized_shape)} expects inputs ending in {list(self.normalized_shape)}, "
                f"got shape {tuple(x.shape)}"
            )
        return super().forward(x)

    def config(self) -> dict[str, Any]:
        return {
            "type": "layer_norm",
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "affine": self.elementwise_affine,
        }


class Dropout(nn.Dropout):
    """Zero each input with probability ``p`` during training.

    Inverted dropout (the default, ``drop0.5``) scales the survivors by 1/(1-p) in
    training, so the test pass uses the whole network unchanged. Classic dropout
    (``classic=True``, ``drop0.5:classic``; Srivastava et al. 2014, course file 004: "Durante
    el test: se usa toda la red, pero los pesos se multiplican por p", p being there the
    probability of *keeping* a unit) leaves the survivors as they are in training and
    multiplies by the keep probability 1 - p at test time -- the same as scaling the next
    layer's weights by 1 - p. Either way a unit's expected training output equals its test
    output; the two differ only in where the factor goes (at test time, classic outputs are
    1 - p times the inverted layer's, which is why the trained weights of one cannot be
    used in the other).

    ``generator``: where the masks are drawn from. A training run sets it to its ``dropout``
    generator so that a fit never draws from (or reseeds) torch's global generator; left
    None, the layer behaves exactly like ``nn.Dropout`` (classic: without the 1/(1-p)).
    """

    def __init__(self, p: float = 0.5, classic: bool = False) -> None:
        if not 0 <= p < 1:
            raise SpecError(f"Dropout probability must be in [0, 1), got {p}")
        super().__init__(p)
        self.classic = bool(classic)
        self.generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        """x (N, *) -> x * m / (1 - p) with m ~ Bernoulli(1 - p) elementwise (training only);
        classic: x * m in training, x * (1 - p) at test."""
        keep = 1.0 - self.p
        if self.classic:
            if not self.training:
                return x * keep
            if self.p == 0:
                return x
            mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)  # (N, *) of 0/1
            return x * mask
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(x)
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)  # (N, *) of 0/1
        return x * mask.div_(keep)

    def config(self) -> dict[str, Any]:
        return {"type": "dropout", "p": self.p, **({"classic": True} if self.classic else {})}

    def extra_repr(self) -> str:
        return super().extra_repr() + (", classic (test outputs times 1 - p)" if self.classic else "")


class Flatten(nn.Flatten):
    """(N, *) -> (N, prod(*)): the bridge from convolutional to dense layers."""

    def __init__(self) -> None:
        super().__init__(start_dim=1, end_dim=-1)

    def config(self) -> dict[str, Any]:
        return {"type": "flatten"}
