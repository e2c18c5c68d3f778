"""capas: build, train and understand neural networks on PyTorch.

The public API in one place::

    import capas
    data = capas.data.load("digits")
    net = capas.build("64-30-10", act="sigmoid")
    capas.summarize(net)                       # exact parameters, shapes, FLOPs
    result = capas.fit(net, data, optimizer="momentum", lr=0.1, epochs=20)
    capas.evaluate(result.run_dir or net, "digits")
    capas.pretrain(data, "64-100-100-10", method="rbm", out="runs/dbn")

The names below are imported on first use, so that ``import capas`` (and with it the
``capas`` command's ``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from capas.errors import CapasError, DataError, RunDirError, SpecError, TrainingError, TrainingInterrupted

if TYPE_CHECKING:
    from capas import data
    from capas.api import FitResult, evaluate, fit, predict, run_recipe
    from capas.api.plot import plot
    from capas.api.pretrain import fine_tune, freeze, pretrain, unfreeze
    from capas.diagnostics import Summary, summarize
    from capas.layers import ACTIVATIONS, get_activation
    from capas.models import Network, build, build_from_toml
    from capas.models.classic import Adaline, Hebb, Perceptron
    from capas.train import (
        Callback,
        History,
        TrainConfig,
        Trainer,
        load_model,
        load_run,
    )

__version__ = "0.1.0"

#: public name -> the module that defines it (imported by ``__getattr__`` on first use)
_LAZY = {
    "ACTIVATIONS": "capas.layers",
    "Adaline": "capas.models.classic",
    "Callback": "capas.train",
    "FitResult": "capas.api",
    "History": "capas.train",
    "Network": "capas.models",
    "Hebb": "capas.models.classic",
    "Perceptron": "capas.models.classic",
    "Summary": "capas.diagnostics",
    "TrainConfig": "capas.train",
    "Trainer": "capas.train",
    "build": "capas.models",
    "build_from_toml": "capas.models",
    "evaluate": "capas.api",
    "fine_tune": "capas.api.pretrain",
    "fit": "capas.api",
    "freeze": "capas.api.pretrain",
    "get_activation": "capas.layers",
    "load_model": "capas.train",
    "load_run": "capas.train",
    "plot": "capas.api.plot",
    "predict": "capas.api",
    "pretrain": "capas.api.pretrain",
    "run_recipe": "capas.api",
    "summarize": "capas.diagnostics",
    "unfreeze": "capas.api.pretrain",
}


def __getattr__(name: str) -> Any:
    """Import a public name (or the ``data`` package) the first time it is used."""
    if name == "data":
        return importlib.import_module("capas.data")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'capas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ACTIVATIONS",
    "Adaline",
    "Callback",
    "CapasError",
    "DataError",
    "FitResult",
    "Hebb",
    "History",
    "Network",
    "Perceptron",
    "RunDirError",
    "SpecError",
    "Summary",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "build",
    "build_from_toml",
    "data",
    "evaluate",
    "fine_tune",
    "fit",
    "freeze",
    "get_activation",
    "load_model",
    "load_run",
    "plot",
    "predict",
    "pretrain",
    "run_recipe",
    "summarize",
    "unfreeze",
]
