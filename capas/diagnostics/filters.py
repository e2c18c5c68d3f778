"""Seeing inside a convolutional network (course file 000, "otra forma de graficarlas"; file
004's "pesos de FM1, FM2, FM3"): three plots of one convolution-like layer.

- ``feature-maps``: each filter's output on one test image, drawn as an image laid out like
  the input (one panel per map, beside the input itself);
- ``filters``: the filters themselves, one tile per (filter, input channel), blue negative
  and red positive on a scale symmetric around zero;
- ``top-inputs``: for each map (up to :data:`MAX_MAPS`), the test images that excite it most
  (the largest value anywhere in the map), strongest first.

The layer is ``layer`` (``capas plot RUN --what filters --layer conv2``), by default the
first convolution. Layers with filters: convolutions (full, depthwise, separable's
depthwise step, LeNet's partial C3, conv maxout); any layer whose output is a stack of maps
(C, H, W) has feature maps and top inputs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from capas.diagnostics.figures import plt, save_figure
from capas.errors import CapasError
from capas.layers import Conv, ConvMaxout, DepthwiseConv, PartialConv, SeparableConv
from capas.models import Network

FILTER_KINDS = ("feature-maps", "filters", "top-inputs")
MAX_MAPS = 16  # maps shown by feature-maps and top-inputs
MAX_TILES = 64  # filter tiles
TOP = 8  # images per map in top-inputs
PROBE = 2000  # test images searched by top-inputs


def filter_bank(module: nn.Module) -> Tensor | None:
    """The (F, C, kh, kw) filters of a 2-D convolution-like layer, or None."""
    if isinstance(module, PartialConv):
        weight = module.full_weight()
    elif isinstance(module, (Conv, ConvMaxout, DepthwiseConv)):
        weight = module.weight
    elif isinstance(module, SeparableConv):
        weight = module.depthwise.weight
    else:
        return None
    return weight.detach() if weight.dim() == 4 else None


def _map_layers(model: nn.Module, data: Any) -> list[str]:
    """Top-level layers whose output is a stack of 2-D maps (C, H, W)."""
    x = data.x_test[:1]
    return [name for name in model.layer_names() if model.hidden(x, name).dim() == 4]


def not_applicable(kind: str, model: nn.Module, data: Any) -> str | None:
    """Why ``kind`` cannot be drawn, or None."""
    if not isinstance(model, Network) or len(model.input_shape) != 3 or model.sequence:
        return "it needs a capas network on image inputs (CxHxW)"
    if kind == "filters" and not any(filter_bank(model.layer(n)) is not None for n in model.layer_names()):
        return "the network has no 2-D convolution"
    if kind != "filters" and not _map_layers(model, data):
        return "no layer of the network outputs 2-D maps"
    return None


def _layer(kind: str, model: nn.Module, data: Any, layer: str | None) -> str:
    """The layer to draw: ``layer`` (checked), else the first that applies."""
    if kind == "filters":
        usable = [n for n in model.layer_names() if filter_bank(model.layer(n)) is not None]
        what = "2-D convolution filters"
    else:
        usable = _map_layers(model, data)
        what = "2-D maps"
    if layer is None:
        return usable[0]
    if layer not in usable:
        raise CapasError(f"cannot plot {kind} of {layer!r}: it has no {what}; layers that have: {', '.join(usable)}")
    return layer


def draw(kind: str, model: nn.Module, data: Any, out: Path, layer: str | None) -> list[Path]:
    """Draw ``kind`` (one of :data:`FILTER_KINDS`) of ``layer`` into ``out/<kind>-<layer>.png``."""
    name = _layer(kind, model, data, layer)
    path = out / f"{kind}-{name}.png"
    if kind == "filters":
        plot_filters(filter_bank(model.layer(name)), path, f"filters of {name}")
    elif kind == "feature-maps":
        x = data.x_test[:1]
        plot_feature_maps(x[0], model.hidden(x, name)[0], path, f"feature maps of {name} on test image 0")
    else:
        x = data.x_test[:PROBE]
        images, scores = top_inputs(model.hidden(x, name), x, TOP)
        plot_top_inputs(images, scores, path, f"test images exciting each map of {name} most")
    return [path]


def top_inputs(maps: Tensor, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """For each map of ``maps`` (N, C, H, W): the ``k`` inputs of ``x`` (N, *) whose map has
    the largest maximum. Returns images (C, k, *x's sample shape) and scores (C, k)."""
    peak = maps.flatten(2).amax(dim=2)  # (N, C)
    scores, order = peak.topk(min(k, len(x)), dim=0)  # (k, C)
    return x[order.T], scores.T  # (C, k, *sample), (C, k)


def _as_image(sample: Tensor) -> np.ndarray:
    """(C, H, W) -> (H, W) grey or (H, W, 3) RGB in [0, 1] for imshow."""
    array = sample.detach().float().cpu().numpy()
    if array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
        return (array - array.min()) / max(float(np.ptp(array)), 1e-12)
    return array.mean(axis=0)


def plot_filters(weight: Tensor, path: str | Path, title: str) -> np.ndarray:
    """One tile per (filter, input channel), at most :data:`MAX_TILES`, symmetric colour scale."""
    tiles = weight.float().cpu().flatten(0, 1).numpy()  # (F*C, kh, kw)
    shown = tiles[:MAX_TILES]
    channels = weight.shape[1]
    cols = channels if 1 < channels <= 8 else math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 0.4, 1.1 * rows + 0.6), squeeze=False)
    bound = max(float(np.abs(shown).max()), 1e-12)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(shown):
            ax.imshow(shown[index], cmap="bwr", vmin=-bound, vmax=bound)
    rows_note = "; rows: filters, columns: input channels" if 1 < channels <= 8 else ""
    fig.suptitle(
        f"{title} ({len(shown)} of {len(tiles)} tiles{rows_note})" if len(shown) < len(tiles) else f"{title}{rows_note}"
    )
    save_figure(fig, path)
    return tiles


def plot_feature_maps(x: Tensor, maps: Tensor, path: str | Path, title: str) -> np.ndarray:
    """The input (C, H, W) and each map of ``maps`` (F, H', W') as an image, same orientation."""
    shown = maps[:MAX_MAPS].float().cpu().numpy()
    cols = min(len(shown) + 1, 6)
    rows = math.ceil((len(shown) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 0.4, 1.6 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(_as_image(x), cmap="gray")
    axes.flat[0].set_title("input", fontsize=8)
    for index, (ax, image) in enumerate(zip(axes.flat[1:], shown)):
        ax.imshow(image, cmap="viridis")
        ax.set_title(f"map {index}", fontsize=8)
    fig.suptitle(title if len(shown) == len(maps) else f"{title} (first {len(shown)} of {len(maps)} maps)")
    save_figure(fig, path)
    return shown


def plot_top_inputs(images: Tensor, scores: Tensor, path: str | Path, title: str) -> Tensor:
    """A row per map (at most :data:`MAX_MAPS`): its strongest inputs, left to right."""
    images, scores = images[:MAX_MAPS], scores[:MAX_MAPS]
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 0.8, 1.1 * rows + 0.6), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            ax.imshow(_as_image(images[r, c]), cmap="gray")
            ax.set_title(f"{float(scores[r, c]):.2g}", fontsize=6)
        axes[r, 0].text(-0.15, 0.5, f"map {r}", transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path)
    return scores


__all__ = ["FILTER_KINDS", "draw", "filter_bank", "not_applicable", "top_inputs"]
