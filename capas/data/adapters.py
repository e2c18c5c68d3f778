"""Data adapters: how the training loop gets its ``Batch``es.

An adapter hides where the data live and how they are cut into batches, so the loop is
the same for tensors in memory, a ``DataLoader``, and (in later issues) padded sequences
or one rank's shard of a multi-process run. Every adapter has:

- ``n_samples`` and ``steps_per_epoch`` (what schedules and progress need);
- ``epoch(epoch, generator, subset=None)``: the training batches of one epoch, in the order
  drawn from ``generator`` (the run's shuffle generator);
- ``batches(size)``: one pass in order, for evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from capas.data.batch import Batch
from capas.errors import TrainingError


def steps_per_epoch(n: int, batch_size: int | str) -> int:
    """Updates in one epoch over ``n`` samples: 1 for ``"full"``, ``ceil(n / B)`` otherwise."""
    return 1 if batch_size == "full" else math.ceil(n / int(batch_size))


#: rows gathered at a time: large enough that one gather serves hundreds of small steps,
#: small enough that the shuffled copy costs a few MB, not a second copy of the data set.
CHUNK_ROWS = 4096


class InMemoryAdapter:
    """Tensors already on the training device, shuffled with one ``randperm`` per epoch and
    gathered a chunk of :data:`CHUNK_ROWS` rows at a time; every batch is then a view (a
    contiguous slice of its chunk), so a step costs no copy.

    Args:
        inputs: ``(x, ...)``, each ``(N, ...)``.
        targets: ``(y, ...)``, each ``(N, ...)``; ``()`` for unsupervised learning.
        batch_size: B, or ``"full"`` for one batch of all N samples (batch BackProp).
    """

    def __init__(
        self, inputs: tuple[Tensor, ...], targets: tuple[Tensor, ...] = (), batch_size: int | str = 32
    ) -> None:
        self.inputs = tuple(inputs)
        self.targets = tuple(targets)
        self.batch_size = batch_size
        self.n_samples = len(self.inputs[0])
        for tensor in (*self.inputs, *self.targets):
            if len(tensor) != self.n_samples:
                raise TrainingError(f"inputs and targets differ in length: {self.n_samples} vs {len(tensor)} samples")

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.n_samples, self.batch_size)

    def epoch_steps(self, subset: Tensor | None) -> int:
        """Updates of an epoch restricted to ``subset`` (a curriculum's available samples)."""
        return steps_per_epoch(self.n_samples if subset is None else len(subset), self.batch_size)

    def epoch(self, epoch: int, generator: torch.Generator | None, subset: Tensor | None = None) -> Iterator[Batch]:
        """Shuffled batches of one epoch (``subset``: indices of the samples to use)."""
        tensors = (*self.inputs, *self.targets)
        n_in = len(self.inputs)
        if subset is not None:
            subset = subset.to(tensors[0].device)
        if self.batch_size == "full":
            chosen = tensors if subset is None else tuple(t[subset] for t in tensors)
            yield Batch(chosen[:n_in], chosen[n_in:])
            return
        n = self.n_samples if subset is None else len(subset)
        order = torch.randperm(n, generator=generator).to(tensors[0].device)  # (n,)
        if subset is not None:
            order = subset[order]
        size = int(self.batch_size)
        chunk = size * max(1, CHUNK_ROWS // size)
        for first in range(0, n, chunk):
            index = order[first : first + chunk]  # (C,)
            gathered = tuple(t.index_select(0, index) for t in tensors)  # one gather per chunk: (C, ...)
            for start in range(0, len(index), size):
                views = tuple(t[start : start + size] for t in gathered)
                yield Batch(views[:n_in], views[n_in:])

    def batches(self, size: int) -> Iterator[Batch]:
        """All samples in order, ``size`` at a time (evaluation)."""
        n_in = len(self.inputs)
        tensors = (*self.inputs, *self.targets)
        for start in range(0, self.n_samples, size):
            views = tuple(t[start : start + size] for t in tensors)
            yield Batch(views[:n_in], views[n_in:])


class LoaderAdapter:
    """A ``torch.utils.data.DataLoader``'s own batches (``(x, y)`` pairs or bare ``x``),
    moved to ``device``; floating tensors are cast to ``dtype`` (the model's)."""

    def __init__(self, loader: Any, device: torch.device, dtype: torch.dtype | None) -> None:
        self.loader = loader
        self.device = device
        self.dtype = dtype
        self.n_samples = len(loader.dataset)
        self.batch_size = getattr(loader, "batch_size", None)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def epoch_steps(self, subset: Tensor | None) -> int:
        return len(self.loader)

    def to_batch(self, item: Any) -> Batch:
        """A loader item as a Batch on the device: ``(x, y)``, ``[x, y]`` or ``x``."""
        parts = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        moved = tuple(self._move(t) for t in parts)
        return Batch(moved[:1], moved[1:2])

    def _move(self, tensor: Tensor) -> Tensor:
        if tensor.is_floating_point() and self.dtype is not None:
            return tensor.to(self.device, self.dtype, non_blocking=True)
        return tensor.to(self.device, non_blocking=True)

    def epoch(self, epoch: int, generator: torch.Generator | None, subset: Tensor | None = None) -> Iterator[Batch]:
        """The loader's batches, in its own order (its sampler decides)."""
        for item in self.loader:
            yield self.to_batch(item)

    def batches(self, size: int) -> Iterator[Batch]:
        for item in self.loader:
            yield self.to_batch(item)
