"""``AutoencoderTask``: train an ``Autoencoder`` (undercomplete, denoising, sparse; tied or
untied decoder) on the loop, from inputs alone.

A step minimises :meth:`capas.models.autoencoder.Autoencoder.losses`: the mean squared
error between the clean input and the reconstruction of its corrupted copy (masking or
Gaussian noise drawn from the run's ``noise`` generator), plus the sparsity penalty, with
the ``torch.optim`` optimizer the config names (``optimizer``, ``lr``, ``momentum``,
``optimizer_options``), an optional LR schedule, ``l2`` as weight decay (biases only with
``regularize_bias``) and gradient clipping.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from capas.data.batch import Batch
from capas.errors import TrainingError
from capas.models.autoencoder import Autoencoder
from capas.tasks.options import SPARSITY_PENALTY, SUPERVISED_ONLY, refuse_closure_optimizers, refuse_unused
from capas.train.optim import make_optimizer, schedule_for, weight_decay_groups
from capas.train.task import Task, TaskContext

#: TrainConfig fields of supervised learning an autoencoder has no use for
UNUSED = (*SUPERVISED_ONLY, *SPARSITY_PENALTY)


class AutoencoderTask(Task):
    """Reconstruction training of ``autoencoder`` on inputs (N, *input_shape) (or (N, ...)
    with as many features per sample): a tensor, a Dataset (its targets are not used) or a
    DataLoader.

    History: ``train_loss`` (the objective), ``train_reconstruction_error`` (its squared
    error term: for a denoising autoencoder, of reconstructions of corrupted inputs), and
    with validation data ``val_loss`` and ``val_reconstruction_error`` on clean inputs.
    """

    kind = "autoencoder"

    def __init__(self, autoencoder: Autoencoder) -> None:
        if not isinstance(autoencoder, Autoencoder):
            raise TrainingError(f"AutoencoderTask trains a capas Autoencoder, got {type(autoencoder).__name__}")
        self.model = self.forward_module = autoencoder

    def setup(self, ctx: TaskContext) -> None:
        """Inputs on the device, dropout and corruption generators, optimizer and schedule."""
        self.ctx = ctx
        config, data, model = ctx.config, ctx.data, self.model
        refuse_unused(config, "autoencoder", UNUSED)
        if data.loader is not None:
            from capas.data.adapters import LoaderAdapter

            self.train_adapter = LoaderAdapter(data.loader, ctx.device, ctx.dtype)
            self.x_train = None
            self.val_adapter = (
                None if data.val_loader is None else LoaderAdapter(data.val_loader, ctx.device, ctx.dtype)
            )
        else:
            self.x_train = model.check_data(ctx.on_device(data.x_train))  # (N, *input_shape)
            x_val = None if data.x_val is None else model.check_data(ctx.on_device(data.x_val))
            self.train_adapter = ctx.make_adapter((self.x_train,))
            self.val_adapter = None if x_val is None else ctx.make_adapter((x_val,))
        for module in model.modules():
            if isinstance(module, nn.Dropout) and hasattr(module, "generator"):
                module.generator = ctx.generators.dropout
        self.params = [p for p in model.parameters() if p.requires_grad]
        groups = weight_decay_groups(self.params, config.l2, config.regularize_bias)
        self.optimizer = make_optimizer(
            config.optimizer, groups, config.lr, config.momentum, **config.optimizer_options
        )
        self.schedule = schedule_for(config, self.optimizer, self.train_adapter.steps_per_epoch)
        refuse_closure_optimizers([self.optimizer], "autoencoder")

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": self.optimizer}

    def schedules(self) -> dict[str, Any]:
        return {} if self.schedule is None else {"main": self.schedule}

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        config = self.ctx.config
        loss, error = self.model.losses(batch.x, self.ctx.generators.noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, config.clip_norm)
        if config.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.params, config.clip_value)
        self.optimizer.step()
        return {"loss": loss.detach(), "reconstruction_error": error.detach()}

    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        """Objective and reconstruction error of clean inputs (no corruption)."""
        model, x = self.model, batch.x
        code = model.encode(x)
        error = F.mse_loss(model.decode(code), x)
        return {"loss": error + model.sparsity_penalty(code), "reconstruction_error": error}

    def final_metrics(self) -> dict[str, Any]:
        """``test_loss`` and ``test_reconstruction_error`` on the clean test inputs (none
        without a test split, or from a DataLoader, which has none)."""
        data = self.ctx.data
        if data.loader is not None or data.x_test is None or len(data.x_test) == 0:
            return {}
        return test_metrics(self.model, self.model.check_data(self.ctx.on_device(data.x_test)))

    def probe(self, n: int) -> Batch:
        if self.x_train is not None:
            return Batch((self.x_train[:n],))
        return Batch((self.train_adapter.to_batch(next(iter(self.ctx.data.loader))).x[:n],))


@torch.no_grad()
def test_metrics(model: Autoencoder, x: Tensor, batch_size: int = 1024) -> dict[str, float]:
    """``test_loss`` (reconstruction error plus the sparsity penalty) and
    ``test_reconstruction_error`` (mean squared error) of clean inputs x (N, *input_shape),
    in eval mode: what ``fit`` writes to metrics.json and ``capas evaluate`` recomputes."""
    from capas.models.modes import eval_mode

    totals = {"test_loss": 0.0, "test_reconstruction_error": 0.0}
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size]
            code = model.encode(chunk)
            error = F.mse_loss(model.decode(code), chunk)
            totals["test_reconstruction_error"] += float(error) * len(chunk)
            totals["test_loss"] += float(error + model.sparsity_penalty(code)) * len(chunk)
    return {name: value / len(x) for name, value in totals.items()}
