"""The experiments behind the course's teaching plots that train networks (the plots
themselves are in ``capas.diagnostics.teaching``): a learning-rate sweep and the spread of
final losses over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from capas.api.fit import fit
from capas.diagnostics.teaching import SweepPoint
from capas.errors import CapasError, TrainingError
from capas.train.callbacks import Callback


def lr_sweep(
    spec: str, data: Any, lrs: Sequence[float], epochs: int = 10, seed: int = 0, **options: Any
) -> list[SweepPoint]:
    """Train ``spec`` on ``data`` once per learning rate (same seed, so the same start) and
    record the training loss per epoch; a run that the core stops for a non-finite loss is
    ``diverged`` and keeps the losses of the epochs it finished."""

    class Losses(Callback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_epoch_end(self, trainer, epoch: int, record: dict[str, Any]) -> None:
            self.values.append(float(record["train_loss"]))

    if not lrs:
        raise CapasError("give at least one learning rate to sweep, e.g. 0.001,0.01,0.1,1,10")
    points = []
    for lr in lrs:
        recorder = Losses()
        try:
            fit(spec, data, lr=float(lr), epochs=epochs, seed=seed, quiet=True, callbacks=[recorder], **options)
            diverged = not all(math.isfinite(v) for v in recorder.values)
        except TrainingError as err:
            if "became" not in str(err):  # only the non-finite stop is a result; anything else is a mistake
                raise
            diverged = True
        points.append(SweepPoint(float(lr), tuple(v for v in recorder.values if math.isfinite(v)), diverged))
    return points


def seed_spread(specs: Sequence[str], data: Any, seeds: Sequence[int], epochs: int = 30, **options: Any):
    """{spec: final test losses over ``seeds``}: one training per spec and seed."""
    spread = {}
    for spec in specs:
        spread[spec] = [
            float(fit(spec, data, seed=seed, epochs=epochs, quiet=True, **options).test_metrics["test_loss"])
            for seed in seeds
        ]
    return spread
