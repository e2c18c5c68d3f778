"""A session's data: a registry problem (``playground``) or an uploaded 2-column CSV.

Both become :class:`SessionData`: the data the Trainer trains on (a registry ``Dataset``,
so an exported run is reloaded by ``capas evaluate``, or in-memory tensors for an upload),
the raw points the page draws, and the square of the input plane the heatmaps cover.
An upload is parsed from the text the page sent, in memory; nothing is written to disk.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from capas.data.playground import DOMAIN, feature_matrix
from capas.data.preprocess import stratified_split
from capas.playground.settings import LIMITS, LimitError, PlaygroundError, Settings

MAX_UPLOAD_CLASSES = 8


@dataclass
class Upload:
    """An uploaded CSV: raw points (N, 2), labels (N,) int64 or targets (N,) float, its name."""

    name: str
    points: np.ndarray
    targets: np.ndarray
    classification: bool

    @property
    def num_classes(self) -> int | None:
        return int(self.targets.max()) + 1 if self.classification else None


@dataclass
class SessionData:
    """What a session trains on and what the page draws."""

    train_data: Any  # a capas Dataset, or (x_train, y_train, x_val, y_val) tensors
    raw_train: np.ndarray  # (N, 2) points as drawn
    raw_val: np.ndarray  # (M, 2)
    y_train: np.ndarray  # (N,) labels or targets
    y_val: np.ndarray
    num_classes: int | None
    bounds: tuple[float, float, float, float]  # x1 min, x1 max, x2 min, x2 max of the heatmaps
    features: list[str]

    def grid(self, size: int) -> tuple[torch.Tensor, np.ndarray]:
        """Network inputs (size^2, F) over the heatmap square, row 0 at the top (x2 max),
        and the raw grid points (size^2, 2)."""
        x1 = np.linspace(self.bounds[0], self.bounds[1], size)
        x2 = np.linspace(self.bounds[3], self.bounds[2], size)  # top row first
        g1, g2 = np.meshgrid(x1, x2)
        raw = np.stack([g1.ravel(), g2.ravel()], axis=1)
        return torch.from_numpy(feature_matrix(raw, self.features)), raw

    def page(self) -> dict[str, Any]:
        """The points and their labels as the page draws them (rounded, JSON)."""
        return {
            "train": np.round(self.raw_train, 3).tolist(),
            "test": np.round(self.raw_val, 3).tolist(),
            "train_y": np.round(self.y_train, 4).tolist(),
            "test_y": np.round(self.y_val, 4).tolist(),
            "bounds": list(self.bounds),
            "classes": self.num_classes,
            "target_range": _target_range(self.y_train) if self.num_classes is None else None,
        }


def _target_range(y: np.ndarray) -> list[float]:
    low, high = float(np.min(y)), float(np.max(y))
    return [low, high] if high > low else [low - 1, high + 1]


def session_data(settings: Settings, upload: Upload | None) -> SessionData:
    """The session's data for ``settings`` (a registry problem, or ``upload``)."""
    if settings.problem == "upload":
        if upload is None:
            raise PlaygroundError("no CSV uploaded yet: choose a file with two input columns and a label")
        return _upload_data(settings, upload)
    from capas.data import load

    common = {"seed": settings.seed, "validation": settings.validation}
    options = settings.dataset_options()
    dataset = load(settings.dataset_name, **common, **options)
    raw = load(settings.dataset_name, **common, **{**options, "features": "x1,x2"})  # same rows, raw points
    y_train, y_val = (dataset.y_train.numpy(), dataset.y_val.numpy())
    if dataset.num_classes is None:
        y_train, y_val = y_train[:, 0], y_val[:, 0]
    return SessionData(
        dataset,
        raw.x_train.numpy(),
        raw.x_val.numpy(),
        y_train,
        y_val,
        dataset.num_classes,
        (-DOMAIN, DOMAIN, -DOMAIN, DOMAIN),
        list(settings.features),
    )


def _upload_data(settings: Settings, upload: Upload) -> SessionData:
    """Features of the uploaded points, split by ``settings.ratio`` (stratified for classes)."""
    n = len(upload.points)
    if upload.classification:
        keep, held = stratified_split(upload.targets, settings.validation, settings.seed)
    else:
        order = np.random.default_rng(settings.seed).permutation(n)
        n_val = int(round(settings.validation * n))
        keep, held = order[n_val:], order[:n_val]
    x = feature_matrix(upload.points, settings.features)  # (N, F)
    if upload.classification:
        y = torch.from_numpy(upload.targets.astype(np.int64))
    else:
        y = torch.from_numpy(upload.targets.astype(np.float32)[:, None])
    x = torch.from_numpy(x)
    train = (x[keep], y[keep], x[held], y[held])
    low, high = upload.points.min(axis=0), upload.points.max(axis=0)
    pad = np.maximum((high - low) * 0.1, 1e-3)
    bounds = (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])
    return SessionData(
        train,
        upload.points[keep],
        upload.points[held],
        upload.targets[keep],
        upload.targets[held],
        upload.num_classes,
        tuple(float(b) for b in bounds),
        list(settings.features),
    )


def parse_csv(name: str, text: str) -> Upload:
    """An uploaded CSV (``x1,x2,label``, an optional header line) parsed in memory.

    Integer labels make a classification problem (the distinct labels, sorted, become
    classes 0..K-1; at most 8), anything else a regression on the third column.
    """
    size = len(text.encode("utf-8"))
    if size > LIMITS["max_upload_bytes"]:
        raise LimitError(f"{name} is {size:,} bytes; uploads are limited to {LIMITS['max_upload_bytes']:,} bytes")
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise PlaygroundError(f"{name} holds no rows; give lines x1,x2,label")
    values = []
    for number, row in enumerate(rows, start=1):
        if len(row) != 3:
            raise PlaygroundError(f"{name} row {number} has {len(row)} columns; give exactly three: x1,x2,label")
        if not _numeric(row):
            raise PlaygroundError(f"{name} row {number} is not numeric: {','.join(row)[:60]!r}")
        values.append([float(cell) for cell in row])
    if len(values) > LIMITS["max_points"]:
        raise LimitError(f"{name} has {len(values)} rows; at most {LIMITS['max_points']} points in a session")
    if len(values) < 8:
        raise PlaygroundError(f"{name} has {len(values)} rows; give at least 8 points")
    table = np.asarray(values)  # (N, 3)
    if not np.isfinite(table).all():
        raise PlaygroundError(f"{name} holds inf or nan values; give finite numbers")
    points, labels = table[:, :2], table[:, 2]
    if np.all(labels == np.round(labels)):
        classes, codes = np.unique(labels, return_inverse=True)
        if len(classes) > MAX_UPLOAD_CLASSES:
            raise PlaygroundError(
                f"{name} has {len(classes)} distinct integer labels; at most {MAX_UPLOAD_CLASSES} classes "
                "(write the labels with a decimal point for a regression)"
            )
        if len(classes) < 2:
            raise PlaygroundError(f"{name} has a single label; give at least two classes")
        return Upload(name, points, codes.astype(np.int64), True)
    return Upload(name, points, labels, False)


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def upload_csv(upload: Upload, settings: Settings) -> str:
    """The uploaded points as the network sees them (its features, then the label): what
    an export ships next to the run, for ``capas train --data FILE.csv``."""
    x = feature_matrix(upload.points, settings.features)
    lines = [",".join([*settings.features, "label"])]
    for row, target in zip(x, upload.targets):
        label = str(int(target)) if upload.classification else f"{float(target):.9g}"
        lines.append(",".join(f"{float(v):.9g}" for v in row) + "," + label)
    return "\n".join(lines) + "\n"
