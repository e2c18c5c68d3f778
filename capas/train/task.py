"""The ``Task`` protocol: what the one training loop trains.

The loop (:class:`capas.train.Trainer`) knows epochs, batches, callbacks, history,
schedules and checkpoints; a task knows what one step of *its* kind of learning is. A
supervised net, an autoencoder, an RBM trained by contrastive divergence and (next) a GAN
or an encoder-decoder are tasks; adding one adds a file under ``capas/tasks/`` and never
edits the loop.

A step returns its metrics as 0-dim tensors (batch means, not ``.item()``-ed, so nothing
waits for the device); the loop averages them over the epoch weighted by batch size and
prefixes ``train_`` / ``val_``. ``"loss"`` is the metric the loop watches for NaN.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from capas.data.adapters import InMemoryAdapter
from capas.data.batch import Batch
from capas.rng import Generators
from capas.train.config import TrainConfig
from capas.train.distributed import Ranks
from capas.train.inputs import TrainingData


@dataclass
class TaskContext:
    """What the loop hands a task in ``setup``.

    Attributes:
        config: the run's options.
        device: where training runs; ``dtype``: the model's floating dtype (data follow it).
        generators: the run's named generators (shuffle, noise, dropout, sample...).
        data: the training data, normalised (splits, classes, an optional DataLoader).
        quiet: no progress output.
        ranks: this process's place in a multi-process run (``capas.train.distributed``);
            None for one process. Adapters made here keep the rank's shard.
    """

    config: TrainConfig
    device: torch.device
    dtype: torch.dtype | None
    generators: Generators
    data: TrainingData
    quiet: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    ranks: Ranks | None = None

    def on_device(self, tensor: Tensor | None) -> Tensor | None:
        """``tensor`` on the training device; floating data in the model's dtype."""
        if tensor is None:
            return None
        if tensor.is_floating_point() and self.dtype is not None:
            return tensor.to(self.device, self.dtype)
        return tensor.to(self.device)

    def make_adapter(
        self, inputs: tuple[Tensor, ...], targets: tuple[Tensor, ...] = (), batch_size: int | str | None = None
    ) -> InMemoryAdapter:
        """An in-memory adapter over tensors already moved with :meth:`on_device`."""
        size = self.config.batch_size if batch_size is None else batch_size
        if self.ranks is None:
            return InMemoryAdapter(inputs, targets, size)
        return InMemoryAdapter(inputs, targets, size, rank=self.ranks.rank, world_size=self.ranks.world_size)


class Task(abc.ABC):
    """Base class of every task: subclasses set ``kind`` and implement the steps.

    After ``setup`` a task exposes ``model`` (what run directories save),
    ``forward_module`` (the module training runs, which DDP/compile/AMP would wrap),
    ``train_adapter`` and ``val_adapter`` (None without validation data).
    """

    kind = "task"
    model: nn.Module
    train_adapter: Any = None
    val_adapter: Any = None
    engine = "autograd"  # recorded in config.json, the history echo and metrics.json
    multi_process = False  # trains in a multi-process run (wraps its forward in DDP when ctx.ranks is set)

    @abc.abstractmethod
    def setup(self, ctx: TaskContext) -> None:
        """Build optimizers, adapters and whatever the steps need (called once)."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers: ``{"main": ...}``; a GAN has two. Checkpoints save each."""

    def schedules(self) -> dict[str, Any]:
        """Named learning-rate schedules (``capas.train.optim.Schedule``), keyed like the
        optimizers they drive; the loop steps them (per batch or per epoch)."""
        return {}

    def epoch_subset(self, epoch: int) -> Tensor | None:
        """Indices of the training samples epoch ``epoch`` uses (a curriculum); None: all."""
        return None

    @abc.abstractmethod
    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        """One update; the batch's metrics (0-dim tensors, batch means)."""

    @abc.abstractmethod
    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        """Metrics of ``batch`` in eval mode, without gradients (the loop sets both)."""

    def run_epoch(self, epoch: int, batches: Any, after_step: Callable[[], None] | None) -> dict[str, Tensor] | None:
        """Optional whole-epoch fast path, used when no callback wants per-batch calls:
        train on every batch of ``batches`` (calling ``after_step()`` after each update; None
        when nothing follows an update, e.g. no per-batch LR schedule) and return the epoch's
        mean metrics; None means "use the generic per-step loop". ``batches`` draws its order
        lazily, so a task may also run the epoch its own way from the same generator."""
        return None

    @abc.abstractmethod
    def probe(self, n: int) -> Batch:
        """Up to ``n`` training samples on the device, in order: the batch diagnostics probe."""

    def first_non_finite_step(self) -> int | None:
        """The 1-based step of the last epoch whose loss was not finite, if the task kept them."""
        return None

    def epoch_metrics(self) -> dict[str, float]:
        """Extra per-epoch history entries, once per epoch (e.g. ``grad_norm/<layer>``)."""
        return {}

    def final_metrics(self) -> dict[str, Any]:
        """Metrics after training (e.g. test accuracy); written to metrics.json."""
        return {}

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """State beyond the model, optimizers and generators: (tensors, JSON)."""
        return {}, {}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:  # noqa: B027
        """Inverse of :meth:`state_dict`; a task without extra state keeps nothing."""

    def describe(self) -> dict[str, Any]:
        """JSON-able facts about the task for config.json (kind, engine...)."""
        return {"kind": self.kind, "engine": self.engine}
