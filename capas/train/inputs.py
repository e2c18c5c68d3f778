"""What ``fit`` accepts as data, turned into one shape: :class:`TrainingData`.

- a ``capas.data.Dataset`` (train / validation / test splits, task, classes);
- a dataset name (``"digits"``), loaded with ``capas.data.load(name, seed=seed)``;
- a tuple ``(x, y)`` or ``(x_train, y_train, x_val, y_val)`` of tensors or arrays;
- a ``torch.utils.data.DataLoader`` yielding ``(xb, yb)`` batches (its own batching), or
  ``(xb, yb, mask)`` for right-padded sequences (``capas.data.adapters.loader_batch``);
  ``(train_loader, val_loader)`` adds validation (val_* history, early stopping);
- a bare tensor or array ``x`` (N, ...): inputs without targets, for unsupervised tasks
  (autoencoders, RBMs).

Class labels are int64 ``(N,)``; float targets mean regression; no targets, unsupervised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from capas.errors import TrainingError
from capas.objectives import loss_info


@dataclass
class TrainingData:
    """Tensors of every split (val/test may be None) plus what the task needs to know."""

    x_train: Tensor | None
    y_train: Tensor | None
    x_val: Tensor | None = None
    y_val: Tensor | None = None
    x_test: Tensor | None = None
    y_test: Tensor | None = None
    num_classes: int | None = None
    loader: Any = None  # torch.utils.data.DataLoader, when the data came as one
    val_loader: Any = None  # its validation DataLoader, when given as (train_loader, val_loader)
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """``"classification"``, ``"regression"`` or ``"unsupervised"`` (inputs only)."""
        if self.y_train is None and self.loader is None:
            return "unsupervised"
        return "regression" if self.num_classes is None else "classification"

    @property
    def n_train(self) -> int:
        if self.loader is not None:
            return len(self.loader.dataset)
        return len(self.x_train)

    def describe(self) -> dict[str, Any]:
        """JSON-able record for config.json (enough to reload a registry dataset)."""
        return {
            "name": self.name,
            "options": self.options,
            "task": self.task,
            "num_classes": self.num_classes,
            "preprocessing": self.preprocessing,
        }


def _tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TrainingError(f"{what} must be a torch tensor or numpy array, got {type(value).__name__}")


def _labels_or_targets(y: Tensor) -> Tensor:
    """Float targets -> (N, k) regression targets; integer labels (N,) or (N, 1) -> (N,) int64."""
    if y.dtype.is_floating_point:
        return y if y.ndim > 1 else y.unsqueeze(1)  # (N, k) regression targets
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.squeeze(1)  # a column of labels
    if y.ndim != 1:
        raise TrainingError(
            f"integer targets must be class labels of shape (N,), got {tuple(y.shape)}; "
            "pass labels (e.g. y.argmax(1) of one-hot rows) or float targets for regression"
        )
    if y.numel() and int(y.min()) < 0:
        raise TrainingError(f"class labels must be 0..K-1, got {int(y.min())}; shift them to start at 0")
    return y.long()


def check_targets(y: Tensor | None, loss: str, output_shape: tuple[int, ...] | None) -> None:
    """Float targets are regression targets: refuse them for a loss that needs class labels
    (cross-entropy) and when their width differs from the model's outputs, rather than let
    torch fail on a shape or a dtype. Whole-number floats are most likely labels that lost
    their integer dtype, so the error suggests ``y.long()``."""
    if y is None or not y.dtype.is_floating_point:
        return
    labels = y.numel() > 0 and bool((y == y.round()).all())
    hint = "if they are class labels, pass integer labels (y.long())"
    if not loss_info(loss).regression_ok:
        raise TrainingError(
            f"loss {loss} needs integer class labels, but the targets are {str(y.dtype).removeprefix('torch.')} "
            f"(float targets mean regression); {hint}, or use a regression loss such as mse"
        )
    if output_shape is not None and len(output_shape) == 1 and y.ndim == 2 and y.shape[1] != output_shape[0]:
        fix = hint if labels else f"end the model spec with -{y.shape[1]}"
        raise TrainingError(
            f"the float targets have {y.shape[1]} column(s) (regression) but the model has {output_shape[0]} "
            f"outputs; {fix}"
        )


def _infer_classes(*ys: Tensor | None) -> int | None:
    present = [y for y in ys if y is not None and y.numel()]
    if not present or present[0].dtype.is_floating_point:
        return None
    return int(max(int(y.max()) for y in present)) + 1


def as_training_data(data: Any, *, seed: int = 0) -> TrainingData:
    """Normalise ``data`` (see the module docstring) into :class:`TrainingData`."""
    from torch.utils.data import DataLoader

    if isinstance(data, str):
        from capas.data import load

        data = load(data, seed=seed)
    if isinstance(data, DataLoader):
        return TrainingData(None, None, loader=data, num_classes=None)
    if isinstance(data, (tuple, list)) and any(isinstance(part, DataLoader) for part in data):
        if len(data) != 2 or not all(isinstance(part, DataLoader) for part in data):
            raise TrainingError(
                "DataLoaders come alone (training) or as (train_loader, val_loader); "
                f"got {', '.join(type(part).__name__ for part in data)}"
            )
        return TrainingData(None, None, loader=data[0], val_loader=data[1], num_classes=None)
    if hasattr(data, "x_train") and hasattr(data, "y_test"):
        empty_val = data.x_val is None or len(data.x_val) == 0
        return TrainingData(
            data.x_train,
            data.y_train,
            None if empty_val else data.x_val,
            None if empty_val else data.y_val,
            data.x_test if len(data.x_test) else None,
            data.y_test if len(data.x_test) else None,
            num_classes=data.num_classes,
            name=data.name,
            options=dict(data.options),
            preprocessing=dict(data.preprocessing),
        )
    if isinstance(data, (Tensor, np.ndarray)):  # inputs alone: unsupervised learning
        x = _tensor(data, "data")
        if x.dim() == 0 or len(x) == 0:
            raise TrainingError(
                f"the training inputs have no samples (shape {tuple(x.shape)}); give x of shape (N, ...)"
            )
        return TrainingData(x if x.dtype.is_floating_point else x.float(), None)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        tensors = [_tensor(v, f"data[{i}]") for i, v in enumerate(data)]
        xs, ys = tensors[0::2], [_labels_or_targets(y) for y in tensors[1::2]]
        for x, y in zip(xs, ys):
            if len(x) != len(y):
                raise TrainingError(f"inputs and targets differ in length: {len(x)} vs {len(y)} samples")
        if len(xs[0]) == 0:
            raise TrainingError("the training data has no samples")
        xs = [x.float() if not x.dtype.is_floating_point else x for x in xs]
        val = (xs[1], ys[1]) if len(xs) == 2 else (None, None)
        return TrainingData(xs[0], ys[0], *val, num_classes=_infer_classes(*ys))
    raise TrainingError(
        f"cannot train on {type(data).__name__}; give a capas Dataset, a dataset name, "
        "(x, y), (x_train, y_train, x_val, y_val), a torch DataLoader or inputs x alone (unsupervised)"
    )
