"""Objectives: the loss registry (with what each loss implies), target codes and penalties.

Below both engines and the models: ``Network`` (output activation, decision rule), the
autograd steppers, the BackProp engine's output rules, evaluation and prediction all read
these tables, so they cannot disagree.

- ``losses.py``: ``LOSSES`` (one ``LossInfo`` per loss), ``ALIASES``, ``canonical_loss``,
  ``output_activation``, and ``Loss`` (a loss bound to a task: target codes, class weights).
- ``targets.py``: ``TARGET_CODES`` and ``TargetCoder`` (one-hot, tanh +-0.9, sigmoid 0.1/0.9).
- ``penalties.py``: the L1/L2 penalty, its gradient, and the max-norm constraint.
"""

from capas.objectives.losses import ALIASES, LOSSES, Loss, LossInfo, canonical_loss, loss_info, output_activation
from capas.objectives.penalties import add_penalty_gradients, apply_max_norm, penalized_parameters, penalty
from capas.objectives.targets import TARGET_CODES, TargetCoder

__all__ = [
    "ALIASES",
    "LOSSES",
    "TARGET_CODES",
    "Loss",
    "LossInfo",
    "TargetCoder",
    "add_penalty_gradients",
    "apply_max_norm",
    "canonical_loss",
    "loss_info",
    "output_activation",
    "penalized_parameters",
    "penalty",
]
