"""``capas.fit``: load the data (if given a name), build the model (if given a spec) for the
data's task, train, evaluate, save; ``capas train`` calls the same functions.

Every default comes from :mod:`capas.defaults` (optimizer ``adam``, the learning rate of
the optimizer, 30 epochs, batches of 32, the loss of the task), so a Python user and a
command-line user train the same run from the same options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from capas import defaults
from capas.api import outputs
from capas.diagnostics.gradients import GradientMonitor
from capas.errors import RunDirError, TrainingError
from capas.models.registry import kind_of
from capas.tasks import for_model
from capas.train import distributed, rundir
from capas.train.callbacks import Callback
from capas.train.config import TrainConfig
from capas.train.history import History
from capas.train.inputs import as_training_data
from capas.train.loop import Trainer

#: what a new run directory may already hold: the record of the recipe whose one model trains in it
KEEP = (outputs.RECIPE_RECORD, outputs.RECIPE_PRETRAIN)


@dataclass
class FitResult:
    """What a fit produced: the trained model, its history, run directory and test metrics."""

    model: nn.Module
    history: History
    run_dir: Path | None
    test_metrics: dict[str, Any] = field(default_factory=dict)
    engine: str = "autograd"
    stop_reason: str | None = None

    def summary(self) -> dict[str, Any]:
        """The headline numbers as one JSON-able dict (what ``capas train --json`` prints):
        test loss and accuracy (or mse/rmse/mae, or an encoder-decoder's exact match and token
        accuracy), epochs run, last losses, engine, run dir."""
        metrics = self.test_metrics
        last = self.history[-1] if self.history else {}
        summary = {
            "test_loss": metrics.get("test_loss"),
            "epochs": len(self.history),
            "train_loss": last.get("train_loss"),
            "val_loss": last.get("val_loss"),
            "val_accuracy": last.get("val_accuracy"),
            "engine": self.engine,
            "run_dir": str(self.run_dir) if self.run_dir else None,
        }
        for key in (
            *("test_accuracy", "test_mse", "test_rmse", "test_mae"),
            *("test_exact_match", "test_token_accuracy", "test_reconstruction_error", "test_free_energy"),
        ):
            if key in metrics:
                summary[key] = metrics[key]
        return summary


def fit(
    model: nn.Module | str,
    data: Any,
    *,
    loss: str | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    epochs: int | None = None,
    batch_size: int | str | None = None,
    engine: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    callbacks: tuple[Callback, ...] | list[Callback] = (),
    resume: str | Path | None = None,
    curriculum_scores: Tensor | None = None,
    curriculum_reference: nn.Module | None = None,
    task_options: dict[str, Any] | None = None,
    command: list[str] | None = None,
    **options: Any,
) -> FitResult:
    """Train ``model`` on ``data`` and return a :class:`FitResult`.

    Args:
        model: an ``nn.Module`` (a capas ``Network`` or any module whose ``forward`` returns
            logits for cross-entropy), or a spec string, built with ``seed`` *after* the
            data is loaded so that its loss follows the task (``mse`` for regression).
        data: a ``Dataset``, a dataset name (loaded with ``seed``), ``(x, y)``,
            ``(x_train, y_train, x_val, y_val)`` or a ``DataLoader``.
        optimizer: a ``capas.train.optim.OPTIMIZERS`` name (default ``adam``).
        lr: learning rate; None takes ``capas.defaults.default_lr(optimizer)`` (an RBM's
            contrastive-divergence step: ``capas.defaults.LR_FOR_MODEL``).
        epochs: maximum epochs (default ``capas.defaults.EPOCHS``); with ``resume``, the new length.
        batch_size: ``"full"`` (batch BackProp), B (mini-batch) or 1 (incremental); default 32.
        engine: ``auto`` | ``backprop`` | ``autograd`` (see ``capas.train.engines``); default auto.
        seed, device: default 0 and ``auto``. Every option left None takes its value from
            :mod:`capas.defaults` (the table ``capas train`` uses); with ``resume``, any
            option given other than ``epochs`` is an error (config.json decides them).
        out: a new run directory (None: nothing written); one that exists and is not empty
            is refused (nothing is overwritten), and so is one that cannot be written, both
            before the data are loaded.
        resume: a run directory to continue from its last checkpoint; its config.json's
            options are used (``epochs`` may be raised to train longer).
        curriculum_scores: one difficulty per training sample for ``curriculum="scores"``.
        curriculum_reference: for ``curriculum="loss"``, the model whose per-sample loss
            ranks the samples (default: the model being trained, as it starts).
        task_options: keyword arguments of the model's task (``capas.tasks.for_model``), e.g.
            ``{"k": 3, "persistent": True}`` for an RBM; recorded in config.json, so a
            resumed run rebuilds the same task.
        options: every other :class:`TrainConfig` field (momentum, l2, clip_norm, patience,
            scheduler, class_weights, resample, curriculum, ...). ``optimizer_options`` may
            hold ``lr`` and ``momentum`` too: they set those fields.
    """
    if lr is None and resume is None and not isinstance(model, str):
        lr = defaults.LR_FOR_MODEL.get(kind_of(model))  # an RBM's CD step, not Adam's rate
    if resume is not None:
        run, config = _resumed_config(
            resume,
            epochs,
            {
                "loss": loss,
                "optimizer": optimizer,
                "lr": lr,
                "batch_size": batch_size,
                "engine": engine,
                "seed": seed,
                "device": device,
                "out": out,
                "task_options": task_options,
                **options,
            },
        )
        out = run.path
        callbacks = [*callbacks, *_record_new_length(run, config)]
    else:
        ranks = distributed.current()  # a multi-process run's directory is rank 0's to claim
        if out is not None and (ranks is None or ranks.is_main):  # before the data load: a bad output costs nothing
            outputs.claim_output_dir(out, hint="choose another output directory, or resume that run", keep=KEEP)
        run = None
        config = train_config(
            loss=loss,
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            engine=engine,
            seed=seed,
            device=device,
            **options,
        )
    if isinstance(data, str):
        from capas.data import load

        data = load(data, seed=config.seed)
    if isinstance(model, str):
        model = build_for(model, data, loss=config.loss, seed=config.seed)
    if run is not None:  # the task the run started with (an RBM's k, persistent...)
        task_options = run.config.get("task", {}).get("options")
    task = for_model(
        model, curriculum_scores=curriculum_scores, curriculum_reference=curriculum_reference, **(task_options or {})
    )
    supervised = task.kind == "supervised"  # the gradient warnings read a supervised model's layers
    monitors = [GradientMonitor()] if config.warn_gradients and config.grad_norms and supervised else []
    if task.kind == "gan":  # sample grids from a fixed noise batch every epoch, and their GIF
        from capas.diagnostics.gan_plots import SampleGrids

        monitors.append(SampleGrids())
    trainer = Trainer(task, config, callbacks=[*monitors, *callbacks], quiet=quiet, out=out, command=command)
    trainer.fit(data, resume=run)
    return FitResult(
        model=trainer.model,
        history=trainer.history,
        run_dir=trainer.run_dir,
        test_metrics=trainer.test_metrics,
        engine=trainer.engine,
        stop_reason=trainer.stop_reason,
    )


def train_config(**options: Any) -> TrainConfig:
    """The :class:`TrainConfig` of a new fit from ``fit``'s keyword options: an option given
    as None is not given, so it takes :mod:`capas.defaults` (through TrainConfig's fields;
    the learning rate by optimizer)."""
    return TrainConfig.from_options(**{name: value for name, value in options.items() if value is not None})


def _resumed_config(resume: str | Path, epochs: int | None, given: dict[str, Any]) -> tuple[rundir.Run, TrainConfig]:
    """The run to continue and its saved config (``epochs`` changed when given); any other
    option given (not None) is an error: the run's config.json decides them."""
    changed = sorted(k for k, v in given.items() if v is not None)
    if changed:
        raise TrainingError(
            f"when resuming, the options come from the run's config.json; do not pass {', '.join(changed)} "
            "(only epochs may be changed)"
        )
    run = rundir.load_run(resume)
    state = rundir.read_json(run.path / "state.json")
    if not isinstance(state, dict):
        raise RunDirError(f"{run.path / 'state.json'} is not a capas checkpoint; the run directory is damaged")
    done = state.get("epoch") if isinstance(state.get("epoch"), int) else 0
    saved = dict(run.config["train"])
    if state.get("finished"):
        _check_finished_run_extends(run.path, state, done, saved.get("epochs") if epochs is None else epochs)
    if epochs is not None and epochs != saved.get("epochs"):  # train a resumed run for longer (or shorter)
        if epochs <= done:
            raise TrainingError(
                f"the run in {run.path} has already trained {done} epochs; give epochs above {done} "
                f"(or leave them out to finish its {saved.get('epochs')})"
            )
        _check_schedule_allows_new_epochs(saved)
        _check_task_allows_new_epochs(run.config.get("task"), saved.get("epochs"))
        saved["epochs"] = epochs
    return run, TrainConfig.from_options(**saved)


class _RecordNewLength(Callback):
    """Writes a resumed run's new length into its config.json once training really starts
    (after the data loaded and the checkpoint was restored), so that a resume refused or
    failing on the way leaves config.json as it was, and a later resume sees the new length."""

    name = "record_new_length"

    def __init__(self, run: rundir.Run, config: TrainConfig) -> None:
        self.run, self.config = run, config

    def on_fit_begin(self, trainer: Trainer) -> None:
        rundir.write_json(self.run.path / "config.json", {**self.run.config, "train": self.config.to_json()})


def _record_new_length(run: rundir.Run, config: TrainConfig) -> list[Callback]:
    """The callback that records ``config``'s epochs in config.json, if they changed."""
    return [_RecordNewLength(run, config)] if config.epochs != run.config["train"].get("epochs") else []


def resume(run_dir: str | Path, *, epochs: int | None = None, quiet: bool = False) -> FitResult:
    """Continue the run in ``run_dir`` (trained on a registry dataset) from its last
    checkpoint: the dataset is reloaded from its config.json, the model from model.json."""
    from capas.data.subsets import reload_dataset

    run = rundir.load_run(run_dir)
    saved = run.config.get("data", {})
    if not saved.get("name"):
        raise RunDirError(
            f"{run_dir} was trained on in-memory data; resume it from Python with "
            "capas.fit(model, data, resume=RUN_DIR)"
        )
    dataset = reload_dataset(saved)
    return fit(rundir.load_model(run_dir), dataset, resume=run_dir, quiet=quiet, epochs=epochs)


def _check_finished_run_extends(path: Path, state: dict[str, Any], done: int, epochs: Any) -> None:
    """A finished run trains on only when it ran its full length and ``epochs`` (the new
    length, or config.json's, lengthened by an extension that was interrupted before its
    first checkpoint) goes past it: the last checkpoint then holds everything the next epoch
    needs, and the extended run equals one trained that long from the start."""
    if state.get("stopped"):
        raise RunDirError(
            f"the run in {path} stopped at epoch {done} ({state.get('stop_reason') or 'early stopping'}); "
            "a stopped run is not trained on: start a new run with more patience or a lower target"
        )
    if not isinstance(epochs, int) or epochs <= done:
        raise RunDirError(
            f"the run in {path} already finished ({done} epochs); nothing to resume. "
            f"To train it longer, resume it with epochs above {done} (--epochs)"
        )


def _check_schedule_allows_new_epochs(saved: dict[str, Any]) -> None:
    """one_cycle counts its total steps from the epochs it was built for (past them torch
    fails), and cosine anneals over them (past them its rate climbs back up): both keep the
    length they were built with."""
    from capas.train.optim import SCHEDULER_ALIASES

    key = str(saved.get("scheduler") or "").strip().lower().replace("-", "_")
    key = SCHEDULER_ALIASES.get(key, key)
    if key in ("one_cycle", "cosine"):
        raise TrainingError(
            f"the run's {key} LR schedule spans its {saved.get('epochs')} epochs; resume it without changing "
            "epochs, or start a new run with the length you want"
        )


def _check_task_allows_new_epochs(task: Any, epochs: Any) -> None:
    """A seq2seq run's teacher-forcing ratio that moves until "the last epoch" (no
    ``teacher_forcing_epochs``) spans the length it was built with: a new length would
    change the ratio of the epochs still to come."""
    options = task.get("options", {}) if isinstance(task, dict) else {}
    final = options.get("teacher_forcing_final")
    if final is not None and final != options.get("teacher_forcing") and options.get("teacher_forcing_epochs") is None:
        raise TrainingError(
            f"the run's teacher-forcing ratio goes from {options.get('teacher_forcing')} to {final} over its {epochs} "
            "epochs; resume it without changing epochs, or train a new run with teacher_forcing_epochs set"
        )


def task_of(data: Any) -> str | None:
    """``"classification"`` or ``"regression"`` for data ``fit`` accepts (float targets mean
    regression); None for a ``DataLoader``, whose targets are seen only while training."""
    if isinstance(getattr(data, "task", None), str):
        return data.task
    prepared = as_training_data(data)
    return None if prepared.loader is not None else prepared.task


def default_spec(dataset: Any) -> str:
    """``<inputs>-64-<outputs>`` for a ``Dataset`` (``64-64-10`` for digits)."""
    inputs = math.prod(dataset.input_shape)
    outputs = dataset.num_classes if dataset.num_classes is not None else dataset.y_train.shape[1]
    return f"{inputs}-{defaults.HIDDEN_UNITS}-{outputs}"


def build_for(
    spec: str,
    data: Any,
    *,
    loss: str | None = None,
    act: str | None = None,
    seed: int = defaults.SEED,
    init: str | None = None,
) -> nn.Module:
    """Build ``spec`` (with ``seed``) for ``data``: the network's loss (and so its output
    activation) is ``loss``, else the task's default loss (``mse`` for regression); ``init``
    overrides every layer's initialisation scheme (default: by activation)."""
    from capas.api.seq2seq import is_pairs_data
    from capas.models import build
    from capas.models.presets import resolve

    if is_pairs_data(data):
        raise TrainingError(
            f"{data.name} holds sequence pairs (source -> target strings), which a layer spec like {spec!r} "
            "cannot read; train an encoder-decoder: Seq2Seq.for_data(data, ...) from capas.models.seq2seq "
            "(capas train: leave --model out, or give its options as --model '{hidden = 64}')"
        )
    spec = resolve(spec)  # a preset's name (lenet5, nielsen-ch6...) is its spec
    task = task_of(data)
    if task == "unsupervised":
        raise TrainingError(
            f"the spec {spec!r} builds a supervised network, but the data are inputs without "
            "targets; give (x, y), or train an Autoencoder or RBM on x alone"
        )
    name = loss if loss is not None or task is None else defaults.default_loss(task)
    return build(spec, act=act, loss=name, seed=seed, task=task, init=init)
