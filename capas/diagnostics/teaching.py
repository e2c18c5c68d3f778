"""The course's teaching plots: each returns the numbers it draws, so tests can check them.

* :func:`plot_activations`: every activation f(z) and the derivative f'(z) the BackProp
  engine uses (files 001-003: why sigmoids saturate and ReLU does not).
* :func:`plot_hidden_lines`: each first-layer unit's line w1 x1 + w2 x2 + w0 = 0 over the
  input plane of a 2-D problem, with an arrow to the side where it is active (file 004).
* ``capas.api.experiments.lr_sweep`` / :func:`plot_lr_sweep`: the same network trained at several learning
  rates: too large diverges, too small is slow (files 001, 003).
* :func:`loss_along_line` / :func:`plot_loss_line`: the loss at (1 - a) theta_A + a theta_B,
  the straight line between two trained minima (files 000, 003).
* ``capas.api.experiments.seed_spread`` / :func:`plot_seed_spread`: the final losses over several seeds as the
  network grows: "local minima closer to the global ones as the network grows" (file 003).
* :func:`plot_params_accuracy`: test accuracy against parameters for deeper and wider nets
  (file 004, after Goodfellow et al. 2014).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from capas.diagnostics.figures import plt, save_figure
from capas.errors import CapasError
from capas.layers.activations import ACTIVATIONS, get_activation
from capas.layers.dense import Dense

#: activations drawn by default: the element-wise ones (softmax acts on a whole vector)
ELEMENTWISE = tuple(name for name in ACTIVATIONS if name != "softmax")


def activation_curves(
    names: Sequence[str] = ELEMENTWISE, low: float = -5.0, high: float = 5.0, points: int = 401
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """z (points,) and, per name, (f(z), f'(z)) with f' as the engine's ``derivative``."""
    z = torch.linspace(low, high, points, dtype=torch.float64)
    curves = {}
    for name in names:
        act = get_activation(name)
        if name == "softmax":
            raise CapasError("softmax acts on a whole vector, not one z; draw the element-wise activations")
        s = act(z)
        curves[name] = (s.numpy(), act.derivative(z, s).numpy())
    return z.numpy(), curves


def plot_activations(out: str | Path, names: Sequence[str] = ELEMENTWISE) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One panel per activation: f(z) solid, f'(z) dashed. Returns the curves drawn."""
    z, curves = activation_curves(names)
    cols = 4
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (name, (f, df)) in zip(axes.flat, curves.items()):
        ax.plot(z, f, label="f(z)")
        ax.plot(z, df, "--", label="f'(z)")
        ax.axhline(0, color="#999", lw=0.5)
        ax.axvline(0, color="#999", lw=0.5)
        ax.set_title(name)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    save_figure(fig, out)
    return curves


@dataclass(frozen=True)
class UnitLine:
    """A first-layer unit's boundary w1 x1 + w2 x2 + w0 = 0; ``normal`` (w1, w2) points to
    the side where its net input is positive."""

    unit: int
    w1: float
    w2: float
    w0: float

    def x2_at(self, x1: np.ndarray) -> np.ndarray:
        """x2 on the line for each x1 (the line must not be vertical: w2 != 0)."""
        return -(self.w1 * x1 + self.w0) / self.w2


def hidden_lines(model: nn.Module) -> list[UnitLine]:
    """The boundaries of the first layer of a network with two inputs."""
    first = next((m for m in model.modules() if isinstance(m, Dense)), None)
    if first is None or first.in_features != 2:
        raise CapasError(
            "hidden-unit lines need a network whose first layer is dense with 2 inputs (a 2-D problem such as "
            "xor, circles or moons)"
        )
    weight = first.weight.detach().double().cpu()
    bias = first.bias.detach().double().cpu() if first.bias is not None else torch.zeros(weight.shape[0])
    return [UnitLine(j, float(weight[j, 0]), float(weight[j, 1]), float(bias[j])) for j in range(weight.shape[0])]


def plot_hidden_lines(model: nn.Module, x: torch.Tensor, y: torch.Tensor, out: str | Path) -> list[UnitLine]:
    """The 2-D data coloured by class, with every first-layer unit's line and its side."""
    lines = hidden_lines(model)
    x = x.detach().cpu().numpy()
    low, high = x.min(axis=0) - 0.3, x.max(axis=0) + 0.3
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(x[:, 0], x[:, 1], c=np.asarray(y.cpu()), cmap="coolwarm", s=12, edgecolor="none")
    colours = plt.cm.tab10(np.arange(len(lines)) % 10)
    for line, colour in zip(lines, colours):
        if abs(line.w2) > 1e-12:
            xs = np.linspace(low[0], high[0], 2)
            ax.plot(xs, line.x2_at(xs), color=colour, label=f"unit {line.unit + 1}")
            anchor = np.array([xs.mean(), line.x2_at(xs.mean())])
        else:  # a vertical line x1 = -w0 / w1
            ax.axvline(-line.w0 / line.w1, color=colour, label=f"unit {line.unit + 1}")
            anchor = np.array([-line.w0 / line.w1, (low[1] + high[1]) / 2])
        normal = np.array([line.w1, line.w2]) / (math.hypot(line.w1, line.w2) or 1.0)
        ax.annotate("", xy=anchor + 0.4 * normal, xytext=anchor, arrowprops={"arrowstyle": "->", "color": colour})
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("first-layer units: w·x + w0 = 0 (arrow: active side)")
    ax.legend(fontsize=7, loc="upper right")
    save_figure(fig, out)
    return lines


@dataclass(frozen=True)
class SweepPoint:
    """One learning rate of a sweep: its per-epoch training losses and how it ended."""

    lr: float
    losses: tuple[float, ...]
    diverged: bool

    @property
    def final(self) -> float:
        return self.losses[-1] if self.losses else float("nan")


def plot_lr_sweep(points: Sequence[SweepPoint], out: str | Path) -> list[SweepPoint]:
    """Left: each rate's training curve; right: the final loss against the rate (log x)."""
    fig, (curves, final) = plt.subplots(1, 2, figsize=(11, 4))
    for point in points:
        label = f"lr {point.lr:g}" + (" (diverged)" if point.diverged else "")
        curves.plot(range(1, len(point.losses) + 1), point.losses, label=label)
    curves.set_xlabel("epoch")
    curves.set_ylabel("training loss")
    curves.set_yscale("log")
    curves.legend(fontsize=7)
    ok = [p for p in points if not p.diverged]
    final.plot([p.lr for p in ok], [p.final for p in ok], "o-")
    for p in points:
        if p.diverged:
            final.axvline(p.lr, color="#d62728", ls=":", lw=1)
    final.set_xscale("log")
    final.set_yscale("log")
    final.set_xlabel("learning rate (red: diverged)")
    final.set_ylabel("final training loss")
    save_figure(fig, out)
    return list(points)


def loss_along_line(
    model_a: nn.Module, model_b: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Any, steps: int = 21
) -> tuple[np.ndarray, np.ndarray]:
    """alphas (steps,) in [0, 1] and the mean ``loss`` on (x, y) of the network whose
    parameters are (1 - a) theta_A + a theta_B; A and B must have the same architecture.
    ``loss``: a loss name or a bound ``capas.objectives.Loss`` (a run's ``Run.loss``)."""
    from capas.objectives import Loss

    params_a, params_b = list(model_a.parameters()), list(model_b.parameters())
    if [p.shape for p in params_a] != [p.shape for p in params_b]:
        raise CapasError("the two models differ in architecture; interpolate between two runs of the same spec")
    if isinstance(loss, Loss):
        criterion = loss
    else:
        criterion = Loss(loss, num_classes=int(y.max()) + 1 if not torch.is_floating_point(y) else None)
    probe = copy.deepcopy(model_a).eval()
    forward = probe.training_module(criterion.from_logits) if hasattr(probe, "training_module") else probe
    alphas = np.linspace(0.0, 1.0, steps)
    losses = []
    with torch.no_grad():
        for alpha in alphas:
            for p, a, b in zip(probe.parameters(), params_a, params_b):
                p.copy_((1 - alpha) * a + alpha * b)
            losses.append(float(criterion(forward(x), y)))
    return alphas, np.array(losses)


def plot_loss_line(alphas: np.ndarray, losses: np.ndarray, out: str | Path) -> np.ndarray:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(alphas, losses, "o-")
    ax.set_xlabel("a   (0: minimum A, 1: minimum B)")
    ax.set_ylabel("loss of (1 - a) θA + a θB")
    ax.set_title("the loss on the straight line between two minima")
    save_figure(fig, out)
    return losses


def plot_seed_spread(spread: dict[str, list[float]], out: str | Path) -> dict[str, tuple[float, float]]:
    """A box per spec of its final losses; returns {spec: (mean, std)} as drawn in the labels."""
    stats = {spec: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0) for spec, v in spread.items()}
    fig, ax = plt.subplots(figsize=(1.6 * len(spread) + 3, 4))
    ax.boxplot(list(spread.values()))
    ax.set_xticks(range(1, len(spread) + 1), [f"{s}\n{m:.3f}±{d:.3f}" for s, (m, d) in stats.items()], fontsize=7)
    ax.set_ylabel("final test loss over seeds")
    ax.set_title("spread of the minima found as the network grows")
    save_figure(fig, out)
    return stats


def plot_params_accuracy(points: dict[str, Sequence[tuple[int, float]]], out: str | Path) -> None:
    """``points``: {family ('deeper', 'wider'...): [(parameters, test accuracy), ...]}, one
    line per family, parameters on a log axis."""
    if not points:
        raise CapasError("no runs to plot: give runs of deeper and wider networks")
    fig, ax = plt.subplots(figsize=(6, 4))
    for family, values in points.items():
        values = sorted(values)
        ax.plot([p for p, _ in values], [a for _, a in values], "o-", label=family)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy")
    ax.legend()
    ax.set_title("accuracy against parameters")
    save_figure(fig, out)
