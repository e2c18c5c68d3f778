"""Per-time-step gradient norms ||dE/dh_t|| of recurrent layers: vanishing through time, drawn.

BackProp through time sends the error of step T back through every earlier state:
dE/dh_t = dE/dh_{t+1} * dh_{t+1}/dh_t (+ the error of step t's own output). For a
many-to-one net whose loss reads only h_T, ||dE/dh_t|| shrinks geometrically with T - t
in an Elman net whose recurrent Jacobian has norm < 1, and stays level far longer in an
LSTM, whose cell state carries the error through the forget gate (course file 002, "el
problema de la dependencia a largo plazo"). The norms are measured on a probe batch by
recording every state (``Recurrent.record``) and reading their gradients after one
backward pass of E = the sum of the samples' losses; each value is the mean over the
samples of ||dE_n/dh_t||_2. Only the bottom layer's forward direction is measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from capas.diagnostics.figures import plt, save_figure
from capas.errors import CapasError
from capas.layers.recurrent import recurrent_layers, sequence_mask
from capas.models.modes import eval_mode
from capas.models.network import Network
from capas.models.protocol import training_forward
from capas.objectives import Loss
from capas.tasks.sequences import SequenceLoss

PROBE = 256  # sequences in the probe batch


def _named_recurrent_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Recurrent layers by their Network names (``lstm1``), else their module paths."""
    found = recurrent_layers(model)
    if isinstance(model, Network):
        names = {id(layer): name for name, layer in model.named_layers(nested=True)}
        return [(names.get(id(layer), path), layer) for path, layer in found]
    return found


def not_applicable(model: nn.Module) -> str | None:
    """Why the time-gradient plot cannot be drawn for ``model``, or None."""
    return None if recurrent_layers(model) else "the model has no recurrent layer (elman, lstm, gru...)"


def time_gradient_norms(
    model: nn.Module, x: Tensor, y: Tensor, loss: Loss, mask: Tensor | None = None
) -> dict[str, list[float]]:
    """{layer name: [mean_n ||dE_n/dh_t|| for t = 1..T]} for x (B, T, F), y its targets."""
    layers = _named_recurrent_layers(model)
    if not layers:
        raise CapasError(f"time gradients: {not_applicable(model)}")
    sequence_loss = loss if isinstance(loss, SequenceLoss) else SequenceLoss(loss)
    forward = training_forward(model, sequence_loss.from_logits)
    for _, layer in layers:
        layer.record = True
    try:
        with eval_mode(model), torch.enable_grad(), sequence_mask(mask):
            output = forward(x)
            total = sequence_loss(output, y) * x.shape[0]  # E = sum of the samples' (mean) losses
            total.backward()
        norms = {}
        for name, layer in layers:
            grads = [
                state.grad if state.grad is not None else torch.zeros_like(state) for state in layer.states[0]
            ]  # T of (B, H)
            per_step = torch.stack(grads, dim=1).norm(dim=2).mean(dim=0)  # (T,)
            norms[name] = per_step.tolist()
    finally:
        for _, layer in layers:
            layer.record = False
            layer.records, layer.states = [], []
        model.zero_grad(set_to_none=True)
    return norms


def plot_time_gradients(series: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """One line per series of ||dE/dh_t|| against t, on a log scale."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, values in series.items():
        steps = range(1, len(values) + 1)
        axis.semilogy(steps, [max(v, 1e-30) for v in values], label=label)
    axis.set_xlabel("time step t")
    axis.set_ylabel("||dE/dh_t|| (mean over sequences)")
    axis.set_title(title or "gradient of the loss with respect to each step's state")
    axis.legend()
    return save_figure(figure, path)


def draw_time_gradients(model: nn.Module, data: Any, loss: Loss, out: Path) -> list[Path]:
    """The run's plot: the norms on the first ``PROBE`` test sequences, as PNG and JSON."""
    first = next(model.parameters())
    x = data.x_test[:PROBE].to(first.device, first.dtype)
    y = data.y_test[:PROBE].to(first.device)
    norms = time_gradient_norms(model, x, y, loss)
    out.mkdir(parents=True, exist_ok=True)
    record = out / "time-gradients.json"
    record.write_text(json.dumps({"probe": len(x), "norms": norms}, indent=1))
    return [plot_time_gradients(norms, out / "time-gradients.png"), record]
