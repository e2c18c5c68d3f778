"""``eval_mode``: run a module in eval mode and give it back in the mode it was in.

Probes, predictions, summaries and evaluations all need dropout off and batch norm on its
running statistics, without changing whether the caller was training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` inside the block; its previous training mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
