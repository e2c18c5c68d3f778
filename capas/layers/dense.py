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


class SharedDense(ActivatedLayer):
    """A dense layer whose first ``shared`` units share one weight vector and bias
    (``d300:share150``; course file 000: "la mitad de los procesadores de cada capa
    comparten los mismos pesos"). x (N, in_features) -> (N, out_features).

    Parameters: ``weight (out - shared, in)``, ``bias (out - shared,)`` for the units with
    their own weights (units ``shared ... out - 1``) and ``shared_weight (1, in)``,
    ``shared_bias (1,)`` for the sharing ones (units ``0 ... shared - 1``): the layer holds
    (out - shared + 1) * (in + 1) parameters instead of out * (in + 1).

    Why this is a teaching case rather than a useful layer: in a fully connected layer every
    unit sees the same inputs, so units with the same weights and bias compute the *same*
    output -- the ``shared`` units are one unit copied ``shared`` times, and the next layer
    could reach the same functions with one of them and the sum of their outgoing weights.
    Sharing pays only when the sharing units see *different* inputs, as the units of a
    convolution do (one kernel slid over every position: a feature detector applied
    everywhere). The count is what the exercise asks; the layer shows why it is also the
    count of a smaller network.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        shared: int,
        activation: str | dict | Activation = "linear",
        init: str | None = None,
    ) -> None:
        super().__init__()
        check_positive("SharedDense", in_features=in_features, out_features=out_features, shared=shared)
        if not 2 <= shared <= out_features:
            raise SpecError(
                f"SharedDense: between 2 and {out_features} of its {out_features} units can share weights, "
                f"got {shared}; write d{out_features}:shareK with 2 <= K <= {out_features}"
            )
        self.in_features, self.out_features, self.shared = in_features, out_features, shared
        self._set_activation(activation, init)
        own = out_features - shared
        self.weight = nn.Parameter(torch.empty(own, in_features))
        self.bias = nn.Parameter(torch.empty(own))
        self.shared_weight = nn.Parameter(torch.empty(1, in_features))
        self.shared_bias = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    @property
    def shares_weights(self) -> bool:
        """Several units use one set of weights (the summary marks the layer ``shared``)."""
        return True

    def reset_parameters(self) -> None:
        for weight in (self.weight, self.shared_weight):
            initialize_(weight, self.init_scheme, self.in_features, self.out_features)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.shared_bias)

    def full_weight(self) -> tuple[Tensor, Tensor]:
        """The (out, in) weight and (out,) bias the layer applies: the shared row repeated."""
        weight = torch.cat([self.shared_weight.expand(self.shared, -1), self.weight])  # (out, in)
        return weight, torch.cat([self.shared_bias.expand(self.shared), self.bias])  # (out,)

    def pre_activation(self, x: Tensor) -> Tensor:
        """z (N, out): the shared units' common z (computed once) repeated, then the others'."""
        x = flat_input(self, x, self.in_features)  # (N, in)
        common = F.linear(x, self.shared_weight, self.shared_bias)  # (N, 1)
        own = F.linear(x, self.weight, self.bias)  # (N, out - shared)
        return torch.cat([common.expand(-1, self.shared), own], dim=1)  # (N, out)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """LeCun et al.'s count: every unit is still connected to every input (plus its bias),
        out * (in + 1), however few distinct weights there are."""
        return self.out_features * (self.in_features + 1)

    def config(self) -> dict[str, Any]:
        return {
            "type": "shared_dense",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "shared": self.shared,
            "activation": self.activation.config(),
            "init": self.init,
        }

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, shared={self.shared}, "
            f"init={self.init_scheme}"
        )
