"""The compiled whole-epoch BackProp kernel for small plain MLPs (numba).

Small networks (the course's 784-30-10 at batch 10, or on-line BackProp at batch 1) are
bound by per-step overhead, not arithmetic. ``capas.fast`` runs a whole epoch of the
explicit delta rule in one compiled call, with ``torch.optim``'s update rules, so that the
weights after an epoch are those of the ``backprop`` engine (to 1e-5 in float32, 1e-10 in
float64). ``SupervisedTask`` picks it with ``engine="auto"`` when it applies
(:func:`unsupported_reason` is None) and ``engine="fast"`` forces it.

- ``capas.fast.kernel``: the numba kernel (``train_epoch``), one compilation per dtype.
- ``capas.fast.stepper``: ``FastStepper`` around ``BackpropStepper``, and the applicability test.
- ``capas.fast.threads``: how many torch threads a run gets, by its work per step.
"""

from capas.fast.stepper import MAX_BATCH, FastStepper, unsupported_reason
from capas.fast.threads import choose_threads, torch_threads

__all__ = ["MAX_BATCH", "FastStepper", "choose_threads", "torch_threads", "unsupported_reason"]
