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
from capas.layers.conv import Conv, ConvMaxout, DepthwiseConv, GlobalAvgPool, Pool, SeparableConv, conv_output_length
from capas.layers.dense import ActivatedLayer, Dense, Maxout, SharedDense
from capas.layers.init import SCHEMES, init_for, initialize_
from capas.layers.kinds import KINDS, LayerKind, register_kind
from capas.layers.lenet import PartialConv, RBFOutput, Subsampling
from capas.layers.local import LocallyConnected
from capas.layers.norm import BatchNorm, Dropout, Flatten, LayerNorm
from capas.layers.sequence import PerStep, per_step
from capas.layers.upsample import TransposedConv, Upsample  # registers the tc and up tokens

LAYERS: dict[str, type[nn.Module]] = {
    "dense": Dense,
    "maxout": Maxout,
    "shared_dense": SharedDense,
    "conv": Conv,
    "conv_maxout": ConvMaxout,
    "separable_conv": SeparableConv,
    "depthwise_conv": DepthwiseConv,
    "locally_connected": LocallyConnected,
    "partial_conv": PartialConv,
    "subsampling": Subsampling,
    "rbf_output": RBFOutput,
    "global_avg_pool": GlobalAvgPool,
    "pool": Pool,
    "batch_norm": BatchNorm,
    "layer_norm": LayerNorm,
    "dropout": Dropout,
    "flatten": Flatten,
    "transposed_conv": TransposedConv,
    "upsample": Upsample,
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
    "DepthwiseConv",
    "GlobalAvgPool",
    "LocallyConnected",
    "PartialConv",
    "RBFOutput",
    "Subsampling",
    "Dropout",
    "Flatten",
    "LayerKind",
    "LayerNorm",
    "Maxout",
    "SharedDense",
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

import capas.layers.recurrent_kinds  # noqa: E402, F401  (registers the recurrent tokens)
