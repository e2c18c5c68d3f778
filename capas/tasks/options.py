"""Training options a task cannot honour are refused, never silently ignored.

``TrainConfig`` holds the options of every kind of learning; a supervised net uses them
all, an RBM trained by contrastive divergence only a few (``lr``, ``momentum``, ``l2``...).
A task lists the fields it does not use; any of them set away from its default is an
error naming the field, so ``capas.fit(rbm, x, scheduler="cosine")`` does not train as if
the schedule had been applied.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from capas.errors import TrainingError
from capas.train.config import TrainConfig
from capas.train.optim import needs_closure

#: fields only supervised training on the loop's own step reads (loss, engine, input and
#: label handling, curriculum, frozen layers, augmentation, truncated BPTT of the recurrent
#: layers): what a task with its own objective refuses
SUPERVISED_ONLY = (
    "loss",
    "engine",
    "amp",
    "l1",
    "max_norm",
    "input_noise",
    "class_weights",
    "resample",
    "target_encoding",
    "curriculum",
    "frozen_layers",
    "augment",
    "tbptt",
)
#: the supervised hidden-activity penalty (an autoencoder or RBM sets its own sparsity)
SPARSITY_PENALTY = ("sparsity", "sparsity_weight", "sparsity_target")


def refuse_unused(config: TrainConfig, kind: str, fields: Iterable[str]) -> None:
    """TrainingError when any of ``fields`` differs from its ``TrainConfig`` default."""
    given = [
        name
        for name in fields
        if getattr(config, name) != TrainConfig.model_fields[name].get_default(call_default_factory=True)
    ]
    if given:
        raise TrainingError(
            f"{', '.join(given)} do(es) not apply to {kind} training; drop {'it' if len(given) == 1 else 'them'}"
        )


def refuse_closure_optimizers(optimizers: Iterable[torch.optim.Optimizer], kind: str) -> None:
    """TrainingError for an optimizer whose step re-evaluates the loss through a closure
    (L-BFGS): only supervised training builds that closure; the other tasks' objectives draw
    fresh noise (corruption, teacher-forcing coins, a GAN's z) at every evaluation."""
    for optimizer in optimizers:
        if needs_closure(optimizer):
            raise TrainingError(
                f"{type(optimizer).__name__} re-evaluates the loss several times a step (step(closure)), which "
                f"{kind} training does not do; choose another optimizer (adam, sgd, rmsprop...)"
            )
