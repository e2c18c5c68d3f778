"""The explicit BackProp (delta-rule) engine of the course, and the fast path for MLPs.

For small multilayer perceptrons autograd's per-step overhead dwarfs the arithmetic (a
784-30-10 net at batch 10 does ~10 us of maths per step); this engine runs the slides'
equations by hand, vectorised, on buffers allocated once, and trains such nets several
times faster with the same weights. ``engine="auto"`` in the trainer picks it whenever
``supports(model, config)`` is None.

- ``capas.backprop.engine``: forward/backward of the delta rule (``DeltaRuleNet``).
- ``capas.backprop.outputs``: output errors and losses (``OUTPUT_RULES``).
- ``capas.backprop.stepper``: updates (batch, mini-batch, incremental, on-line, momentum,
  any ``torch.optim`` optimizer) behind the trainer's stepper interface.
"""

from capas.backprop.engine import DeltaRuleNet, LayerPlan, plan_layers
from capas.backprop.outputs import OUTPUT_RULES, OutputRule
from capas.backprop.stepper import BackpropStepper, supports, unsupported_reason

__all__ = [
    "OUTPUT_RULES",
    "BackpropStepper",
    "DeltaRuleNet",
    "LayerPlan",
    "OutputRule",
    "plan_layers",
    "supports",
    "unsupported_reason",
]
