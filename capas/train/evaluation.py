"""Test-set evaluation of a trained model: loss plus classification or regression metrics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from capas.models.modes import eval_mode
from capas.models.protocol import training_forward
from capas.objectives import Loss
from capas.train.metrics import classification_metrics, regression_metrics


@torch.no_grad()
def model_outputs(model: nn.Module, x: Tensor, from_logits: bool, batch_size: int = 4096) -> Tensor:
    """Outputs (or logits) (N, K) of ``model`` on ``x (N, *)`` in eval mode, batch by batch."""
    forward = training_forward(model, from_logits)
    with eval_mode(model):
        return torch.cat([forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate_model(model: nn.Module, x: Tensor, y: Tensor, loss: Loss, batch_size: int = 4096) -> dict[str, Any]:
    """``test_loss`` and ``test_accuracy`` + per-class scores + confusion matrix, or
    ``test_mse/rmse/mae`` for regression; x (N, *), y (N,) labels or (N, k) targets."""
    outputs = model_outputs(model, x, loss.from_logits, batch_size)  # (N, K)
    metrics: dict[str, Any] = {"test_loss": float(loss(outputs, y))}
    if loss.num_classes is not None and not y.dtype.is_floating_point:
        details = classification_metrics(y, loss.predictions(outputs), loss.num_classes)
        return {**metrics, "test_accuracy": details.pop("accuracy"), **details}
    return {**metrics, **{f"test_{k}": v for k, v in regression_metrics(y, outputs.reshape(y.shape)).items()}}
