"""What capas code may ask of a model, in one place instead of ``hasattr`` probes.

A *capas model* is an instance of a class in ``capas.models.registry.MODELS``; anything
else is a plain ``nn.Module`` that capas trains and saves but cannot rebuild from JSON.
"""

from __future__ import annotations

from torch import nn

from capas.models.network import Network
from capas.models.registry import kind_of


def is_capas_model(model: nn.Module) -> bool:
    """True for an instance of a registered model class (rebuildable from its ``config()``)."""
    return kind_of(model) is not None


def layer_names(model: nn.Module) -> list[str] | None:
    """The stable top-level layer names (``dense1``, ``conv2``...) of a ``Network``, one per
    entry of ``model.layers``; None for a model without named layers."""
    return model.layer_names() if isinstance(model, Network) else None


def training_forward(model: nn.Module, from_logits: bool) -> nn.Module:
    """The module a training step runs: a ``Network``'s training module (z^L when the loss
    wants logits, s^L otherwise); any other module as it is (its ``forward`` is taken to
    return what the loss needs, logits for the cross-entropies)."""
    return model.training_module(from_logits) if isinstance(model, Network) else model


def output_shape(model: nn.Module) -> tuple[int, ...] | None:
    """A ``Network``'s output shape per sample; None when the model does not declare one."""
    return tuple(model.output_shape) if isinstance(model, Network) else None


def model_loss(model: nn.Module) -> str | None:
    """The loss a ``Network`` was built for (it fixed its output activation); None otherwise."""
    return model.loss if isinstance(model, Network) else None
