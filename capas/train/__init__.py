"""The training engine: ``fit`` / ``Trainer``, losses, optimizers, schedules, callbacks, run directories."""

from capas.train.callbacks import Callback, Convergence, EarlyStopping, ProgressBar
from capas.train.config import TrainConfig
from capas.train.fit import FitResult, fit
from capas.train.history import History
from capas.train.losses import LOSSES, Loss
from capas.train.optim import OPTIMIZERS, SCHEDULERS, make_optimizer, make_schedule
from capas.train.rundir import Run, load_model, load_run, save_model
from capas.train.steppers import AutogradStepper
from capas.train.trainer import Trainer

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULERS",
    "AutogradStepper",
    "Callback",
    "Convergence",
    "EarlyStopping",
    "FitResult",
    "History",
    "Loss",
    "ProgressBar",
    "Run",
    "TrainConfig",
    "Trainer",
    "fit",
    "load_model",
    "load_run",
    "make_optimizer",
    "make_schedule",
    "save_model",
]
