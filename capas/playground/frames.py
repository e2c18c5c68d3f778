"""What the page draws, computed from the network: heatmaps, weights, gradient bars, a
hidden layer's points.

A frame is one forward pass of the network over a grid of the input plane with a hook
on every top-level layer (removed right after), so each layer's units get their own
heatmap whatever the spec; heatmaps travel as base64 bytes (0..255), one byte a pixel.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from capas.diagnostics.gradients import GRAD_PREFIX, gradient_findings
from capas.layers.dense import Dense
from capas.models.modes import eval_mode
from capas.playground.settings import LIMITS

GRID = 40  # pixels a side of every heatmap
HIDDEN_POINTS = 400  # training points drawn in the hidden-representation panel


def encode(values: np.ndarray) -> str:
    """Values in [0, 1] (any shape) -> base64 of one byte each."""
    data = np.clip(np.round(np.nan_to_num(values) * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(data.tobytes()).decode("ascii")


def layer_outputs(network: nn.Module, x: Tensor) -> list[tuple[str, Tensor]]:
    """``(name, output (N, units))`` of every top-level layer whose output is a vector,
    from one forward pass of ``x (N, F)`` in eval mode."""
    names = network.layer_names()
    caught: list[tuple[str, Tensor]] = []
    handles = [
        layer.register_forward_hook(lambda module, inputs, output, name=name: caught.append((name, output)))
        for name, layer in zip(names, network.layers)
    ]
    try:
        with torch.no_grad(), eval_mode(network):
            network(x)
    finally:
        for handle in handles:
            handle.remove()
    return [(name, out.flatten(1)) for name, out in caught if isinstance(out, Tensor) and out.ndim >= 2]


def structure(network: nn.Module, features: list[str]) -> list[dict[str, Any]]:
    """The columns the page draws: the features, then each top-level layer (name, units, kind)."""
    columns = [{"name": "input", "units": len(features), "kind": "input", "labels": features}]
    x = torch.zeros(1, len(features))
    for name, out in layer_outputs(network, x):
        layer = network.layer(name)
        columns.append({"name": name, "units": int(out.shape[1]), "kind": type(layer).__name__.lower()})
    return columns


def output_map(final: Tensor, num_classes: int | None, target_range: list[float] | None) -> dict[str, Any]:
    """The output heatmap: per pixel the class and the confidence (0: undecided, 1: sure),
    or the regression output scaled to the targets' range."""
    if num_classes is None:
        low, high = target_range
        value = (final[:, 0].double().numpy() - low) / (high - low)
        return {"kind": "regression", "value": encode(value)}
    probs = final.double()
    if probs.shape[1] == 1:  # one sigmoid unit for two classes
        p = probs[:, 0]
        cls, conf = (p > 0.5).long(), (2 * p - 1).abs()
    else:
        top, cls = probs.max(dim=1)
        k = probs.shape[1]
        conf = (top - 1 / k) / (1 - 1 / k)
    return {"kind": "classes", "class": encode(cls.numpy() / 255.0), "confidence": encode(conf.numpy())}


def unit_maps(outputs: list[tuple[str, Tensor]]) -> dict[str, list[str]]:
    """Per layer, one heatmap per unit (at most ``max_heatmap_units`` in all), each scaled
    by its largest absolute value so that 0.5 is zero, 0 the most negative, 1 the most positive."""
    maps: dict[str, list[str]] = {}
    budget = LIMITS["max_heatmap_units"]
    for name, out in outputs:
        values = out[:, :budget].double()  # (G*G, U)
        budget -= values.shape[1]
        scale = values.abs().amax(dim=0).clamp_min(1e-12)  # (U,)
        scaled = (values / scale + 1) / 2
        maps[name] = [encode(scaled[:, u].numpy()) for u in range(values.shape[1])]
        if budget <= 0:
            break
    return maps


def dense_weights(network: nn.Module) -> dict[str, list[list[float]]]:
    """Every top-level Dense layer's weights (out, in), rounded, for the lines of the drawing."""
    return {
        name: np.round(layer.weight.detach().double().cpu().numpy(), 4).tolist()
        for name, layer in zip(network.layer_names(), network.layers)
        if isinstance(layer, Dense)
    }


def gradient_bars(record: dict[str, Any], epoch: int) -> tuple[dict[str, float], list[str]]:
    """The epoch's per-layer gradient norms ("speed of learning") and the diagnostics'
    findings on them (vanishing, exploding, tiny, huge), checked as GradientMonitor does."""
    norms = {key.removeprefix(GRAD_PREFIX): float(v) for key, v in record.items() if key.startswith(GRAD_PREFIX)}
    findings = gradient_findings(norms, epoch=epoch, early=epoch <= 10)
    return norms, [str(finding) for finding in findings]


def hidden_points(network: nn.Module, x: Tensor, layer: str) -> dict[str, Any]:
    """The first training points in ``layer``'s space, in 2-D: its units when it has one or
    two, else its first two principal components (SVD of the centred outputs)."""
    with torch.no_grad(), eval_mode(network):
        h = network.hidden(x[:HIDDEN_POINTS], layer).flatten(1).double().cpu()  # (N, U)
    if h.shape[1] == 1:
        h = torch.cat([h, torch.zeros_like(h)], dim=1)
        how = "1 unit"
    elif h.shape[1] == 2:
        how = "2 units"
    else:  # the top two eigenvectors of the (U, U) covariance: cheaper than an SVD of (N, U)
        centred = h.numpy() - h.numpy().mean(axis=0)
        variances, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
        share = variances[::-1][:2] / max(float(variances.sum()), 1e-30)
        h = torch.from_numpy(centred @ vectors[:, ::-1][:, :2])
        how = f"PCA: {share[0]:.0%} + {share[1]:.0%} of variance"
    return {"layer": layer, "how": how, "points": np.round(h.numpy(), 4).tolist()}
