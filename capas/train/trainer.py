"""``Trainer``: one loop for every model, in skorch's shape ``fit -> fit_loop -> run_epoch -> train_step``.

The batch size picks the course's BackProp variant (file 001, "Variantes de BackProp"):
``"full"`` is batch BackProp (one update per epoch over all N samples), ``1 < B < N``
mini-batch (N/B updates per epoch), ``1`` incremental (one random sample per update).
In-memory data is shuffled with one ``torch.randperm`` per epoch (a seeded generator) and
gathered once, so each step takes a contiguous slice; nothing in the step loop waits for
the device (losses stay tensors, ``.item()`` once per epoch).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from capas.errors import TrainingError
from capas.models.modes import eval_mode
from capas.train import rundir
from capas.train.callbacks import Callback, ProgressBar
from capas.train.config import TrainConfig
from capas.train.history import History
from capas.train.inputs import as_training_data
from capas.train.regularization import add_input_noise, apply_max_norm
from capas.train.setup import TrainerSetup

#: Per-layer gradient norms are averaged over at most about this many evenly spaced steps of
#: an epoch (every step when an epoch has fewer): a norm reads every weight once, which costs
#: ~10% of a step for wide layers, while a few dozen steps already give a stable mean.
GRAD_NORM_SAMPLES = 64


class Trainer(TrainerSetup):
    """Trains ``model`` under ``config``; see :func:`capas.fit` for the options."""

    def __init__(self, model: nn.Module, config: TrainConfig, *, callbacks: tuple[Callback, ...] | list = (),
                 quiet: bool = False, out: str | None = None, curriculum_scores: Tensor | None = None,
                 curriculum_reference: nn.Module | None = None, command: list[str] | None = None) -> None:
        self.model = model
        self.config = config
        self.user_callbacks = list(callbacks)
        self.quiet = quiet
        self.run_dir = None if out is None else Path(out)
        self.curriculum_scores = curriculum_scores
        self.curriculum_reference = curriculum_reference
        self.command = command
        self.history = History()
        self.start_epoch = 0
        self.stop_training = False
        self.stop_reason: str | None = None

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, data: Any, resume: rundir.Run | None = None) -> Trainer:
        """Set everything up (or restore a checkpoint), run the epochs, evaluate on test."""
        self.setup(as_training_data(data, seed=self.config.seed))
        if resume is not None:
            self.restore(resume)
        elif self.run_dir is not None:
            self.write_run_start()
        try:
            self.notify("on_fit_begin")
            self.fit_loop()
            self.notify("on_fit_end")
        finally:
            for callback in self.callbacks:
                if isinstance(callback, ProgressBar):
                    callback.close()
        self.test_metrics = self.evaluate_test()
        if self.run_dir is not None:
            self.write_run_end()
        return self

    def fit_loop(self) -> None:
        for epoch in range(self.start_epoch + 1, self.config.epochs + 1):
            self.notify("on_epoch_begin", epoch)
            started = time.perf_counter()
            record = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"], **self.run_epoch(epoch)}
            record.update(self.validate())
            self.step_schedule_per_epoch(record)
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            self.notify("on_epoch_end", epoch, record)
            finished = self.stop_training or epoch == self.config.epochs
            if self.run_dir is not None and (finished or epoch % self.config.checkpoint_every == 0):
                self.save_checkpoint(epoch)
            if self.stop_training:
                break

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """All steps of one epoch; returns the epoch's train loss/accuracy and gradient norms."""
        self.model.train()
        losses, sizes, correct = [], [], []
        count_correct = self.data.task == "classification" and hasattr(self.stepper, "last_output")
        stride = self.grad_norm_stride()
        for step, (xb, yb) in enumerate(self.batches(epoch)):
            self.stepper.measure_norms = step % stride == 0
            loss = self.train_step(xb, yb)
            losses.append(loss)
            sizes.append(len(xb))
            if count_correct:
                correct.append((self.loss.predictions(self.stepper.last_output) == yb).sum())
            if self.batch_callbacks:  # skip the per-step call when no callback overrides the hook
                self.notify("on_batch_end", step, loss)
        per_step = torch.stack(losses).to("cpu", torch.float64)  # (steps,): the epoch's one sync
        weights = torch.tensor(sizes, dtype=torch.float64)  # (steps,)
        train_loss = float((per_step * weights).sum() / weights.sum())
        if not math.isfinite(train_loss):
            self.raise_non_finite(epoch, per_step)
        record: dict[str, Any] = {"train_loss": train_loss}
        if self.data.task == "classification":
            if count_correct:
                record["train_accuracy"] = int(torch.stack(correct).sum()) / sum(sizes)
            else:
                record["train_accuracy"] = self.evaluate(self.x_train, self.y_train)[1]
        norms = self.stepper.layer_grad_norms() if self.config.grad_norms else {}
        if norms:
            values = torch.stack([v.float() for v in norms.values()]).tolist()
            record.update({f"grad_norm/{name}": value for name, value in zip(norms, values)})
        return record

    def grad_norm_stride(self) -> int:
        """Measure gradient norms every ``stride``-th step (see ``GRAD_NORM_SAMPLES``)."""
        return max(1, self.steps_per_epoch // GRAD_NORM_SAMPLES)

    def train_step(self, xb: Tensor, yb: Tensor) -> Tensor:
        """Input noise, one stepper update, the max-norm constraint, a per-batch LR step."""
        if self.config.input_noise:
            xb = add_input_noise(xb, self.config.input_noise, self.noise_generator)
        loss = self.stepper.step(xb, yb)
        if self.config.max_norm is not None:
            apply_max_norm(self.constrained, self.config.max_norm)
        if self.schedule is not None and self.schedule.per_batch:
            self.schedule.scheduler.step()
        return loss

    def batches(self, epoch: int):
        """(xb, yb) pairs of one epoch: a DataLoader's, the whole set, or slices of a permutation."""
        if self.data.loader is not None:
            for xb, yb in self.data.loader:
                yield self.on_device(xb), self.on_device(yb)
            return
        x, y = self.x_train, self.y_train
        subset = None if self.curriculum is None else self.curriculum.available(epoch - 1).to(self.device)
        n = len(x) if subset is None else len(subset)
        if self.config.batch_size == "full":
            yield (x, y) if subset is None else (x[subset], y[subset])
            return
        order = torch.randperm(n, generator=self.shuffle_generator).to(self.device)  # (n,)
        if subset is not None:
            order = subset[order]
        xs, ys = x[order], y[order]  # one gather per epoch: (n, *shape), (n, ...)
        size = int(self.config.batch_size)
        for start in range(0, n, size):
            yield xs[start : start + size], ys[start : start + size]

    def raise_non_finite(self, epoch: int, per_step: Tensor) -> None:
        step = int((~torch.isfinite(per_step)).nonzero()[0, 0]) + 1
        value = per_step[step - 1].item()
        raise TrainingError(
            f"the training loss became {value} at epoch {epoch}, step {step}; training stopped. "
            f"Lower the learning rate (now {self.config.lr:g}), clip gradients (clip_norm=1.0) "
            "or standardise the inputs"
        )

    # ---- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[float, float | None]:
        """(loss, accuracy or None) of the model on ``x, y`` in eval mode."""
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        size = self.config.eval_batch_size
        with eval_mode(self.model):
            for start in range(0, len(x), size):
                xb, yb = x[start : start + size], y[start : start + size]
                out = self.eval_forward(xb)  # (B, K)
                total += self.eval_loss(out, yb) * len(xb)
                if self.data.task == "classification":
                    correct += (self.eval_loss.predictions(out) == yb).sum()
        accuracy = int(correct) / len(x) if self.data.task == "classification" else None
        return float(total) / len(x), accuracy

    def validate(self) -> dict[str, Any]:
        if self.x_val is None:
            return {}
        loss, accuracy = self.evaluate(self.x_val, self.y_val)
        return {"val_loss": loss} | ({} if accuracy is None else {"val_accuracy": accuracy})

    def evaluate_test(self) -> dict[str, Any]:
        """Test loss/accuracy, per-class scores and confusion matrix (or regression errors)."""
        if self.data.x_test is None:
            return {}
        from capas.train.evaluation import evaluate_model

        x, y = self.on_device(self.data.x_test), self.on_device(self.data.y_test)
        return evaluate_model(self.model, x, y, self.eval_loss, self.config.eval_batch_size)

    def step_schedule_per_epoch(self, record: dict[str, Any]) -> None:
        if self.schedule is None or self.schedule.per_batch:
            return
        if self.schedule.needs_metric:
            key = self.config.monitor if self.config.monitor in record else "train_loss"
            self.schedule.scheduler.step(record[key])
        else:
            self.schedule.scheduler.step()

    def notify(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

