"""A hidden layer's representation in two dimensions (the course's SEMEION figure).

A layer of two units is drawn as is: its plane is the space the network transformed the
inputs into. A wider layer is projected onto its first two principal components
(scikit-learn's PCA), which keep as much of its variance as a plane can.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from torch import Tensor, nn

from capas.diagnostics.figures import plt, save_figure
from capas.diagnostics.plots_model import class_colormap
from capas.errors import CapasError


def default_hidden_layer(model: nn.Module) -> str:
    """The last hidden layer: the one feeding the output layer."""
    names = list(model.layer_names())
    if len(names) < 2:
        raise CapasError("the model has no hidden layer to show; build one with at least one hidden layer")
    return names[-2]


def hidden_projection(model: nn.Module, x: Tensor, layer: str | None = None) -> tuple[np.ndarray, str]:
    """Points ``(N, 2)`` for inputs ``x (N, *)`` in ``layer``'s space, and how they were made.

    The second value is ``"units"`` (the layer has 2 units, or 1 unit paired with zeros) or
    ``"pca"`` with the explained variance ratio of the two components.
    """
    layer = layer or default_hidden_layer(model)
    names = list(model.layer_names())
    if layer not in names:
        raise CapasError(f"unknown layer {layer!r}; the model's layers are: {', '.join(names)}")
    h = model.hidden(x, layer).flatten(1).double().cpu().numpy()  # (N, units); eval mode, no gradients
    if h.shape[1] == 2:
        return h, "units"
    if h.shape[1] == 1:
        return np.concatenate([h, np.zeros_like(h)], axis=1), "units"
    pca = PCA(n_components=2).fit(h)
    ratio = pca.explained_variance_ratio_
    return pca.transform(h), f"pca ({ratio[0]:.0%} + {ratio[1]:.0%} of variance)"


def axis_labels(layer: str, how: str, units: int) -> tuple[str, str]:
    """What the two axes of :func:`hidden_projection`'s points are."""
    if how.startswith("pca"):
        return "principal component 1", "principal component 2"
    return f"{layer} unit 1", f"{layer} unit 2" if units == 2 else "(one unit)"


def plot_hidden(
    points: np.ndarray,
    labels: Tensor | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str,
    axes: tuple[str, str] = ("", ""),
) -> np.ndarray:
    """Scatter of ``points (N, 2)`` coloured by class ``labels (N,)``, one legend entry per class;
    ``axes`` names the x and y axes (see :func:`axis_labels`)."""
    labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    k = max(len(class_names), int(labels.max(initial=0)) + 1)
    cmap = class_colormap(k)
    fig, ax = plt.subplots(figsize=(6.2, 4.8))
    for c in range(k):
        mask = labels == c
        if mask.any():
            name = class_names[c] if c < len(class_names) else str(c)
            ax.scatter(points[mask, 0], points[mask, 1], s=8, color=cmap(c), label=name, alpha=0.8)
    ax.legend(markerscale=2, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # outside the points
    ax.set(title=title, xlabel=axes[0], ylabel=axes[1])
    save_figure(fig, path)
    return points
