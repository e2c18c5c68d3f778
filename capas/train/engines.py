"""Which stepper trains the model: the explicit BackProp engine or autograd.

``engine="auto"`` takes ``capas.backprop.BackpropStepper`` when ``capas.backprop`` is
importable, ``capas.backprop.supports(model, config)`` returns None (it declines mixed
precision, class weights, frozen parameters, models that are not plain MLPs...), the loss
has no class weights and the optimizer steps without a closure (L-BFGS re-evaluates the
loss within a step, which only the autograd stepper does); otherwise ``AutogradStepper``,
and the stepper's ``declined`` says why the explicit engine was not taken. The stepper gets the trainer's
``Loss`` (so target codes match) and the penalty / clipping options. ``engine="backprop"``
on an unsupported run is a TrainingError carrying the reason.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from capas.errors import TrainingError
from capas.objectives import Loss
from capas.train.config import TrainConfig
from capas.train.optim import needs_closure
from capas.train.steppers import AutogradStepper


def backprop_unsupported(
    model: nn.Module, config: TrainConfig, loss: Loss, optimizer: torch.optim.Optimizer | None = None
) -> str | None:
    """Why the explicit engine cannot run this training (None: it can)."""
    try:
        import capas.backprop as backprop
    except ImportError as err:
        return f"capas.backprop is not available ({err})"
    if loss.class_weights is not None:
        return "class weights are applied by the autograd loss"
    if optimizer is not None and needs_closure(optimizer):
        return (
            f"{type(optimizer).__name__} re-evaluates the loss several times a step (optimizer.step(closure)), "
            "which the autograd stepper does"
        )
    return backprop.supports(model, config.model_copy(update={"loss": loss.name}))


def make_stepper(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Loss,
    config: TrainConfig,
    *,
    forward: nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Any, str]:
    """(stepper, engine name) for ``config.engine``.

    ``forward`` is the module an autograd step runs (the task's training module; default
    ``model``); ``generator`` draws the explicit engine's dropout masks."""
    reason = None if config.engine == "autograd" else backprop_unsupported(model, config, loss, optimizer)
    if config.engine == "backprop" and reason is not None:
        raise TrainingError(f"engine='backprop' cannot train this run: {reason}; use engine='autograd' or 'auto'")
    options = dict(
        l1=config.l1,
        l2=config.l2,
        regularize_bias=config.regularize_bias,
        clip_norm=config.clip_norm,
        clip_value=config.clip_value,
        grad_norms=config.grad_norms,
    )
    if config.engine != "autograd" and reason is None:
        from capas.backprop import BackpropStepper

        return BackpropStepper(model, optimizer, loss, generator=generator, **options), "backprop"
    stepper = AutogradStepper(model, optimizer, loss, forward=forward, amp=config.amp, **options)
    stepper.declined = reason  # why engine="auto" did not take the explicit engine (None: not asked)
    return stepper, "autograd"
