"""Smaller or noisier training splits of a registry dataset, reproducible from a run's config.

Recipes train on the first N samples or with a share of wrong labels (Zhang et al.'s
random-label experiments); ``reload_dataset`` rebuilds exactly that data from the
``data`` record a run directory keeps, so plots of a saved run see what it trained on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from capas.data.registry import load
from capas.errors import CapasError


def adjust_training_split(data: Any, train_size: int | None = None, label_noise: float = 0.0) -> Any:
    """``data`` with only its first ``train_size`` training samples and ``label_noise`` of
    their labels replaced by a different class, drawn with ``data.options["seed"]``.

    Both are recorded in ``data.options`` (a run's config says what it trained on) and
    ``reload_dataset`` redoes them. Validation and test labels stay clean.
    """
    options = dict(data.options)
    x, y = data.x_train, data.y_train
    if train_size is not None and train_size < len(x):
        x, y, options["train_size"] = x[:train_size], y[:train_size], train_size
    if label_noise:
        if data.num_classes is None:
            raise CapasError("label_noise needs a classification dataset; remove it for regression data")
        generator = torch.Generator().manual_seed(int(options.get("seed", 0)))
        flip = torch.randperm(len(y), generator=generator)[: round(label_noise * len(y))]  # (F,)
        shift = torch.randint(1, data.num_classes, (len(flip),), generator=generator)  # never the same class
        y = y.clone()
        y[flip] = (y[flip] + shift) % data.num_classes
        options["label_noise"] = label_noise
    return replace(data, x_train=x, y_train=y, options=options)


def reload_dataset(description: dict[str, Any]) -> Any:
    """The dataset a run trained on, from its config's ``data`` record (``name`` and ``options``)."""
    options = dict(description.get("options") or {})
    train_size, label_noise = options.pop("train_size", None), options.pop("label_noise", 0.0)
    return adjust_training_split(load(description["name"], **options), train_size, label_noise)
