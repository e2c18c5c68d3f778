"""Plots of a training history: learning curves and per-layer "speed of learning".

Both take the history as the trainer records it (a list of per-epoch dicts, see
``docs/ARCHITECTURE.md``) and return the series they drew, so a test can check the
numbers without looking at pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from capas.diagnostics.figures import plt, save_figure

GRAD_PREFIX = "grad_norm/"
SPEED_PREFIX = "speed/"  # Nielsen's ||dC0/db|| per layer, recorded by gradients.SpeedOfLearning


def _column(history: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """The values of ``key`` over epochs, NaN where an epoch lacks it.  (E,)"""
    return np.array([_as_float(row.get(key)) for row in history], dtype=float)


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def curve_series(history: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Epochs, losses, metrics and learning rate of a history, as arrays of length E.

    Keys: ``epoch`` and every numeric column the history has among ``train_loss``,
    ``val_loss``, ``train_<metric>``, ``val_<metric>`` and ``lr``; plus ``best_epoch``
    (0-dim): the epoch of the lowest validation loss, else of the lowest training loss.
    """
    if not history:
        return {"epoch": np.zeros(0), "best_epoch": np.array(math.nan)}
    keys = [k for k in history[0] if k not in ("epoch", "seconds") and not k.startswith((GRAD_PREFIX, SPEED_PREFIX))]
    series = {"epoch": _column(history, "epoch")}
    for key in keys:
        values = _column(history, key)
        if not np.all(np.isnan(values)):
            series[key] = values
    watched = series.get("val_loss", series.get("train_loss"))
    best = series["epoch"][int(np.nanargmin(watched))] if watched is not None else math.nan
    series["best_epoch"] = np.array(best)
    return series


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path) -> dict[str, np.ndarray]:
    """Loss, metric and learning-rate panels per epoch, the best epoch marked; returns the series."""
    series = curve_series(history)
    names = {k.split("_", 1)[1] for k in series if k.startswith(("train_", "val_"))}  # a GAN's d_loss, g_loss too
    has_loss = "loss" in names  # an RBM's history has none: reconstruction error and free energy
    panels = ["loss"] * has_loss + sorted(names - {"loss"}) + (["lr"] if "lr" in series else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    epochs, best = series["epoch"], float(series["best_epoch"])
    for ax, panel in zip(axes[0], panels):
        if panel == "lr":
            ax.plot(epochs, series["lr"], color="tab:gray")
            ax.set_ylabel("learning rate")
        else:
            for split, style in (("train", "-"), ("val", "--")):
                key = f"{split}_{panel}"
                if key in series:
                    ax.plot(epochs, series[key], style, label=split)
            ax.set_ylabel(panel)
            ax.legend()
        if not math.isnan(best):
            ax.axvline(best, color="tab:red", lw=0.8, ls=":", label=None)
        ax.set_xlabel("epoch")
    axes[0][0].set_title(f"best epoch {best:g}" if not math.isnan(best) else "")
    save_figure(fig, path)
    return series


def gradient_norm_series(history: Sequence[dict[str, Any]], prefix: str = GRAD_PREFIX) -> dict[str, np.ndarray]:
    """Per-layer ``<prefix><layer>`` column per epoch, keyed by layer name in network order.  Each (E,)."""
    layers = [k[len(prefix) :] for k in (history[0] if history else {}) if k.startswith(prefix)]
    return {layer: _column(history, prefix + layer) for layer in layers}


def plot_gradient_norms(history: Sequence[dict[str, Any]], path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """The "speed of learning" plot (Nielsen, ch. 5): one line per layer, log scale.

    Left: the trainer's ``grad_norm/<layer>`` (mean ||dC0/dW|| of the data loss over the
    epoch's measured steps); right, when recorded: Nielsen's ``speed/<layer>`` (||dC0/db||).
    Returns ``{"grad_norm": {layer: (E,)}, "speed": {layer: (E,)}}``.
    """
    panels = {"grad_norm": gradient_norm_series(history), "speed": gradient_norm_series(history, SPEED_PREFIX)}
    shown = [name for name, series in panels.items() if series] or ["grad_norm"]
    labels = {"grad_norm": "||dC0/dW|| (trainer, per step)", "speed": "||dC0/db|| (data loss, probe)"}
    titles = {"grad_norm": "weight gradients (data loss)", "speed": "speed of learning (Nielsen)"}
    epochs = _column(history, "epoch")
    fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4), squeeze=False)
    for ax, name in zip(axes[0], shown):
        for layer, norms in panels[name].items():
            ax.plot(epochs, np.where(norms > 0, norms, np.nan), label=layer)
        if panels[name]:
            ax.set_yscale("log")
            ax.legend()
        ax.set(xlabel="epoch", ylabel=labels[name], title=titles[name])
    save_figure(fig, path)
    return panels


def plot_compare_curves(histories: dict[str, Sequence[dict[str, Any]]], path: str | Path) -> dict[str, dict]:
    """Several runs' learning curves overlaid, one colour per run (solid: training, dashed:
    validation), a panel for the loss and one per metric they share; the legend names each
    run. Returns {run label: its ``curve_series``}."""
    series = {label: curve_series(history) for label, history in histories.items()}
    shared = set.intersection(*(set(s) for s in series.values())) if series else set()
    metrics = sorted({k.split("_", 1)[1] for k in shared if k.startswith(("train_", "val_")) and k != "best_epoch"})
    has_loss = any("train_loss" in s or "val_loss" in s for s in series.values())  # an RBM records none
    metrics = ["loss"] * has_loss + [m for m in metrics if m != "loss"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    colours = plt.cm.tab10(np.arange(len(series)) % 10)
    for ax, metric in zip(axes[0], metrics):
        for (label, s), colour in zip(series.items(), colours):
            for split, style in (("train", "-"), ("val", "--")):
                if f"{split}_{metric}" in s:
                    ax.plot(s["epoch"], s[f"{split}_{metric}"], style, color=colour, label=f"{label} ({split})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)  # every panel: a run may be missing from some (an RBM has no loss)
    save_figure(fig, path)
    return series
