"""Preprocessing: standardisation, scaling, target codes and stratified splits.

The course normalises the input range to avoid "network paralysis" (saturated units whose
derivative g'(z) is nearly zero): every component j is shifted and scaled with the mean
and the N-1 standard deviation of the *training* set,

    mu_j = 1/N sum_i x_ij,   sigma_j^2 = 1/(N-1) sum_i (x_ij - mu_j)^2,   x^_j = (x_j - mu_j) / sigma_j,

and the same mu, sigma are applied to validation and test data (fitting them there would
leak information). Targets for saturating outputs are kept away from the asymptotes:
+-0.9 for tanh, 0.1/0.9 for the sigmoid.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from capas.errors import DataError
from capas.objectives.targets import TARGET_CODES  # (low, high) per kind: the slides' codes for saturating units

TargetKind = Literal["onehot", "tanh", "sigmoid"]


class Standardizer:
    """Per-feature standardisation fitted on the training split (mean, N-1 std).

    A feature that is constant on the training set (std 0, e.g. an always-blank border
    pixel) is only centred: its std is replaced by 1 so nothing is divided by zero.
    """

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> None:
        self.mean = mean  # (*features)
        self.std = std  # (*features)

    def fit(self, x: torch.Tensor) -> Standardizer:
        """Fit mean and N-1 standard deviation over the sample axis of ``x`` (N, *features)."""
        if x.shape[0] < 2:
            raise DataError(
                f"cannot standardise with {x.shape[0]} training sample(s): the N-1 standard "
                "deviation needs at least 2; use more data or standardize=False"
            )
        x64 = x.to(torch.float64)
        self.mean = x64.mean(dim=0)  # (*features)
        std = x64.std(dim=0, correction=1)  # (*features)
        self.std = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - mean) / std`` on the device of ``x``, in its dtype (float32 for
        integer pixels); shapes (N, *features)."""
        if self.mean is None or self.std is None:
            raise DataError("this Standardizer is not fitted yet; call fit(x_train) first")
        x = x if x.is_floating_point() else x.float()
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`transform`: ``x * std + mean``; shapes (N, *features)."""
        if self.mean is None or self.std is None:
            raise DataError("this Standardizer is not fitted yet; call fit(x_train) first")
        return x * self.std.to(x) + self.mean.to(x)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (nested lists shaped like one sample)."""
        if self.mean is None or self.std is None:
            raise DataError("this Standardizer is not fitted yet; call fit(x_train) first")
        return {"fitted_on": "train", "ddof": 1, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Standardizer:
        """Rebuild a fitted standardiser from :meth:`to_dict`'s record."""
        try:
            mean = torch.tensor(record["mean"], dtype=torch.float64)
            std = torch.tensor(record["std"], dtype=torch.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"not a standardiser record ({err}); expected keys 'mean' and 'std'") from err
        if mean.shape != std.shape:
            raise DataError(f"standardiser record has mean {tuple(mean.shape)} but std {tuple(std.shape)}")
        return cls(mean, std)

    def __repr__(self) -> str:
        shape = None if self.mean is None else tuple(self.mean.shape)
        return f"Standardizer(features={shape})"


def standardize_splits(xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Every split (N_i, *F) standardised with the first (training) split's statistics, so
    nothing is learnt from held-out data; returns the splits and the standardiser's record."""
    standardizer = Standardizer().fit(xs[0])
    return [standardizer.transform(x) for x in xs], standardizer.to_dict()


def scale_to_unit(x: torch.Tensor, max_value: float) -> torch.Tensor:
    """Map raw values in [0, max_value] (e.g. pixels 0..255) to [0, 1]; any shape."""
    if max_value <= 0:
        raise DataError(f"cannot scale by max_value={max_value}; it must be positive")
    return x / max_value


def one_hot(y: torch.Tensor, num_classes: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Class indices (N,) -> float32 codes (N, num_classes): ``high`` at the class, ``low``
    elsewhere; on the device of ``y``."""
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.dtype.is_floating_point:
        raise DataError(f"one_hot expects a 1-D tensor of class indices, got {y.dtype} {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"class indices must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}; check num_classes"
        )
    codes = torch.full((y.shape[0], num_classes), low, dtype=torch.float32, device=y.device)  # (N, K)
    return codes.scatter_(1, y.long().unsqueeze(1), high)  # (N, K), on the device of y


def encode_targets(y: torch.Tensor, num_classes: int, kind: TargetKind = "onehot") -> torch.Tensor:
    """Targets (N, num_classes) for the output units: 0/1, +-0.9 (tanh) or 0.1/0.9 (sigmoid)."""
    if kind not in TARGET_CODES:
        raise DataError(f"unknown target kind {kind!r}; choose one of {', '.join(TARGET_CODES)}")
    low, high = TARGET_CODES[kind]
    return one_hot(y, num_classes, low=low, high=high)


def stratified_split(
    y: np.ndarray, fraction: float, seed: int, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of the samples held out.

    Classification splits are stratified (each class keeps its proportion) and both parts
    come back in an order shuffled by ``seed``; with ``stratify=False`` (time series) the held-out part is the *last*
    ``fraction`` of the samples, in order, so overlapping windows do not leak.
    """
    n = len(y)
    indices = np.arange(n)
    if fraction == 0:
        return indices, indices[:0]
    if not 0 < fraction < 1:
        raise DataError(f"a split fraction must be in [0, 1), got {fraction}")
    if not stratify:
        n_held = int(np.ceil(fraction * n))
        if n_held >= n:
            raise DataError(f"holding out {fraction:.0%} of {n} samples leaves none to train on")
        return indices[: n - n_held], indices[n - n_held :]
    try:
        from sklearn.model_selection import train_test_split  # scikit-learn only when splitting

        keep, held = train_test_split(indices, test_size=fraction, random_state=seed, stratify=y, shuffle=True)
    except ValueError as err:
        raise DataError(
            f"cannot hold out a stratified {fraction:.0%} of {n} samples ({err}); "
            "use a larger fraction, more samples, or validation=0"
        ) from err
    return keep, held
