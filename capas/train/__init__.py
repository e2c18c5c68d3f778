"""The training engine: ``Trainer``, losses, optimizers, schedules, callbacks, run directories.

- ``trainer.py`` / ``setup.py``: the loop (``Trainer.fit -> fit_loop -> run_epoch -> train_step``),
  its preparation and checkpoints (``capas.fit``, in ``capas.api``, drives it);
  ``steppers.py`` / ``engines.py``: autograd or explicit BackProp.
- ``losses.py``, ``optim.py``, ``regularization.py``, ``metrics.py``, ``evaluation.py``: the maths.
- ``callbacks.py`` (early stopping, convergence, progress bar or lines), ``history.py``, ``rundir.py`` +
  ``checkpoint.py`` (run directories, exact resume), ``imbalance.py``, ``curriculum.py``, ``config.py``.
"""

from capas.train.callbacks import Callback, Convergence, EarlyStopping, ProgressBar, ProgressLines
from capas.train.config import TrainConfig
from capas.train.evaluation import evaluate_model
from capas.train.history import History
from capas.train.loop import Trainer
from capas.train.optim import OPTIMIZERS, SCHEDULERS, make_optimizer, make_schedule
from capas.train.rundir import Run, load_model, load_run, save_model
from capas.train.steppers import AutogradStepper
from capas.train.task import Task, TaskContext

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "AutogradStepper",
    "Callback",
    "Convergence",
    "EarlyStopping",
    "History",
    "ProgressBar",
    "ProgressLines",
    "Run",
    "TrainConfig",
    "Task",
    "TaskContext",
    "Trainer",
    "evaluate_model",
    "load_model",
    "load_run",
    "make_optimizer",
    "make_schedule",
    "save_model",
]
