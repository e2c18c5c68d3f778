"""Fully connected layers: ``Dense`` (g(W x + b)) and ``Maxout`` (max of k linear pieces).

Parameters are laid out exactly like ``nn.Linear`` (``weight (out, in)``, ``bias (out,)``)
so weights move between capas, PyTorch and the explicit BackProp engine unchanged.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from capas.errors import SpecError
from capas.layers.activations import Activation, get_activation
from capas.layers.init import check_scheme, init_for, initialize_


def check_positive(layer: str, **sizes: int) -> None:
    """SpecError unless every size is a positive integer (shared by all layers)."""
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"{layer}: {key} must be a positive integer, got {value!r}")


def flat_input(layer: nn.Module, x: Tensor, in_features: int) -> Tensor:
    """``x`` (N, *) flattened to (N, in_features), or a SpecError naming both shapes."""
    if x.dim() < 2 or math.prod(x.shape[1:]) != in_features:
        raise SpecError(
            f"{type(layer).__name__} expects inputs of {in_features} features per sample, "
            f"got a tensor of shape {tuple(x.shape)}; check the previous layer's output size"
        )
    return x.flatten(1)  # (N, in_features)


class ActivatedLayer(nn.Module, abc.ABC):
    """A layer s = g(z) that owns its activation g (Dense, Conv, SeparableConv, Residual).

    ``pre_activation(x)`` computes z and ``forward`` applies g to it, so ``Network.logits``
    stops at z^L for the output layer without running g. ``init`` (None: the activation's
    scheme, ``init_for``) names the weight initialisation.
    """

    activation: Activation
    init: str | None

    def _set_activation(self, activation: str | dict | Activation, init: str | None) -> None:
        self.activation = get_activation(activation)
        self.init = None if init is None else check_scheme(init)

    @property
    def init_scheme(self) -> str:
        return self.init or init_for(self.activation.name)

    @abc.abstractmethod
    def pre_activation(self, x: Tensor) -> Tensor:
        """z (N, *out_shape), the input of the activation."""

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.pre_activation(x))  # (N, *out_shape)


class Dense(ActivatedLayer):
    """s = g(W x + b) for x (N, in_features) (other shapes are flattened) -> (N, out_features).

    ``init`` overrides the scheme chosen from the activation (see ``capas.layers.init``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str | dict | Activation = "linear",
        init: str | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_positive("Dense", in_features=in_features, out_features=out_features)
        self.in_features = in_features
        self.out_features = out_features
        self._set_activation(activation, init)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        initialize_(self.weight, self.init_scheme, self.in_features, self.out_features)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def pre_activation(self, x: Tensor) -> Tensor:
        """z = W x + b (N, out_features): what ``Network.logits`` reads for the output layer."""
        return F.linear(flat_input(self, x, self.in_features), self.weight, self.bias)  # (N, out)

    def config(self) -> dict[str, Any]:
        return {
            "type": "dense",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": self.activation.config(),
            "init": self.init,
            "bias": self.bias is not None,
        }

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, init={self.init_scheme}"


class Maxout(nn.Module):
    """Goodfellow et al. (2013) maxout: unit j outputs max_p (W_{jp} x + b_{jp}).

    ``weight (out*pieces, in)``, ``bias (out*pieces,)``; rows ``j*pieces ... j*pieces +
    pieces - 1`` are unit j's pieces. x (N, in_features) -> (N, out_features). On a tie
    the whole gradient goes to the first maximal piece, as in the BackProp engine.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, init: str | None = None) -> None:
        super().__init__()
        check_positive("Maxout", in_features=in_features, out_features=out_features, pieces=pieces)
        self.in_features = in_features
        self.out_features = out_features
        self.pieces = pieces
        self.init = None if init is None else check_scheme(init)
        self.weight = nn.Parameter(torch.empty(out_features * pieces, in_features))
        self.bias = nn.Parameter(torch.empty(out_features * pieces))
        self.reset_parameters()

    @property
    def init_scheme(self) -> str:
        return self.init or init_for("maxout")

    def reset_parameters(self) -> None:
        initialize_(self.weight, self.init_scheme, self.in_features, self.out_features)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        z = F.linear(flat_input(self, x, self.in_features), self.weight, self.bias)  # (N, out*pieces)
        return z.unflatten(1, (self.out_features, self.pieces)).max(dim=2).values  # (N, out)

    def config(self) -> dict[str, Any]:
        return {
            "type": "maxout",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "pieces": self.pieces,
            "init": self.init,
        }

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"
