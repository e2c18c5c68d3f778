"""Callbacks: objects with no-op hooks that the trainer calls through one ``notify``.

Hooks: ``on_fit_begin(trainer)``, ``on_epoch_begin(trainer, epoch)``,
``on_batch_end(trainer, step, loss)`` (``loss`` a 0-dim tensor: calling ``.item()`` on it
synchronises with the device), ``on_epoch_end(trainer, epoch, record)``,
``on_fit_end(trainer)``; epochs are numbered from 1, steps within an epoch from 0.
Setting ``trainer.stop_training = True`` ends the fit after the epoch. A callback whose
state must survive ``--resume`` implements ``state_dict()`` -> ``(tensors, json)`` and
``load_state_dict(tensors, json)``.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from capas.train.loop import Trainer


class Callback:
    """Base class: every hook does nothing.

    A callback that defines ``on_batch_end`` makes the loop run every step itself (no
    whole-epoch fast path, no compiled kernel), unless it sets ``needs_batches = False``:
    then its per-batch calls are a nicety (a progress bar's step count) that the loop makes
    when it steps anyway and skips when the task runs a whole epoch at once.
    """

    name = "callback"
    needs_batches = True

    def on_fit_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, step: int, loss: Tensor) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """What must survive ``--resume``: (tensors, JSON); None for a stateless callback."""
        return None

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best`` the weights of the best epoch are put back at the end of the fit
    (kept as an on-device copy, updated only when the monitored value improves).
    """

    name = "early_stopping"

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = True,
        mode: str | None = None,
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.mode = mode or ("max" if "acc" in monitor or "f1" in monitor else "min")
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        value = record.get(self.monitor)
        if value is None:
            from capas.errors import TrainingError

            raise TrainingError(
                f"early stopping monitors '{self.monitor}' but the history has only {sorted(record)}; "
                "give a validation split or monitor 'train_loss'"
            )
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
                trainer.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                    f"(best {self.best:.6g} at epoch {self.best_epoch})"
                )

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {f"best/{k}": v for k, v in (self.best_weights or {}).items()}
        best = self.best if math.isfinite(self.best) else None
        return tensors, {"best": best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
        if record.get("best") is not None:
            self.best = record["best"]
        self.best_epoch, self.wait = record.get("best_epoch"), record.get("wait", 0)
        best = {k.removeprefix("best/"): v for k, v in tensors.items() if k.startswith("best/")}
        self.best_weights = best or None


class Convergence(Callback):
    """The slides' convergence conditions beyond max epochs: a target training loss, or a
    relative improvement of the training loss smaller than ``min_improvement``."""

    name = "convergence"

    def __init__(self, target_loss: float | None = None, min_improvement: float | None = None) -> None:
        self.target_loss = target_loss
        self.min_improvement = min_improvement
        self.previous: float | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        loss = record["train_loss"]
        if self.target_loss is not None and loss <= self.target_loss:
            trainer.stop_training = True
            trainer.stop_reason = f"converged: train_loss {loss:.6g} <= target {self.target_loss:g}"
        elif self.min_improvement is not None and self.previous is not None:
            gain = (self.previous - loss) / max(abs(self.previous), 1e-12)
            if gain < self.min_improvement:
                trainer.stop_training = True
                trainer.stop_reason = f"converged: train_loss improved by {gain:.2e} < {self.min_improvement:g}"
        self.previous = loss

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return {}, {"previous": self.previous}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
        self.previous = record.get("previous")


def run_line(trainer: Trainer) -> str:
    """What the run's defaults resolved to, in one line: model, optimizer, learning rate,
    batch size, epochs, loss, engine and device (read after the task's setup, which chose
    the engine). Printed first by the progress callbacks, so a user sees what ran."""
    config, task = trainer.config, trainer.task
    facts = task.describe()
    engine = str(facts.get("engine", trainer.engine))
    declined = getattr(getattr(task, "stepper", None), "declined", None)
    if config.engine == "auto" and declined:
        engine += f" (not the explicit engine: {declined})"
    rule = config.optimizer if trainer.optimizers else f"{engine} updates"
    parts = [
        f"{rule} lr {trainer.current_lr():g}",
        f"batch {config.batch_size}",
        f"{config.epochs} epochs" + (f" (resumed after epoch {trainer.start_epoch})" if trainer.start_epoch else ""),
    ]
    if facts.get("loss"):
        parts.append(f"loss {facts['loss']}")
    threads = getattr(trainer, "threads", None)
    parts += [
        f"engine {engine}",
        f"device {trainer.device}" + (f" ({threads} thread{'s' * (threads != 1)})" if threads else ""),
    ]
    return f"training {describe_model(trainer.model)}: " + ", ".join(parts)


def describe_model(model: Any) -> str:
    """A capas network's spec, else the module's class (and its one-line ``extra_repr``),
    with the number of parameters."""
    options = getattr(model, "options", None)
    if isinstance(options, dict) and isinstance(options.get("spec"), str):
        name = options["spec"]
    else:
        extra = model.extra_repr() if hasattr(model, "extra_repr") else ""
        name = type(model).__name__ + (f"({extra})" if extra and "\n" not in extra and len(extra) < 80 else "")
    count = sum(p.numel() for p in model.parameters())
    return f"{name} ({count:,} parameters)"


def epoch_line(trainer: Trainer, epoch: int, record: dict[str, Any]) -> str:
    """``epoch 3/30  train_loss 0.1234  val_accuracy 0.9312  0.41 s``: the epoch's training
    and validation metrics (not the per-layer gradient norms) and its duration."""
    shown = [
        f"{key} {value:.4g}"
        for key, value in record.items()
        if key.startswith(("train_", "val_")) and isinstance(value, (int, float))
    ]
    return "  ".join([f"epoch {epoch}/{trainer.config.epochs}", *shown, f"{record.get('seconds', 0.0):.2f} s"])


class ProgressLines(Callback):
    """Progress where stderr is not a terminal (pipes, CI, log files): the run line first,
    then one line per epoch, each flushed as it is written. Reads only the epoch's record
    (already on the host), so it never synchronises with the device."""

    name = "progress"

    def on_fit_begin(self, trainer: Trainer) -> None:
        print(run_line(trainer), file=sys.stderr, flush=True)

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        print(epoch_line(trainer, epoch, record), file=sys.stderr, flush=True)


class ProgressBar(Callback):
    """A rich progress bar on stderr, after the run line: epochs, steps within the epoch,
    last losses.

    The step bar advances every ~2% of an epoch (not every step), and losses are shown only
    once per epoch, so the bar never forces a device synchronisation inside the loop. It does
    not need per-batch calls: when the task runs a whole epoch at once (the compiled kernel),
    the step bar jumps to the end of the epoch.
    """

    name = "progress"
    needs_batches = False

    def __init__(self) -> None:
        self.progress: Any = None

    def on_fit_begin(self, trainer: Trainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        console.print(run_line(trainer), markup=False, highlight=False, soft_wrap=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
        )
        self.progress.start()
        self.epochs = self.progress.add_task(
            "epochs", total=trainer.config.epochs, completed=trainer.start_epoch, info=""
        )
        self.steps = self.progress.add_task("steps", total=trainer.steps_per_epoch, info="")
        self.every = max(1, trainer.steps_per_epoch // 50)

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self.progress.reset(self.steps, total=trainer.steps_per_epoch)

    def on_batch_end(self, trainer: Trainer, step: int, loss: Tensor) -> None:
        if (step + 1) % self.every == 0:
            self.progress.update(self.steps, completed=step + 1)

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        shown = [
            f"{k} {record[k]:.4f}" for k in ("train_loss", "val_loss", "val_accuracy") if record.get(k) is not None
        ]
        self.progress.update(self.steps, completed=trainer.steps_per_epoch)
        self.progress.update(self.epochs, completed=epoch, info="  ".join(shown))

    def on_fit_end(self, trainer: Trainer) -> None:
        self.close()

    def close(self) -> None:
        """Stop the live display (also called when the fit fails)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def progress_callback(quiet: bool) -> ProgressBar | ProgressLines | None:
    """The one choice of progress output: nothing when ``quiet``, a live bar when stderr is
    a terminal, else one line per epoch (stdout stays for results and ``--json``)."""
    if quiet:
        return None
    return ProgressBar() if sys.stderr.isatty() else ProgressLines()


def default_callbacks(config: Any) -> list[Callback]:
    """Callbacks the config asks for: early stopping, convergence conditions. (The gradient
    warnings of ``warn_gradients`` are a diagnostics callback, which ``capas.fit`` adds.)"""
    callbacks: list[Callback] = []
    if config.patience is not None:
        callbacks.append(EarlyStopping(config.monitor, config.patience, config.min_delta, config.restore_best))
    if config.target_loss is not None or config.min_improvement is not None:
        callbacks.append(Convergence(config.target_loss, config.min_improvement))
    return callbacks
