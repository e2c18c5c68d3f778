"""capas: build, train and understand neural networks on PyTorch.

The public API in one place::

    import capas
    data = capas.data.load("digits")
    net = capas.build("64-30-10", act="sigmoid")
    capas.summarize(net)                       # exact parameters, shapes, FLOPs
    result = capas.fit(net, data, optimizer="momentum", lr=0.1, epochs=20)
    capas.pretrain(data, "64-100-100-10", method="rbm", out="runs/dbn")
"""

from capas import data
from capas.diagnostics import Summary, summarize
from capas.errors import CapasError, DataError, RunDirError, SpecError, TrainingError
from capas.layers import ACTIVATIONS, get_activation
from capas.models import Network, build, build_from_toml
from capas.models.classic import Adaline, Perceptron
from capas.pretraining import fine_tune, freeze, pretrain, unfreeze
from capas.train import Callback, FitResult, History, TrainConfig, Trainer, fit, load_model, load_run

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Adaline",
    "Callback",
    "CapasError",
    "DataError",
    "FitResult",
    "History",
    "Network",
    "Perceptron",
    "RunDirError",
    "SpecError",
    "Summary",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "build",
    "build_from_toml",
    "data",
    "fine_tune",
    "fit",
    "freeze",
    "get_activation",
    "load_model",
    "load_run",
    "pretrain",
    "summarize",
    "unfreeze",
]
