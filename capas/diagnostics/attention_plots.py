"""Attention, seen: the heatmap of one example (source x target), and the same example's
attention as training goes on.

A row of the heatmap is one output symbol; its cells are the weights that step gave each
source symbol (they sum to 1). A trained date translator's map shows the year's digits
looking at the year, the month's at the month name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from capas.diagnostics.figures import plt, save_figure
from capas.errors import CapasError
from capas.train.callbacks import Callback


def _draw(ax: Any, weights: Tensor, source: list[str], target: list[str], labels: bool = True) -> Any:
    image = ax.imshow(weights.float().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    if labels:
        ax.set_xticks(range(len(source)), source, fontsize=8, rotation=90)
        ax.set_yticks(range(len(target)), target, fontsize=8)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


def axis_labels(text: str, n: int) -> list[str]:
    """``n`` axis labels for ``text``'s symbols followed by ``<eos>`` (spaces shown as ``␣``)."""
    symbols = [("␣" if ch == " " else ch) for ch in text] + ["<eos>"]
    return (symbols + ["<pad>"] * n)[:n]


def plot_attention(weights: Tensor, source: str, output: str, path: str | Path, title: str | None = None) -> Path:
    """Heatmap of ``weights`` (L, S): output symbols (rows) x source symbols (columns), saved
    as a PNG at ``path``; ``source`` and ``output`` label the axes."""
    if weights is None:
        raise CapasError("this model has no attention (attention='none'); there is no map to draw")
    L, S = weights.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * S + 2), max(3.0, 0.3 * L + 1.5)))
    image = _draw(ax, weights, axis_labels(source, S), axis_labels(output, L))
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(title or f"{source!r} -> {output!r}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    return save_figure(fig, path)


class AttentionOverTraining(Callback):
    """Records the attention of one source string at the end of epochs 1, 2, 4, 8... and
    the last, and draws them side by side at the end of the fit (``path``): how the
    alignment forms. Diagnostic only: an interrupted run's snapshots are not kept."""

    name = "attention_over_training"

    def __init__(self, source: str, path: str | Path) -> None:
        self.source, self.path = source, Path(path)
        self.snapshots: list[tuple[int, str, Tensor]] = []

    def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, Any]) -> None:
        last = epoch == trainer.config.epochs
        if epoch & (epoch - 1) == 0 or last:  # powers of two, and the last
            (output, weights), *_ = trainer.model.translate([self.source], allow_longer=True)
            if weights is not None:
                self.snapshots.append((epoch, output, weights))

    def on_fit_end(self, trainer: Any) -> None:
        if self.snapshots:
            plot_attention_over_training(self.snapshots, self.source, self.path)


def plot_attention_over_training(snapshots: list[tuple[int, str, Tensor]], source: str, path: str | Path) -> Path:
    """One heatmap per (epoch, output, weights (L, S)) snapshot, in a row, saved at ``path``."""
    n = len(snapshots)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    for ax, (epoch, output, weights) in zip(axes[0], snapshots):
        L, S = weights.shape
        _draw(ax, weights, axis_labels(source, S), axis_labels(output, L), labels=n <= 3)
        ax.set_title(f"epoch {epoch}: {output[:16]!r}", fontsize=8)
    fig.suptitle(f"attention over training: {source!r}", fontsize=9)
    return save_figure(fig, path)
