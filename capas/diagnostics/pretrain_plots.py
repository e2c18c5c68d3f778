"""Pictures of unsupervised pre-training: filters, reconstructions, Gibbs samples, curves.

Each ``plot_*`` function writes one PNG (matplotlib Agg) and returns the numbers it drew,
so tests can check them. ``plot_pretrain_run(DIR)`` draws every picture a directory
written by ``capas pretrain`` supports into ``DIR/plots``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from capas.diagnostics.figures import plt, save_figure
from capas.diagnostics.plots_model import image_shape, plot_weights
from capas.errors import RunDirError
from capas.models.dbn import DBN, dense_layers

CURVE_METRICS = ("reconstruction_error", "free_energy", "pseudo_log_likelihood")
GIBBS_SNAPSHOTS = (1, 10, 100, 1000)


def as_images(x: torch.Tensor, input_shape: Sequence[int]) -> np.ndarray:
    """Flat inputs (n, V) -> (n, H, W) images (a (1, V) strip when V is not an image)."""
    x = x.detach().float().cpu()
    return x.reshape(x.shape[0], *image_shape(input_shape, x[0].numel())[:2]).numpy()


def plot_filters(
    weight: torch.Tensor, input_shape: Sequence[int], path: str | Path, title: str = "first-layer filters"
) -> np.ndarray:
    """Each hidden unit's incoming weights W[j] (V,) as an image, from W (H, V); returns (H, h, w)."""
    return plot_weights(as_images(weight, input_shape), path, title)


def _image_grid(rows: Sequence[np.ndarray], labels: Sequence[str], path: str | Path, title: str) -> None:
    """One row of grey tiles per entry of ``rows`` (each (n, h, w) in [0, 1]), drawn as a single
    mosaic (one ``imshow``: fast for many tiles) with a row label on the left."""
    h, w = rows[0].shape[1:3]
    cols = max(len(r) for r in rows)
    mosaic = np.full((len(rows) * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
    inches_per_pixel = min(0.25, 14 / mosaic.shape[1])
    fig, ax = plt.subplots(figsize=(inches_per_pixel * mosaic.shape[1] + 1.5, inches_per_pixel * mosaic.shape[0] + 0.8))
    ax.imshow(np.clip(mosaic, 0, 1), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(rows))], labels)
    ax.set_xticks([])
    ax.set_title(title)
    save_figure(fig, path)


def plot_reconstructions(
    inputs: torch.Tensor,
    reconstructions: torch.Tensor,
    input_shape: Sequence[int],
    path: str | Path,
    title: str = "inputs and reconstructions",
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, V) on the top row, their reconstructions (n, V) below; returns both as images."""
    rows = (as_images(inputs, input_shape), as_images(reconstructions, input_shape))
    _image_grid(rows, ("input", "recon."), path, title)
    return rows


def plot_samples(
    snapshots: Sequence[torch.Tensor],
    steps: Sequence[int],
    input_shape: Sequence[int],
    path: str | Path,
    title: str = "Gibbs chains",
) -> list[np.ndarray]:
    """Chains (columns) after each number of Gibbs ``steps`` (rows): snapshots[i] is (n, V)."""
    rows = [as_images(s, input_shape) for s in snapshots]
    _image_grid(rows, [f"{k} steps" for k in steps], path, title)
    return rows


def plot_pretrain_curves(layers: Sequence[dict], path: str | Path) -> dict[str, dict[str, list[float]]]:
    """One panel per monitored quantity, one line per layer over its pre-training epochs."""
    metrics = [m for m in CURVE_METRICS if any(m in layer["curve"][0] for layer in layers if layer["curve"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    drawn: dict[str, dict[str, list[float]]] = {}
    for ax, metric in zip(axes[0], metrics):
        drawn[metric] = {}
        for layer in layers:
            values = [record[metric] for record in layer["curve"] if metric in record]
            label = layer.get("name", f"layer {layer['layer'] + 1}")
            drawn[metric][label] = values
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "))
        ax.legend(fontsize="small")
    fig.suptitle("greedy layer-wise pre-training")
    save_figure(fig, path)
    return drawn


def plot_pretrain_run(run_dir: str | Path) -> list[Path]:
    """Draw curves, first-layer filters, reconstructions and (RBMs) Gibbs samples of a
    ``capas pretrain`` directory into ``run_dir/plots``; returns the PNG paths."""
    from capas.train.rundir import load_model, read_json, read_tensors

    run_dir = Path(run_dir)
    if not (run_dir / "pretrain.json").is_file():
        raise RunDirError(f"{run_dir} has no pretrain.json; point at a directory written by `capas pretrain --out`")
    settings = read_json(run_dir / "pretrain.json")
    network = load_model(run_dir)
    extras, _ = read_tensors(run_dir / "pretrain.safetensors")
    hidden = dense_layers(network)[: len(settings["layers"])]
    input_shape, out = settings["input_shape"], run_dir / "plots"
    paths = [out / "pretrain_curves.png", out / "filters.png", out / "reconstructions.png"]
    plot_pretrain_curves(settings["layers"], paths[0])
    plot_filters(hidden[0].weight, input_shape, paths[1])
    examples = extras["examples"]  # (n, V)
    with torch.no_grad():
        code = examples
        for layer in hidden:
            code = layer(code)  # up through every pre-trained layer
        for i, layer in reversed(list(enumerate(settings["layers"]))):
            code = F.linear(code, extras[f"decoder.{i}.weight"], extras[f"decoder.{i}.bias"])
            code = torch.sigmoid(code) if layer["decoder_act"] == "sigmoid" else code
    plot_reconstructions(
        examples,
        code,
        input_shape,
        paths[2],
        f"inputs and their reconstructions through {len(hidden)} pre-trained layers",
    )
    if settings["method"] == "rbm":
        dbn = dbn_from_run(settings, hidden, extras)
        generator = torch.Generator().manual_seed(settings["seed"])
        snapshots = dbn.chains(10, GIBBS_SNAPSHOTS, generator)
        paths.append(out / "samples.png")
        plot_samples(snapshots, GIBBS_SNAPSHOTS, input_shape, paths[-1], "DBN samples: Gibbs chains in the top RBM")
    return paths


def load_pretrained_dbn(run_dir: str | Path) -> DBN:
    """The DBN of an RBM pre-training directory (``capas pretrain --method rbm``): what its
    Gibbs samples come from; RunDirError for any other directory."""
    from capas.train.rundir import load_model, read_json, read_tensors

    run_dir = Path(run_dir)
    settings = read_json(run_dir / "pretrain.json") if (run_dir / "pretrain.json").is_file() else None
    if not isinstance(settings, dict) or settings.get("method") != "rbm":
        raise RunDirError(f"{run_dir} is not an RBM pre-training (capas pretrain --method rbm); it has no DBN")
    extras, _ = read_tensors(run_dir / "pretrain.safetensors")
    hidden = dense_layers(load_model(run_dir))[: len(settings["layers"])]
    return dbn_from_run(settings, hidden, extras)


def dbn_from_run(settings: dict, hidden: list, extras: dict[str, torch.Tensor]) -> DBN:
    """The DBN of an RBM pre-training run: Dense weights and biases + the saved visible biases."""
    first = settings["layers"][0]["kind"]
    dbn = DBN(
        [hidden[0].in_features, *(layer.out_features for layer in hidden)],
        "gaussian" if first == "rbm-gaussian" else "bernoulli",
    )
    with torch.no_grad():
        for i, (rbm, layer) in enumerate(zip(dbn.rbms, hidden)):
            rbm.weight.copy_(layer.weight)
            rbm.hidden_bias.copy_(layer.bias)
            rbm.visible_bias.copy_(extras[f"decoder.{i}.bias"])
    return dbn
