"""capas layers: small ``nn.Module``s whose ``forward`` reads like the slide's equation.

Every layer has ``config()`` -> a JSON-able dict ``{"type": ..., **constructor args}``;
``layer_from_config`` rebuilds it (weights aside) through the ``LAYERS`` registry, so
no user string is ever evaluated or used as an attribute name.

``kinds.KINDS`` is the other registry: one ``LayerKind`` per token of the notation (how it
is written and built); ``sequence.PerStep`` runs a layer at every step of a sequence.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from capas.errors import SpecError
from capas.layers.activations import ACTIVATIONS, Activation, get_activation
from capas.layers.conv import Conv, ConvMaxout, Pool, SeparableConv, conv_output_length
from capas.layers.dense import ActivatedLayer, Dense, Maxout
from capas.layers.init import SCHEMES, init_for, initialize_
from capas.layers.kinds import KINDS, LayerKind, register_kind
from capas.layers.norm import BatchNorm, Dropout, Flatten, LayerNorm
from capas.layers.sequence import PerStep, per_step

LAYERS: dict[str, type[nn.Module]] = {
    "dense": Dense,
    "maxout": Maxout,
    "conv": Conv,
    "conv_maxout": ConvMaxout,
    "separable_conv": SeparableConv,
    "pool": Pool,
    "batch_norm": BatchNorm,
    "layer_norm": LayerNorm,
    "dropout": Dropout,
    "flatten": Flatten,
}


def register_layer(type_name: str, cls: type[nn.Module]) -> None:
    """Add a layer class (with ``config()``) to the registry, e.g. from ``blocks.py``."""
    if LAYERS.get(type_name, cls) is not cls:
        raise SpecError(f"layer type '{type_name}' is already registered to {LAYERS[type_name].__name__}")
    LAYERS[type_name] = cls


def layer_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a layer from ``layer.config()`` (fresh weights)."""
    if not isinstance(config, dict) or "type" not in config:
        raise SpecError(f"a layer config must be a dict with a 'type' key, got {config!r}")
    kind = config["type"]
    if kind == "activation":
        return get_activation(config)
    if kind not in LAYERS:
        raise SpecError(f"unknown layer type '{kind}'; known types: activation, {', '.join(LAYERS)}")
    args = {k: v for k, v in config.items() if k != "type"}
    try:
        return LAYERS[kind](**args)
    except TypeError as err:
        raise SpecError(f"bad arguments for a '{kind}' layer: {err}") from None


__all__ = [
    "ACTIVATIONS",
    "KINDS",
    "LAYERS",
    "SCHEMES",
    "ActivatedLayer",
    "Activation",
    "BatchNorm",
    "Conv",
    "ConvMaxout",
    "Dense",
    "Dropout",
    "Flatten",
    "LayerKind",
    "LayerNorm",
    "Maxout",
    "PerStep",
    "Pool",
    "SeparableConv",
    "conv_output_length",
    "get_activation",
    "init_for",
    "initialize_",
    "layer_from_config",
    "per_step",
    "register_kind",
    "register_layer",
]
