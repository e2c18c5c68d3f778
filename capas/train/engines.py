"""Which stepper trains the model: the explicit BackProp engine or autograd.

``engine="auto"`` takes ``capas.backprop.BackpropStepper`` when ``capas.backprop`` is
importable, ``capas.backprop.supports(model, config)`` returns None and the run uses no
option that engine lacks (class weights, non-0/1 target codes, mixed precision, biases in
the penalty); otherwise ``AutogradStepper``. ``engine="backprop"`` on an unsupported run is
a TrainingError carrying the reason.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from capas.errors import TrainingError
from capas.train.config import TrainConfig
from capas.train.losses import Loss
from capas.train.steppers import AutogradStepper

# capas.train loss name -> capas.backprop.outputs name
BACKPROP_LOSS_NAMES = {"mse_half_sum": "sse"}


def backprop_unsupported(model: nn.Module, config: TrainConfig, loss: Loss) -> str | None:
    """Why the explicit engine cannot run this training (None: it can)."""
    try:
        import capas.backprop as backprop
    except ImportError as err:
        return f"capas.backprop is not available ({err})"
    if loss.class_weights is not None:
        return "class weights are not supported by the explicit engine"
    if config.target_encoding != "onehot":
        return f"target_encoding '{config.target_encoding}' is not supported by the explicit engine"
    if config.amp:
        return "mixed precision (amp) needs autograd"
    if config.regularize_bias:
        return "penalising biases is not supported by the explicit engine"
    view = SimpleNamespace(**{**config.to_json(), "loss": BACKPROP_LOSS_NAMES.get(loss.name, loss.name)})
    return backprop.supports(model, view)


def make_stepper(model: nn.Module, optimizer: torch.optim.Optimizer, loss: Loss, config: TrainConfig) -> tuple[Any, str]:
    """(stepper, engine name) for ``config.engine``."""
    reason = None if config.engine == "autograd" else backprop_unsupported(model, config, loss)
    if config.engine == "backprop" and reason is not None:
        raise TrainingError(f"engine='backprop' cannot train this run: {reason}; use engine='autograd' or 'auto'")
    if config.engine != "autograd" and reason is None:
        from capas.backprop import BackpropStepper

        stepper = BackpropStepper(
            model, optimizer, BACKPROP_LOSS_NAMES.get(loss.name, loss.name),
            l1=config.l1, l2=config.l2, clip_norm=config.clip_norm, clip_value=config.clip_value,
        )
        return stepper, "backprop"
    stepper = AutogradStepper(
        model, optimizer, loss, l1=config.l1, l2=config.l2, regularize_bias=config.regularize_bias,
        clip_norm=config.clip_norm, clip_value=config.clip_value, amp=config.amp, grad_norms=config.grad_norms,
    )
    return stepper, "autograd"
