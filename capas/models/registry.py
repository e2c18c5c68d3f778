"""The model registry: every kind of capas model, by the name ``model.json`` stores.

``MODELS`` maps a kind (``"network"``; ``"autoencoder"``, ``"rbm"``, ``"dbn"``, and
``"gan"``, ``"seq2seq"`` next) to its class. A registered class has

* ``config() -> dict``: JSON-able, with ``"model": <kind>``, everything needed to rebuild it;
* ``from_config(config)`` (a classmethod): the same model, fresh weights.

Run directories save ``config()`` as ``model.json`` and rebuild any model with
:func:`from_config`; tasks pick a model's default task by :func:`kind_of`. A class joins
with the :func:`register` decorator in its own file, so a new kind of model touches no
other file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from capas.errors import SpecError

MODELS: dict[str, type[nn.Module]] = {}
M = TypeVar("M", bound=type[nn.Module])


def register(kind: str) -> Callable[[M], M]:
    """Class decorator: ``@register("network") class Network(nn.Module): ...``; SpecError if
    ``kind`` already names another class."""

    def decorate(cls: M) -> M:
        if MODELS.get(kind, cls) is not cls:
            raise SpecError(f"model kind '{kind}' is already registered to {MODELS[kind].__name__}")
        MODELS[kind] = cls
        return cls

    return decorate


def kind_of(model: nn.Module) -> str | None:
    """The registered kind of ``model`` (of its class or nearest registered base), or None
    for a module capas does not know (a plain ``nn.Sequential``...)."""
    kinds = {cls: kind for kind, cls in MODELS.items()}
    return next((kinds[cls] for cls in type(model).__mro__ if cls in kinds), None)


def config_of(model: nn.Module) -> dict[str, Any] | None:
    """``model.config()`` (with its ``"model"`` kind) for a registered model, else None."""
    kind = kind_of(model)
    if kind is None:
        return None
    config = model.config()
    if config.get("model") != kind:
        raise SpecError(f'{type(model).__name__}.config() must say "model": "{kind}", got {config.get("model")!r}')
    return config


def from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild the model ``config`` describes (fresh weights) through its kind's class. A
    config without ``"model"`` is a ``network`` (``model.json`` written before the registry).
    SpecError for an unknown kind or a config its class refuses."""
    import capas.models  # noqa: F401  (the built-in kinds register on import)

    if not isinstance(config, dict):
        raise SpecError(f"a model config must be a JSON object, got {config!r:.80}")
    kind = config.get("model", "network")
    if not isinstance(kind, str) or kind not in MODELS:
        raise SpecError(f"unknown model kind {kind!r:.80}; capas knows {', '.join(sorted(MODELS))}")
    return MODELS[kind].from_config(config)


#: how messages name each kind of model ("holds an encoder-decoder, not a GAN")
NOUNS = {
    "network": "a network",
    "autoencoder": "an autoencoder",
    "rbm": "an RBM",
    "dbn": "a DBN",
    "gan": "a GAN",
    "seq2seq": "an encoder-decoder",
}


def noun(model: nn.Module) -> str:
    """``model`` as a message names it, with its article: "an encoder-decoder", "a GAN"; a
    module capas does not know by its class ("a Sequential")."""
    kind = kind_of(model)
    return NOUNS.get(kind or "", f"a {kind or type(model).__name__}")
