"""Class imbalance: class weights and resampling of the *training* split (imbalanced-learn).

Validation and test data are never resampled: they must keep the real class proportions
for the metrics to mean anything. Resampling is seeded, so a run (and its resume) sees the
same training set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from capas.errors import TrainingError

RESAMPLERS = ("none", "over", "under", "smote")


def class_weights(spec: str | Sequence[float], y: Tensor, num_classes: int) -> Tensor:
    """(K,) float32 weights: ``"balanced"`` gives ``N / (K * n_c)`` (scikit-learn's rule)."""
    if isinstance(spec, str):
        if spec != "balanced":
            raise TrainingError(f"class_weights must be 'balanced' or a list of {num_classes} numbers, got '{spec}'")
        counts = torch.bincount(y.cpu(), minlength=num_classes).double()  # (K,)
        if (counts == 0).any():
            missing = (counts == 0).nonzero().flatten().tolist()
            raise TrainingError(f"'balanced' class weights need every class in the training split; missing {missing}")
        return (len(y) / (num_classes * counts)).float()
    weights = torch.as_tensor(list(spec), dtype=torch.float32)
    if weights.shape != (num_classes,) or (weights < 0).any():
        raise TrainingError(f"class_weights needs {num_classes} non-negative numbers, got {list(spec)}")
    return weights


def resample(x: Tensor, y: Tensor, method: str, seed: int) -> tuple[Tensor, Tensor]:
    """Resampled copies of the training split; x (N, *shape), y (N,) -> (N', *shape), (N',).

    ``over`` repeats minority samples, ``under`` drops majority samples, ``smote``
    interpolates new minority samples between neighbours (k = min(5, smallest class - 1)).
    """
    if method == "none":
        return x, y
    if method not in RESAMPLERS:
        raise TrainingError(f"unknown resampling '{method}'; valid: {', '.join(RESAMPLERS)}")
    if y.dtype.is_floating_point:
        raise TrainingError("resampling needs class labels; it does not apply to regression targets")
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    labels = y.cpu().numpy()
    if method == "smote":
        smallest = int(np.bincount(labels)[np.bincount(labels) > 0].min())
        if smallest < 2:
            raise TrainingError("SMOTE needs at least 2 samples of every class; use resample='over' instead")
        sampler = SMOTE(k_neighbors=min(5, smallest - 1), random_state=seed)
    elif method == "over":
        sampler = RandomOverSampler(random_state=seed)
    else:
        sampler = RandomUnderSampler(random_state=seed)
    flat = x.cpu().reshape(len(x), -1).numpy()  # (N, D)
    new_x, new_y = sampler.fit_resample(flat, labels)
    x_out = torch.from_numpy(np.ascontiguousarray(new_x)).reshape(-1, *x.shape[1:])  # x's numpy dtype kept
    return x_out.to(x.dtype), torch.from_numpy(np.ascontiguousarray(new_y, dtype=np.int64))
