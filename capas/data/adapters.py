"""Data adapters: how the training loop gets its ``Batch``es.

An adapter hides where the data live and how they are cut into batches, so the loop is
the same for tensors in memory, a ``DataLoader``, and (in later issues) padded sequences.
In a multi-process run (``capas.train.distributed``) the adapter of rank r of W keeps its
shard of every epoch: the in-memory adapter ``order[r::W]`` of the permutation all ranks
draw alike, a DataLoader a ``DistributedSampler`` (``set_epoch`` each epoch). Every adapter has:

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


def shard(order: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s share ``order[rank::world_size]`` of an epoch's order, the order first
    padded with its own head to a multiple of ``world_size`` (as ``DistributedSampler``
    does): every rank gets ``ceil(n / W)`` samples, so all take the same number of steps
    (DDP's all-reduce needs each rank at every step), and step t of the W ranks together
    covers ``order[t W B : (t + 1) W B]``, the batch of W B one process would take."""
    if world_size == 1:
        return order
    padding = -len(order) % world_size
    if padding:
        order = torch.cat([order, order[:padding]])
    return order[rank::world_size]


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
        rank, world_size: this process's shard of a multi-process run (:func:`shard`);
            ``batches`` (evaluation) always passes over every sample.
    """

    def __init__(
        self,
        inputs: tuple[Tensor, ...],
        targets: tuple[Tensor, ...] = (),
        batch_size: int | str = 32,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.inputs = tuple(inputs)
        self.targets = tuple(targets)
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.n_samples = len(self.inputs[0])
        for tensor in (*self.inputs, *self.targets):
            if len(tensor) != self.n_samples:
                raise TrainingError(f"inputs and targets differ in length: {self.n_samples} vs {len(tensor)} samples")

    @property
    def steps_per_epoch(self) -> int:
        return self.epoch_steps(None)

    def epoch_steps(self, subset: Tensor | None) -> int:
        """Updates of an epoch restricted to ``subset`` (a curriculum's available samples)."""
        n = self.n_samples if subset is None else len(subset)
        return steps_per_epoch(math.ceil(n / self.world_size), self.batch_size)

    def epoch(self, epoch: int, generator: torch.Generator | None, subset: Tensor | None = None) -> Iterator[Batch]:
        """Shuffled batches of one epoch (``subset``: indices of the samples to use)."""
        tensors = (*self.inputs, *self.targets)
        n_in = len(self.inputs)
        if subset is not None:
            subset = subset.to(tensors[0].device)
        if self.batch_size == "full":
            if self.world_size > 1:  # each rank's share of the one batch
                every = torch.arange(self.n_samples, device=tensors[0].device) if subset is None else subset
                subset = shard(every, self.rank, self.world_size)
            chosen = tensors if subset is None else tuple(t[subset] for t in tensors)
            yield Batch(chosen[:n_in], chosen[n_in:])
            return
        n = self.n_samples if subset is None else len(subset)
        order = torch.randperm(n, generator=generator).to(tensors[0].device)  # (n,)
        if subset is not None:
            order = subset[order]
        order = shard(order, self.rank, self.world_size)  # (ceil(n / W),): drawn alike on every rank
        n = len(order)
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
    """A ``torch.utils.data.DataLoader``'s own batches, moved to ``device`` without blocking;
    floating tensors are cast to ``dtype`` (the model's). An item is ``x``, ``(x, y)``,
    ``(x, y, mask)`` or a dict with keys ``x`` and optionally ``y`` and ``mask``: ``mask``
    ``(B, T)`` marks the real steps of right-padded sequences (see :func:`loader_batch`).

    For a CUDA device, or for rank ``rank`` of ``world_size`` > 1, the loader is rebuilt
    over the same dataset (:func:`distributed_loader`): batches in pinned memory, so that
    the copy to the GPU overlaps the step, and each rank reading its ``DistributedSampler``
    shard, reshuffled each epoch by ``set_epoch`` (from ``seed`` + epoch, alike on all ranks).
    """

    def __init__(
        self,
        loader: Any,
        device: torch.device,
        dtype: torch.dtype | None,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.n_samples = len(loader.dataset)
        self.batch_size = getattr(loader, "batch_size", None)
        pin = device.type == "cuda" and not loader.pin_memory
        self.loader = distributed_loader(loader, rank, world_size, seed, pin) if world_size > 1 or pin else loader

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def epoch_steps(self, subset: Tensor | None) -> int:
        return len(self.loader)

    def to_batch(self, item: Any) -> Batch:
        """A loader item as a Batch on the device."""
        batch = loader_batch(item)
        mask = None if batch.mask is None else batch.mask.to(self.device, non_blocking=True)
        return Batch(tuple(map(self._move, batch.inputs)), tuple(map(self._move, batch.targets)), mask)

    def _move(self, tensor: Tensor) -> Tensor:
        if tensor.is_floating_point() and self.dtype is not None:
            return tensor.to(self.device, self.dtype, non_blocking=True)
        return tensor.to(self.device, non_blocking=True)

    def epoch(self, epoch: int, generator: torch.Generator | None, subset: Tensor | None = None) -> Iterator[Batch]:
        """The loader's batches, in its own order (its sampler decides; a distributed one
        draws epoch ``epoch``'s permutation)."""
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for item in self.loader:
            yield self.to_batch(item)

    def batches(self, size: int) -> Iterator[Batch]:
        for item in self.loader:
            yield self.to_batch(item)


LOADER_ITEM = "a DataLoader item must be x, (x, y), (x, y, mask) or a dict with keys x, y, mask"


def loader_batch(item: Any) -> Batch:
    """A DataLoader item as a Batch (on the loader's device): ``x``, ``(x, y)``,
    ``(x, y, mask)`` or ``{"x": ..., "y": ..., "mask": ...}`` (y and mask optional). The mask
    (B, T), True (or non-zero) at real steps, must match x's first two axes; anything else
    is a one-line TrainingError, never a silently dropped tensor."""
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"x", "y", "mask"})
        if unknown or "x" not in item:
            raise TrainingError(f"{LOADER_ITEM}; this one has keys {sorted(item)}")
        parts = (item["x"], item.get("y"), item.get("mask"))
    else:
        parts = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        if len(parts) > 3:
            raise TrainingError(f"{LOADER_ITEM}; this one holds {len(parts)} tensors")
        parts = (*parts, None, None)[:3]
    x, y, mask = parts
    if not isinstance(x, Tensor):
        raise TrainingError(f"{LOADER_ITEM} of tensors; its x is a {type(x).__name__}")
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dim() != 2 or tuple(mask.shape) != tuple(x.shape[:2]):
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise TrainingError(
                f"a DataLoader's mask must be (B, T) = {tuple(x.shape[:2])}, True at real steps, for x of shape "
                f"{tuple(x.shape)}; got {shape}"
            )
        mask = mask if mask.dtype == torch.bool else mask != 0
    return Batch((x,), () if y is None else (y,), mask)


def distributed_loader(loader: Any, rank: int, world_size: int, seed: int, pin_memory: bool) -> Any:
    """``loader`` rebuilt over the same dataset, batch size, workers and collate function:
    with ``world_size`` > 1 its sampler becomes a ``DistributedSampler`` (rank ``rank``'s
    padded shard, shuffled when the loader shuffled), and its batches are pinned when asked."""
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler

    if loader.batch_size is None:
        raise TrainingError(
            "a DataLoader with its own batch_sampler cannot be sharded across processes; "
            "give it a batch_size, or train on one process"
        )
    sampler = loader.sampler
    if world_size > 1:
        shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = DistributedSampler(
            loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=pin_memory or loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers,
    )
