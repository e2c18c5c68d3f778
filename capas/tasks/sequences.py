"""What supervised training on sequences adds: masks, per-step losses and masked metrics.

A batch of right-padded sequences carries a ``mask (B, T)``, True at real steps
(``Batch.mask``, or, with ``mask_padding``, the trailing all-zero steps of ``x`` read as
padding: the convention of ``capas.data.sequences``' symbol sequences, whose real steps
are one-hot and so never all zero). The forward pass runs under
``capas.layers.recurrent.sequence_mask`` so recurrent layers and ``last`` see it, and
:class:`SequenceLoss` folds per-step outputs ``(B, T, K)`` and targets ``(B, T)`` /
``(B, T, K)`` to the real steps only: every loss and metric is a mean over real steps.
A many-to-one output ``(B, K)`` passes through unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from capas.errors import TrainingError
from capas.layers.recurrent import current_mask, sequence_mask
from capas.models.modes import eval_mode
from capas.models.protocol import training_forward
from capas.objectives import Loss
from capas.train.metrics import classification_metrics, regression_metrics


def padding_mask(x: Tensor) -> Tensor:
    """(B, T) bool: True up to each sequence's last step that is not all zero (x (B, T, *F))."""
    nonzero = x.flatten(2).abs().amax(dim=2) > 0  # (B, T)
    steps = torch.arange(1, x.shape[1] + 1, device=x.device)
    lengths = (nonzero * steps).amax(dim=1).clamp(min=1)  # (B,): index + 1 of the last real step
    return steps[None, :] <= lengths[:, None]


class SequenceLoss:
    """A task's ``Loss`` over per-step outputs: (B, T, K) and targets (B, T[, K]) folded to
    (N_real, K) under the current mask; everything else is the wrapped loss's."""

    def __init__(self, loss: Loss) -> None:
        self.inner = loss

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fold(self, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(outputs (N, K), targets (N[, K])) of the real steps; many-to-one outputs as they are."""
        if output.dim() != 3:
            return output, y
        batch, steps = output.shape[:2]
        flat_out = output.reshape(batch * steps, -1)
        flat_y = y.reshape(batch * steps, *y.shape[2:])
        mask = current_mask()
        if mask is None:
            return flat_out, flat_y
        keep = mask.reshape(-1).to(output.device)
        return flat_out[keep], flat_y[keep]

    def __call__(self, output: Tensor, y: Tensor) -> Tensor:
        return self.inner(*self.fold(output, y))

    def per_sample(self, output: Tensor, y: Tensor) -> Tensor:
        """(B,): a sequence's mean loss over its real steps."""
        if output.dim() != 3:
            return self.inner.per_sample(output, y)
        batch, steps = output.shape[:2]
        values = self.inner.per_sample(output.reshape(batch * steps, -1), y.reshape(batch * steps, *y.shape[2:]))
        mask = current_mask()
        weights = torch.ones(batch, steps, device=output.device) if mask is None else mask.to(output.dtype)
        return (values.reshape(batch, steps) * weights).sum(1) / weights.sum(1)

    def predictions(self, output: Tensor) -> Tensor:
        """Classes (B,) or, per step, (B, T)."""
        if output.dim() != 3:
            return self.inner.predictions(output)
        batch, steps = output.shape[:2]
        return self.inner.predictions(output.reshape(batch * steps, -1)).reshape(batch, steps)


def check_finite(x: Tensor | None, split: str) -> None:
    """TrainingError naming the first sequence and step of x (N, T, *F) that holds NaN or inf."""
    if x is None or not x.is_floating_point():
        return
    bad = ~torch.isfinite(x.flatten(2)).all(dim=2)  # (N, T)
    if bool(bad.any()):
        sample, step = (int(i) for i in bad.nonzero()[0])
        raise TrainingError(
            f"{split} sequence {sample} holds NaN or infinite values at time step {step}; fix or drop it"
        )


def masked_accuracy(predicted: Tensor, y: Tensor) -> Tensor:
    """0-dim share of correct predictions, over the real steps when they are per step."""
    correct = (predicted == y).float()
    mask = current_mask()
    if correct.dim() < 2 or mask is None:
        return correct.mean()
    mask = mask.to(correct.device, correct.dtype)
    return (correct * mask).sum() / mask.sum()


def batch_mask(x: Tensor, given: Tensor | None, mask_padding: bool) -> Tensor | None:
    """The mask a step uses: the batch's own, else the padding of x when asked for."""
    if given is not None:
        return given
    return padding_mask(x) if mask_padding and x.dim() >= 3 else None


@torch.no_grad()
def evaluate_sequences(
    model: nn.Module, x: Tensor, y: Tensor, loss: SequenceLoss, batch_size: int, mask_padding: bool
) -> dict[str, Any]:
    """Test metrics of a sequence model over real steps: ``test_loss`` and classification
    scores (per-step labels folded) or ``test_mse/rmse/mae``."""
    forward = training_forward(model, loss.from_logits)
    outputs, targets, exact = [], [], []
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            mask = batch_mask(xb, None, mask_padding)
            with sequence_mask(mask):
                output = forward(xb)
                out, target = loss.fold(output, yb)
            outputs.append(out)
            targets.append(target)
            if loss.name == "binary_cross_entropy" and output.dim() == 3:
                exact.append(_exact_steps(output, yb, mask))
    out, target = torch.cat(outputs), torch.cat(targets)
    metrics: dict[str, Any] = {"test_loss": float(loss.inner(out, target))}
    if exact:
        steps = torch.cat([e for e, _ in exact])
        metrics["test_step_exact"] = float(steps.float().mean())
        metrics["test_sequence_exact"] = float(torch.cat([s for _, s in exact]).float().mean())
    if loss.from_logits and target.dtype.is_floating_point:
        return metrics  # multi-label logits: errors of logits against 0/1 targets would mean nothing
    if loss.num_classes is not None and not target.dtype.is_floating_point:
        details = classification_metrics(target, loss.inner.predictions(out), loss.num_classes)
        return {**metrics, "test_accuracy": details.pop("accuracy"), **details}
    scores = regression_metrics(target, out.reshape(target.shape))
    return {**metrics, **{f"test_{k}": v for k, v in scores.items()}}


def _exact_steps(logits: Tensor, y: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Multi-label steps (logits and 0/1 targets (B, T, K)): whether each real step's set
    {k: sigma(z_k) > 1/2} is exactly the target set, (N_real,), and whether every real step
    of each sequence is, (B,) (embedded Reber: every next symbol predicted legally)."""
    right = ((logits > 0) == (y > 0.5)).all(dim=2)  # (B, T)
    real = torch.ones_like(right) if mask is None else mask.to(right.device)
    return right[real], (right | ~real).all(dim=1)
