"""Tasks: what the one training loop (``capas.train.Trainer``) trains.

- ``SupervisedTask``: ``x -> y`` with BackProp (autograd or the explicit delta rule).
- ``AutoencoderTask``: an ``Autoencoder`` reconstructs its inputs (denoising, sparse).
- ``ContrastiveDivergenceTask``: an ``RBM`` by CD-k / PCD-k.

``for_model(model)`` gives a model's default task, by its kind in the model registry.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from capas.errors import TrainingError
from capas.models.registry import kind_of
from capas.tasks.autoencoder import AutoencoderTask
from capas.tasks.gan import GanTask
from capas.tasks.rbm import ContrastiveDivergenceTask
from capas.tasks.seq2seq import Seq2SeqTask
from capas.tasks.supervised import SupervisedTask
from capas.train.task import Task

#: model kind -> its default task; other kinds and plain modules train supervised
TASKS: dict[str, type[Task]] = {
    "autoencoder": AutoencoderTask,
    "rbm": ContrastiveDivergenceTask,
    "gan": GanTask,
    "seq2seq": Seq2SeqTask,
}


def for_model(model: nn.Module, **options: Any) -> Task:
    """The task that trains ``model`` by default, built with ``options`` (its keyword
    arguments; those given as None are left at the task's defaults). A supervised task for
    networks and plain modules; TrainingError for an option the task does not take, or for
    a DBN (trained greedily, one RBM per stage: ``capas.pretrain(x, dbn)``)."""
    kind = kind_of(model)
    if kind == "dbn":
        raise TrainingError(
            "a DBN is trained greedily, one RBM at a time: use capas.pretrain(x, dbn) "
            "(or capas.fit on each of dbn.rbms)"
        )
    task_class = TASKS.get(kind, SupervisedTask)
    given = {name: value for name, value in options.items() if value is not None}
    parameters = inspect.signature(task_class.__init__).parameters.values()
    accepted = [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise TrainingError(
            f"{task_class.__name__} does not take {', '.join(unknown)}; its task options are "
            f"{', '.join(accepted) or 'none'}"
        )
    return task_class(model, **given)


__all__ = [
    "AutoencoderTask",
    "ContrastiveDivergenceTask",
    "GanTask",
    "Seq2SeqTask",
    "SupervisedTask",
    "Task",
    "for_model",
]
