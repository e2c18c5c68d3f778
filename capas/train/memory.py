"""The memory a fit will need, estimated before the first step and refused when it cannot fit.

A model whose weights fit can still fail at the first step: its gradients take as much
again, Adam keeps two more copies, and every layer's outputs are kept for the backward
pass, once per sample of the batch. ``MemoryError`` there (or the OOM killer) would come
after the data had loaded and the run directory was written; the estimate comes first.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from capas.errors import TrainingError
from capas.limits import check_fits, format_bytes

#: per-parameter tensors each optimizer keeps (L-BFGS: its default history of 100 pairs)
OPTIMIZER_SLOTS = {
    "sgd": 0,
    "momentum": 1,
    "nesterov": 1,
    "adagrad": 1,
    "rmsprop": 1,
    "adafactor": 1,
    "adadelta": 2,
    "adam": 2,
    "adamw": 2,
    "adamax": 2,
    "nadam": 2,
    "radam": 2,
    "rprop": 2,
    "asgd": 2,
    "lbfgs": 202,
}
#: what each activation element costs in a training step: the output kept for backward and its gradient
ACTIVATION_COPIES = 2


def optimizer_slots(name: str, momentum: float | None = None) -> int:
    """Parameter-sized state tensors of optimizer ``name`` (2 for a name not listed)."""
    slots = OPTIMIZER_SLOTS.get(str(name).lower(), 2)
    return slots + 1 if name == "sgd" and momentum else slots


def activation_elements(model: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """A rough count of the values one sample leaves in the layers' outputs, read from the
    modules alone (no forward pass: a user's hooks and counters see nothing): each linear
    layer's units, each convolution's maps at the input's spatial size (an upper bound when
    strides and pooling shrink them), plus the input itself."""
    spatial = math.prod(sample_shape[1:]) if len(sample_shape) > 1 else 1
    total = math.prod(sample_shape)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            total += module.out_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            total += module.out_channels * spatial
    return total


def training_bytes(
    model: nn.Module, optimizer: str, momentum: float | None, batch: int, sample_shape: tuple[int, ...] | None
) -> dict[str, int]:
    """Bytes a training step adds to the weights: gradients, optimizer state and activations
    of a ``batch`` of samples of ``sample_shape`` (None: not estimated)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in trainable)
    itemsize = trainable[0].element_size() if trainable else 4
    per_sample = activation_elements(model, sample_shape) if sample_shape is not None else 0
    return {
        "gradients": weights,
        "optimizer state": weights * optimizer_slots(optimizer, momentum),
        "activations": per_sample * batch * itemsize * ACTIVATION_COPIES,
    }


def available_on(device: torch.device) -> int | None:
    """Free memory of ``device`` (CUDA: the driver's count; CPU: the system's; else None)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type == "cpu":
        from capas.limits import available_memory

        return available_memory()
    return None


def check_training_memory(model: nn.Module, config: Any, data: Any, device: torch.device) -> None:
    """TrainingError when the step's gradients, optimizer state and activations (the weights
    are already allocated) would exceed the free memory of ``device``."""
    x = getattr(data, "x_train", None)
    if x is None or len(x) == 0:
        batch, sample_shape = 0, None
    else:
        size = config.batch_size
        batch = len(x) if size == "full" else min(int(size), len(x))
        sample_shape = tuple(x.shape[1:])
    parts = training_bytes(model, config.optimizer, config.momentum, batch, sample_shape)
    needed = sum(parts.values())
    detail = ", ".join(f"{name} {format_bytes(n)}" for name, n in parts.items() if n)
    check_fits(
        needed,
        f"training this model ({detail}; batches of {batch}) on {device}",
        "use a smaller model, a smaller --batch-size, or an optimizer with less state (sgd)",
        TrainingError,
        limit=available_on(device),
    )
