"""Plots of what a trained model computes: confusion, decision regions, weights, activations.

Each plot has a sibling that computes the plotted numbers from a model and plain tensors
(``confusion``, ``boundary_grid``, ``first_layer_weights``, ``layer_activations``), and the
``plot_*`` function returns them, so tests check numbers rather than pixels. Models follow
the ``Network`` contract: ``layer_names()``, ``hidden(x, layer)``.

Classes are decided as training counts its accuracy and ``capas evaluate`` does
(:func:`class_predictions`: the loss's rule on the outputs, argmax or a threshold at the
midpoint of the target codes for one output), so a classifier trained with a squared error,
whose raw outputs are codes and not classes, is drawn by the classes it predicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.collections import QuadMesh
from matplotlib.colors import ListedColormap
from sklearn.metrics import confusion_matrix
from torch import Tensor, nn

from capas.diagnostics.figures import plt, save_figure
from capas.errors import CapasError
from capas.objectives import Loss
from capas.train.evaluation import model_outputs

MAX_WEIGHT_IMAGES = 64


def class_predictions(model: nn.Module, x: Tensor, loss: Loss | None = None) -> Tensor:
    """Class indices (N,) of ``x (N, *)`` by ``loss``'s decision rule (a run's loss with its
    target encoding; default: the loss the model was built for, one-hot codes): argmax of the
    logits or outputs, or for one output a threshold (logit 0, else the codes' midpoint).
    Eval mode, no gradients; the result is on the CPU."""
    if loss is None:
        loss = Loss(getattr(model, "loss", None) or "cross_entropy")
    first = next(model.parameters(), None)
    if first is not None:
        x = x.to(first.device, first.dtype if x.is_floating_point() else None)
    return loss.predictions(model_outputs(model, x, loss.from_logits)).cpu()


def confusion(model: nn.Module, x: Tensor, y: Tensor, num_classes: int, loss: Loss | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of true class i predicted as j over ``x (N, *)``, ``y (N,)``.  (K, K)"""
    predicted = class_predictions(model, x, loss).numpy()  # (N,)
    return confusion_matrix(y.cpu().numpy(), predicted, labels=np.arange(num_classes))


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> np.ndarray:
    """Heat map of a confusion matrix with counts in the cells and the accuracy in the title."""
    k = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * k, 1.0 + 0.5 * k))
    ax.imshow(matrix, cmap="Blues")
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45 if k > 6 else 0)
    ax.set_yticks(range(k), names)
    threshold = matrix.max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > threshold else "black",
            )
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set(xlabel="predicted", ylabel="true", title=f"accuracy {accuracy:.2%}")
    save_figure(fig, path)
    return matrix


def boundary_axes(x: Tensor, resolution: int = 150, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Grid coordinates covering 2-D points ``x (N, 2)`` plus a margin.  Two arrays (R,)."""
    if x.dim() != 2 or x.shape[1] != 2:
        raise CapasError(
            f"decision boundaries need 2-D inputs, got inputs of shape {tuple(x.shape[1:])}; "
            "use a 2-D dataset (xor, circles, moons, spirals, gaussians) or plot 'hidden' instead"
        )
    lo, hi = x.min(0).values.cpu().numpy(), x.max(0).values.cpu().numpy()
    pad = margin * np.maximum(hi - lo, 1e-6)
    gx, gy = (np.linspace(lo[d] - pad[d], hi[d] + pad[d], resolution) for d in range(2))
    return gx, gy


def predict_grid(model: nn.Module, gx: np.ndarray, gy: np.ndarray, loss: Loss | None = None) -> np.ndarray:
    """The predicted class (:func:`class_predictions`) at every grid point, shaped like the
    mesh.  (len(gy), len(gx)) int64"""
    xx, yy = np.meshgrid(gx, gy)  # (R, R) each
    points = torch.tensor(np.stack([xx.ravel(), yy.ravel()], axis=1), dtype=torch.float32)  # (R*R, 2)
    return class_predictions(model, points, loss).numpy().reshape(xx.shape)


def boundary_grid(
    model: nn.Module, x: Tensor, resolution: int = 150, loss: Loss | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gx (R,), gy (R,), predicted classes (R, R)) over a grid around the points ``x (N, 2)``."""
    gx, gy = boundary_axes(x, resolution)
    return gx, gy, predict_grid(model, gx, gy, loss)


def class_colormap(num_classes: int) -> ListedColormap:
    """One distinct colour per class (tab10 / tab20)."""
    base = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
    return ListedColormap([base(i % base.N) for i in range(max(num_classes, 1))])


def draw_regions(
    ax: plt.Axes, gx: np.ndarray, gy: np.ndarray, grid: np.ndarray, x: Tensor, y: Tensor, num_classes: int
) -> QuadMesh:
    """Filled decision regions with the training points on top; returns the regions' mesh."""
    cmap = class_colormap(num_classes)
    mesh = ax.pcolormesh(gx, gy, grid, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, alpha=0.35, shading="auto")
    xs = x.cpu().numpy()
    ax.scatter(
        xs[:, 0],
        xs[:, 1],
        c=y.cpu().numpy(),
        cmap=cmap,
        vmin=-0.5,
        vmax=num_classes - 0.5,
        s=10,
        edgecolors="k",
        linewidths=0.3,
    )
    ax.set(xlabel="x1", ylabel="x2")
    return mesh


def plot_boundary(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    num_classes: int,
    path: str | Path,
    resolution: int = 150,
    loss: Loss | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decision regions of a 2-D classifier with the points ``x (N, 2)``; returns the grid."""
    gx, gy, grid = boundary_grid(model, x, resolution, loss)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    draw_regions(ax, gx, gy, grid, x, y, num_classes)
    ax.set_title("decision regions")
    save_figure(fig, path)
    return gx, gy, grid


def image_shape(input_shape: Sequence[int], fan_in: int) -> tuple[int, ...]:
    """How to show ``fan_in`` incoming weights as an image: (H, W), (H, W, 3) or a (1, fan_in) strip."""
    shape = tuple(input_shape)
    if math.prod(shape) == fan_in and len(shape) == 3 and shape[0] in (1, 3):
        return shape[1:] if shape[0] == 1 else (*shape[1:], 3)
    if math.prod(shape) == fan_in and len(shape) == 2:
        return shape
    side = math.isqrt(fan_in)
    return (side, side) if side * side == fan_in else (1, fan_in)


def first_layer_weights(model: nn.Module, input_shape: Sequence[int]) -> np.ndarray:
    """The first weighted layer's filters as images: (units, H, W) or (units, H, W, 3).

    A dense layer's row ``W[j] (in,)`` is unit j's receptive field, reshaped to the input
    image; a convolution's ``(F, C, K, K)`` kernel gives one KxK image per filter and
    channel (RGB when C == 3); a 1-D convolution ``(F, C, K)`` gives 1xK strips.
    """
    weight = next(
        (m.weight for m in model.modules() if isinstance(getattr(m, "weight", None), Tensor) and m.weight.dim() >= 2),
        None,
    )
    if weight is None:
        raise CapasError("the model has no layer with a weight matrix to show; 'weights' needs a dense or conv layer")
    w = weight.detach().float().cpu()
    if w.dim() == 2:  # (out, in)
        if w.shape[1] != math.prod(input_shape):
            input_shape = (w.shape[1],)
        return w.reshape(w.shape[0], *image_shape(input_shape, w.shape[1])).numpy()
    if w.dim() == 4 and w.shape[1] == 3:  # (F, 3, K, K) -> RGB
        return w.permute(0, 2, 3, 1).numpy()
    if w.dim() == 4:  # (F, C, K, K) -> (F*C, K, K)
        return w.reshape(-1, *w.shape[2:]).numpy()
    return w.reshape(-1, 1, w.shape[-1]).numpy()  # (F*C, 1, K)


def plot_weights(weights: np.ndarray, path: str | Path, title: str = "first-layer weights") -> np.ndarray:
    """A tile per unit (at most 64), each on a symmetric colour scale around zero."""
    shown = weights[:MAX_WEIGHT_IMAGES]
    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 0.4, 1.3 * rows + 0.6), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(shown):
            continue
        tile = shown[index]
        if tile.ndim == 3:  # RGB: rescale to [0, 1]
            ax.imshow((tile - tile.min()) / max(np.ptp(tile), 1e-12))
        else:
            bound = max(float(np.abs(tile).max()), 1e-12)
            ax.imshow(tile, cmap="bwr", vmin=-bound, vmax=bound, aspect="auto" if tile.shape[0] == 1 else "equal")
    fig.suptitle(f"{title} ({len(shown)} of {len(weights)})" if len(shown) < len(weights) else title)
    save_figure(fig, path)
    return weights


def layer_activations(model: nn.Module, x: Tensor) -> dict[str, np.ndarray]:
    """Every layer's outputs on ``x (N, *)``, flattened, keyed by layer name.  Each (N*units,)."""
    return {name: model.hidden(x, name).flatten().float().cpu().numpy() for name in model.layer_names()}


def plot_activation_histograms(activations: dict[str, np.ndarray], path: str | Path) -> dict[str, np.ndarray]:
    """One histogram per layer: pile-ups at the bounds show saturation, a spike at 0 dead ReLUs."""
    names = list(activations)
    cols = min(len(names), 4) or 1
    rows = max(math.ceil(len(names) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        ax.hist(activations[name], bins=50, color="tab:blue")
        ax.set_title(name)
        ax.set_yscale("log")
    fig.suptitle("activation histograms (test set)")
    save_figure(fig, path)
    return activations
