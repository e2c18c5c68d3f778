"""k-fold cross-validation of a spec and training options, over a small grid of options.

The course chooses hyper-parameters by cross-validation: the training data is cut into k
folds; each fold is held out once while a network trains on the other k-1; the score of a
setting is the mean over the k held-out folds, and its spread (the N-1 standard deviation
across folds) says how much of a difference between two settings is noise.

Folds are stratified for classification (each keeps the class proportions) and drawn with
the seed. Only the dataset's training portion is cut (its test split stays unseen), and a
dataset that is standardised is re-standardised on each fold's training part alone, so no
statistic of a held-out fold leaks into the network that is scored on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from capas import defaults
from capas.errors import TrainingError

#: grid keys that are not TrainConfig fields
MODEL_KEYS = ("model", "act")


@dataclass
class CVResult:
    """One setting (``options``) and its held-out metrics per fold."""

    options: dict[str, Any]
    folds: list[dict[str, float]] = field(default_factory=list)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """``{metric: {"mean", "std", "folds"}}`` for every scalar metric (std: N-1 across folds)."""
        names = [name for name in self.folds[0] if all(name in fold for fold in self.folds)]
        summary = {}
        for name in names:
            values = np.array([fold[name] for fold in self.folds], dtype=np.float64)
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            summary[name] = {"mean": float(values.mean()), "std": std, "folds": values.tolist()}
        return summary

    def score(self) -> float:
        """What ranks settings: mean accuracy, else minus the mean loss."""
        metrics = self.metrics()
        if "accuracy" in metrics:
            return metrics["accuracy"]["mean"]
        return -metrics["loss"]["mean"]

    def to_json(self) -> dict[str, Any]:
        return {"options": self.options, "metrics": self.metrics()}


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    """``["lr=0.01,0.003", "model=64-32-10|64-10"]`` -> ``{"lr": [0.01, 0.003], "model": [...]}``;
    values are TOML-typed, separated by ``,`` (or ``|`` when a value holds commas)."""
    from capas.api.recipes import parse_value
    from capas.train.config import TrainConfig

    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise TrainingError(f"--grid expects key=v1,v2 (e.g. lr=0.01,0.003), got {pair!r}")
        if key not in MODEL_KEYS and key not in TrainConfig.model_fields:
            raise TrainingError(
                f"unknown --grid key {key!r}; use model, act or a training option ({', '.join(TrainConfig.model_fields)})"
            )
        if key in grid:
            raise TrainingError(f"--grid {key} is given twice; list all its values in one --grid {key}=v1,v2")
        parts = raw.split("|") if "|" in raw else raw.split(",")
        grid[key] = [parse_value(part.strip()) for part in parts if part.strip()]
    return grid


def settings(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values (one empty setting for no grid)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def cross_validate(
    data: Any,
    model: str | None = None,
    *,
    folds: int = 5,
    seed: int = defaults.SEED,
    grid: dict[str, list[Any]] | None = None,
    act: str = defaults.ACTIVATION,
    data_options: dict[str, Any] | None = None,
    on_fold: Callable[[dict[str, Any], int, dict[str, float]], None] | None = None,
    **options: Any,
) -> list[CVResult]:
    """k-fold cross-validation of ``model`` (a spec; default ``<inputs>-64-<outputs>``) trained
    with ``options`` (``capas.fit``'s) on ``data`` (a name, a path or a ``Dataset``), for every
    setting of ``grid``; ``on_fold(setting, fold, metrics)`` is called after each fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    from capas.data import Dataset, Standardizer, load
    from capas.data.preprocess import standardize_splits

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise TrainingError(f"--folds must be an integer of at least 2, got {folds!r}")
    dataset = data if isinstance(data, Dataset) else load(data, seed=seed, validation=0.0, **(data_options or {}))
    from capas.api.seq2seq import is_pairs_data

    if is_pairs_data(dataset):
        raise TrainingError(
            f"cross-validation trains layer-spec networks, and {dataset.name} holds sequence pairs; train an "
            f"encoder-decoder on them with capas train --data {dataset.name} (or a seq2seq recipe)"
        )
    x = torch.cat([dataset.x_train, dataset.x_val])
    y = torch.cat([dataset.y_train, dataset.y_val])
    standardized = "standardize" in dataset.preprocessing
    if standardized:  # undo the whole-split statistics: each fold fits its own
        x = Standardizer.from_dict(dataset.preprocessing["standardize"]).inverse_transform(x.double()).to(x.dtype)
    classification = dataset.num_classes is not None
    if classification:
        counts = torch.bincount(y, minlength=dataset.num_classes)
        present = counts[counts > 0]
        if int(present.min()) < folds:
            raise TrainingError(
                f"the smallest class has {int(present.min())} training samples, fewer than --folds {folds}; "
                "use fewer folds"
            )
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        if len(x) < folds:
            raise TrainingError(f"{len(x)} training samples cannot be cut into {folds} folds; use fewer folds")
        splitter = KFold(folds, shuffle=True, random_state=seed)
    split = list(splitter.split(np.zeros(len(y)), y.numpy() if classification else np.zeros(len(y))))
    results = []
    for setting in settings(grid or {}):
        result = CVResult(setting)
        for k, (train, held) in enumerate(split, start=1):
            x_train, x_held = x[train], x[held]
            if standardized:
                (x_train, x_held), _ = standardize_splits([x_train, x_held])
            metrics = _fold(dataset, x_train, y[train], x_held, y[held], model, act, seed, {**options, **setting})
            result.folds.append(metrics)
            if on_fold is not None:
                on_fold(setting, k, metrics)
        results.append(result)
    return results


def _fold(
    dataset: Any,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_held: torch.Tensor,
    y_held: torch.Tensor,
    model: str | None,
    act: str,
    seed: int,
    options: dict[str, Any],
) -> dict[str, float]:
    """Train on one fold's training part, score on its held-out part: scalar metrics."""
    from capas.api.fit import build_for, default_spec, fit
    from capas.objectives import Loss
    from capas.train.evaluation import evaluate_model

    spec = options.pop("model", None) or model or default_spec(dataset)
    act = options.pop("act", act)
    network = build_for(str(spec), (x_train, y_train), loss=options.get("loss"), act=act, seed=seed)
    result = fit(network, (x_train, y_train), seed=seed, quiet=True, **options)
    name = options.get("loss") or getattr(result.model, "loss", None) or defaults.default_loss(dataset.task)
    bound = Loss(name, num_classes=dataset.num_classes)
    scores = evaluate_model(result.model, x_held, y_held, bound)
    flat = {}
    for key, value in scores.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[key.removeprefix("test_")] = float(value)
    return flat
