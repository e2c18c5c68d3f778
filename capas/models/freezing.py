"""Frozen layers: parameters that keep their values while the rest of a network trains.

Greedy layer-wise pre-training hands its layers to fine-tuning; keeping some of them
frozen (requires_grad=False) is an explicit choice, by layer index or name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch import nn

from capas.errors import SpecError, TrainingError
from capas.models.protocol import layer_names


def layer_indices(network: nn.Module, layers: Iterable[int | str]) -> list[int]:
    """Indices into ``network.layers`` for indices or layer names (``dense1``...)."""
    n = len(network.layers)
    names = layer_names(network) or []
    found = []
    for layer in layers:
        if isinstance(layer, str) and not layer.lstrip("-").isdigit():
            if layer not in names:
                raise SpecError(f"no layer named {layer!r}; the network's layers are {', '.join(names) or 'unnamed'}")
            found.append(names.index(layer))
            continue
        index = int(layer)
        if not -n <= index < n:
            raise SpecError(f"layer index {index} is out of range: the network has {n} layers (0..{n - 1})")
        found.append(index % n)
    return found


def _layer_params(network: nn.Module, layers: Iterable[int | str] | None) -> Iterator[nn.Parameter]:
    indices = range(len(network.layers)) if layers is None else layer_indices(network, layers)
    for index in indices:
        yield from network.layers[index].parameters()


def freeze(network: nn.Module, layers: Iterable[int | str]) -> nn.Module:
    """Stop the given layers (indices into ``network.layers`` or names) from learning."""
    for param in _layer_params(network, layers):
        param.requires_grad_(False)
    return network


def unfreeze(network: nn.Module, layers: Iterable[int | str] | None = None) -> nn.Module:
    """Let the given layers (all when None) learn again."""
    for param in _layer_params(network, layers):
        param.requires_grad_(True)
    return network


def check_trainable(model: nn.Module, frozen: Iterable[int | str] = ()) -> None:
    """TrainingError when no parameter of ``model`` would learn: every layer frozen (by
    ``frozen``, the layers the run froze, or by the caller) leaves an optimizer with nothing
    to update and a backward pass with nothing to differentiate."""
    params = list(model.parameters())
    if params and not any(p.requires_grad for p in params):
        which = f" (frozen layers {', '.join(map(str, frozen))})" if frozen else ""
        raise TrainingError(
            f"every parameter of the model is frozen{which}, so there is nothing to train; "
            "freeze fewer layers (leave at least one, e.g. the output layer)"
        )
