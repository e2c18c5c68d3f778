"""Optimizers and learning-rate schedules by name: thin registries over ``torch.optim``.

capas writes no update rule of its own: ``"momentum"`` is ``torch.optim.SGD`` with
``momentum=0.9`` (the slides' ``Delta theta(k) = -rho g + nu Delta theta(k-1)``), ``"nesterov"``
adds ``nesterov=True``, and the adaptive methods (Adagrad, Adadelta, RMSprop, Adam, ...),
Rprop, averaged SGD and L-BFGS are torch's. Every ``torch.optim`` optimizer for dense
gradients is here; ``SparseAdam`` (sparse gradients only) and ``Muon`` (2-D matrices only)
cannot train a whole network and are left out. L-BFGS re-evaluates the loss several times a
step: its stepper passes ``optimizer.step`` a closure (:func:`needs_closure`). A schedule is
stepped once per epoch, or once per batch for the cyclic and one-cycle policies whose period
is counted in iterations.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler

from capas.errors import TrainingError


@dataclass(frozen=True)
class OptimizerEntry:
    """A torch optimizer class with the defaults that make the capas name mean something."""

    cls: type[torch.optim.Optimizer]
    defaults: dict[str, Any]


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(torch.optim.SGD, {}),
    "momentum": OptimizerEntry(torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": OptimizerEntry(torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": OptimizerEntry(torch.optim.Adagrad, {}),
    "adadelta": OptimizerEntry(torch.optim.Adadelta, {}),
    "rmsprop": OptimizerEntry(torch.optim.RMSprop, {}),
    "adam": OptimizerEntry(torch.optim.Adam, {}),
    "adamw": OptimizerEntry(torch.optim.AdamW, {}),
    "adamax": OptimizerEntry(torch.optim.Adamax, {}),
    "nadam": OptimizerEntry(torch.optim.NAdam, {}),
    "radam": OptimizerEntry(torch.optim.RAdam, {}),
    "rprop": OptimizerEntry(torch.optim.Rprop, {}),
    "asgd": OptimizerEntry(torch.optim.ASGD, {}),
    # a fixed step of lr 1 diverges easily; the strong-Wolfe line search finds each step's length
    "lbfgs": OptimizerEntry(torch.optim.LBFGS, {"line_search_fn": "strong_wolfe"}),
}
if hasattr(torch.optim, "Adafactor"):  # torch >= 2.5
    OPTIMIZERS["adafactor"] = OptimizerEntry(torch.optim.Adafactor, {})

#: torch.optim optimizers that cannot train a network's dense parameters, and why
NOT_REGISTERED = {
    "SparseAdam": "it takes sparse gradients only",
    "Muon": "it updates 2-D weight matrices only (biases need another optimizer)",
}


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """True when ``optimizer.step`` must be given a closure that re-evaluates the loss
    (L-BFGS: several function evaluations per step for its line search and history)."""
    return isinstance(optimizer, torch.optim.LBFGS)


def _unknown(kind: str, name: str, valid: list[str]) -> TrainingError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return TrainingError(f"unknown {kind} '{name}'; {hint}valid names: {', '.join(valid)}")


def weight_decay_groups(params: list[torch.nn.Parameter], l2: float, regularize_bias: bool) -> list[dict[str, Any]]:
    """Parameter groups for a torch optimizer: with ``l2``, the weights (every tensor of two or
    more axes; with ``regularize_bias`` the biases and other vectors too) get weight decay l2,
    the gradient of the penalty l2/2 sum w^2; without it, one plain group."""
    if not l2:
        return [{"params": params}]
    decayed = [p for p in params if p.dim() > 1 or regularize_bias]
    kept = [p for p in params if not (p.dim() > 1 or regularize_bias)]
    return [{"params": decayed, "weight_decay": l2}, *([{"params": kept}] if kept else [])]


def make_optimizer(
    name: str, params: Any, lr: float, momentum: float | None = None, **options: Any
) -> torch.optim.Optimizer:
    """``torch.optim`` optimizer ``name`` over ``params`` with learning rate ``lr``.

    ``momentum`` (nu) applies to the SGD family and RMSprop; ``options`` go to the torch
    constructor (e.g. ``weight_decay``, ``betas``); a wrong option is a TrainingError.
    """
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise _unknown("optimizer", name, list(OPTIMIZERS))
    entry = OPTIMIZERS[key]
    kwargs = {**entry.defaults, **options, "lr": lr}
    if momentum is not None:
        if entry.cls not in (torch.optim.SGD, torch.optim.RMSprop):
            raise TrainingError(f"optimizer '{key}' has no momentum option; use sgd, momentum, nesterov or rmsprop")
        kwargs["momentum"] = momentum
    try:
        return entry.cls(params, **kwargs)
    except (TypeError, ValueError) as err:
        raise TrainingError(f"bad options for optimizer '{key}' ({err}); options given: {sorted(kwargs)}") from None


@dataclass
class Schedule:
    """A torch LR scheduler and when to step it."""

    scheduler: Any  # torch.optim.lr_scheduler.LRScheduler or ReduceLROnPlateau
    per_batch: bool
    needs_metric: bool = False


def _cyclic(mode: str):
    def make(opt: torch.optim.Optimizer, lr: float, epochs: int, steps: int, **o: Any) -> lr_scheduler.CyclicLR:
        o.setdefault("base_lr", lr / 10)
        o.setdefault("max_lr", lr)
        o.setdefault("step_size_up", max(1, 2 * steps))  # half a cycle = 2 epochs
        o.setdefault("cycle_momentum", False)
        return lr_scheduler.CyclicLR(opt, mode=mode, **o)

    return make


def _warmup(opt: torch.optim.Optimizer, lr: float, epochs: int, steps: int, **o: Any) -> lr_scheduler.LinearLR:
    o.setdefault("start_factor", 0.1)
    o.setdefault("total_iters", max(1, min(5, epochs)))
    return lr_scheduler.LinearLR(opt, **o)


# name -> (factory(optimizer, lr, epochs, steps_per_epoch, **options), per_batch)
SCHEDULERS: dict[str, tuple[Any, bool]] = {
    "step": (
        lambda opt, lr, epochs, steps, **o: lr_scheduler.StepLR(opt, **{"step_size": 10, "gamma": 0.5, **o}),
        False,
    ),
    "exponential": (lambda opt, lr, epochs, steps, **o: lr_scheduler.ExponentialLR(opt, **{"gamma": 0.95, **o}), False),
    "cosine": (
        lambda opt, lr, epochs, steps, **o: lr_scheduler.CosineAnnealingLR(opt, **{"T_max": epochs, **o}),
        False,
    ),
    "triangular": (_cyclic("triangular"), True),
    "triangular2": (_cyclic("triangular2"), True),
    "exp_range": (_cyclic("exp_range"), True),
    "one_cycle": (
        lambda opt, lr, epochs, steps, total_steps=None, **o: lr_scheduler.OneCycleLR(
            opt, **{"max_lr": lr, "total_steps": total_steps or epochs * steps, **o}
        ),
        True,
    ),
    "warmup": (_warmup, False),
    "plateau": (lambda opt, lr, epochs, steps, **o: lr_scheduler.ReduceLROnPlateau(opt, **o), False),
}
SCHEDULER_ALIASES = {"cyclic": "triangular", "onecycle": "one_cycle", "linear_warmup": "warmup"}


def make_schedule(
    name: str,
    optimizer: torch.optim.Optimizer,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    total_steps: int | None = None,
    **options: Any,
) -> Schedule:
    """Scheduler ``name`` for ``optimizer``; ``steps_per_epoch`` sizes the per-batch policies,
    ``total_steps`` (default epochs x steps_per_epoch) the length of one_cycle."""
    key = str(name).strip().lower().replace("-", "_")
    key = SCHEDULER_ALIASES.get(key, key)
    if key not in SCHEDULERS:
        raise _unknown("LR schedule", name, [*SCHEDULERS, *SCHEDULER_ALIASES])
    factory, per_batch = SCHEDULERS[key]
    if key == "one_cycle" and total_steps is not None:
        options = {"total_steps": total_steps, **options}
    try:
        scheduler = factory(optimizer, lr, epochs, max(1, steps_per_epoch), **options)
    except (TypeError, ValueError) as err:
        raise TrainingError(f"bad options for LR schedule '{key}' ({err}); options given: {sorted(options)}") from None
    return Schedule(scheduler, per_batch=per_batch, needs_metric=key == "plateau")


def schedule_for(
    config: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int, total_steps: int | None = None
) -> Schedule | None:
    """The schedule a ``TrainConfig`` asks for (``config.scheduler`` and its options) over
    ``optimizer``; None without one. What every task with a torch optimizer calls."""
    if config.scheduler is None:
        return None
    return make_schedule(
        config.scheduler,
        optimizer,
        config.lr,
        config.epochs,
        steps_per_epoch,
        total_steps=total_steps,
        **config.scheduler_options,
    )
