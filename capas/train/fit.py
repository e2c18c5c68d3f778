"""``capas.fit``: build (if given a spec), load (if given a name), train, evaluate, save."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from capas.errors import TrainingError
from capas.train import rundir
from capas.train.callbacks import Callback
from capas.train.config import TrainConfig
from capas.train.history import History
from capas.train.losses import canonical_loss
from capas.train.trainer import Trainer


_FIT_DEFAULTS = {"loss": None, "optimizer": "sgd", "lr": 0.1, "batch_size": 32, "engine": "auto", "seed": 0,
                 "device": "auto", "out": None}


@dataclass
class FitResult:
    """What a fit produced: the trained model, its history, run directory and test metrics."""

    model: nn.Module
    history: History
    run_dir: Path | None
    test_metrics: dict[str, Any] = field(default_factory=dict)
    engine: str = "autograd"
    stop_reason: str | None = None


def fit(
    model: nn.Module | str,
    data: Any,
    *,
    loss: str | None = None,
    optimizer: str = "sgd",
    lr: float = 0.1,
    epochs: int | None = None,
    batch_size: int | str = 32,
    engine: str = "auto",
    seed: int = 0,
    device: str = "auto",
    out: str | Path | None = None,
    quiet: bool = False,
    callbacks: tuple[Callback, ...] | list[Callback] = (),
    resume: str | Path | None = None,
    curriculum_scores: Tensor | None = None,
    curriculum_reference: nn.Module | None = None,
    command: list[str] | None = None,
    **options: Any,
) -> FitResult:
    """Train ``model`` on ``data`` and return a :class:`FitResult`.

    Args:
        model: an ``nn.Module`` (a capas ``Network`` or any module whose ``forward`` returns
            logits for cross-entropy), or a spec string built with ``seed``.
        data: a ``Dataset``, a dataset name (loaded with ``seed``), ``(x, y)``,
            ``(x_train, y_train, x_val, y_val)`` or a ``DataLoader``.
        batch_size: ``"full"`` (batch BackProp), B (mini-batch) or 1 (incremental).
        engine: ``auto`` | ``backprop`` | ``autograd`` (see ``capas.train.engines``).
        out: run directory (None: nothing written).
        resume: a run directory to continue from its last checkpoint; its config.json's
            options are used (``epochs`` may be raised to train longer).
        curriculum_scores: one difficulty per training sample for ``curriculum="scores"``.
        curriculum_reference: for ``curriculum="loss"``, the model whose per-sample loss
            ranks the samples (default: the model being trained, as it starts).
        options: every other :class:`TrainConfig` field (momentum, l2, clip_norm, patience,
            scheduler, class_weights, resample, curriculum, ...).
    """
    if resume is not None:
        given = {"loss": loss, "optimizer": optimizer, "lr": lr, "batch_size": batch_size, "engine": engine,
                 "seed": seed, "device": device, "out": out, **options}
        changed = sorted(k for k, v in given.items() if v != _FIT_DEFAULTS.get(k))
        if changed:
            raise TrainingError(
                f"when resuming, the options come from the run's config.json; do not pass {', '.join(changed)} "
                "(only epochs may be changed)"
            )
        run = rundir.load_run(resume)
        saved = dict(run.config["train"])
        changed_epochs = epochs is not None and epochs != saved.get("epochs")
        if changed_epochs:  # train a resumed run for longer (or shorter)
            _check_schedule_allows_new_epochs(saved)
            saved["epochs"] = epochs
        config = TrainConfig.from_options(**saved)
        out = run.path
        if changed_epochs:  # a later resume of this run must see the new length
            rundir.write_json(run.path / "config.json", {**run.config, "train": config.to_json()})
    else:
        run = None
        config = TrainConfig.from_options(
            loss=loss, optimizer=optimizer, lr=lr, batch_size=batch_size, engine=engine,
            seed=seed, device=device, epochs=20 if epochs is None else epochs, **options,
        )
    if isinstance(model, str):
        model = _build(model, config)
    if isinstance(data, str):
        from capas.data import load

        data = load(data, seed=config.seed)
    trainer = Trainer(model, config, callbacks=callbacks, quiet=quiet, out=out,
                      curriculum_scores=curriculum_scores, curriculum_reference=curriculum_reference,
                      command=command)
    trainer.fit(data, resume=run)
    return FitResult(model=trainer.model, history=trainer.history, run_dir=trainer.run_dir,
                     test_metrics=trainer.test_metrics, engine=trainer.engine, stop_reason=trainer.stop_reason)


def _check_schedule_allows_new_epochs(saved: dict[str, Any]) -> None:
    """one_cycle counts its total steps from the epochs it was built for: past them torch fails."""
    from capas.train.optim import SCHEDULER_ALIASES

    key = str(saved.get("scheduler") or "").strip().lower().replace("-", "_")
    if SCHEDULER_ALIASES.get(key, key) == "one_cycle":
        raise TrainingError(
            f"the run's one_cycle LR schedule spans its {saved.get('epochs')} epochs; "
            "resume it without changing epochs"
        )


def _build(spec: str, config: TrainConfig) -> nn.Module:
    """Build a spec with ``config.seed``; the network's loss follows the training loss."""
    from capas.models import build

    return build(spec, loss=network_loss(config.loss), seed=config.seed)


def network_loss(loss: str | None) -> str | None:
    """The loss a ``Network`` is built for (it picks the output activation): the squared,
    absolute and Huber errors give a linear output, the cross-entropies softmax / sigmoid."""
    if loss is None:
        return None
    name = canonical_loss(loss)
    return "mse" if name == "mse_half_sum" else name
