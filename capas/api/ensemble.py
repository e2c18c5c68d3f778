"""Ensembles (course file 004: "un ensemble de GPU-MPCNNs"): the average of N networks.

N copies of one spec are trained from different seeds (different initial weights,
shuffles and dropout masks, on the same split), and the ensemble predicts by averaging
their class probabilities (classification) or outputs (regression). Its gain is its test
accuracy (or MSE) against the members' mean: averaging cancels the members' independent
errors, so the gain grows with how differently they err.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from capas.api.fit import FitResult, fit
from capas.errors import CapasError


@dataclass
class EnsembleResult:
    """The members, each member's test score, and the ensemble's on the same test split.
    ``metric`` is ``test_accuracy`` (higher is better) or ``test_mse`` (lower is better)."""

    members: list[FitResult]
    metric: str
    member_scores: list[float]
    score: float
    outputs: torch.Tensor  # the averaged test outputs: (N, K) probabilities or (N, K) values

    @property
    def gain(self) -> float:
        """How much better the ensemble is than its average member (positive: better)."""
        mean = sum(self.member_scores) / len(self.member_scores)
        return self.score - mean if self.metric == "test_accuracy" else mean - self.score

    def summary(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "members": self.member_scores,
            "member_mean": sum(self.member_scores) / len(self.member_scores),
            "ensemble": self.score,
            "gain": self.gain,
        }


def ensemble(spec: str, data: Any, n: int = 5, seeds: Sequence[int] | None = None, **options: Any) -> EnsembleResult:
    """Train ``n`` networks of ``spec`` on ``data`` (seeds 0..n-1 unless given) and average them."""
    from capas.data import load

    seeds = list(range(n)) if seeds is None else list(seeds)
    if len(seeds) < 2:
        raise CapasError(f"an ensemble needs at least 2 members, got {len(seeds)}; raise n")
    if isinstance(data, str):
        data = load(data)  # one split for every member, so their test sets agree
    members = [fit(spec, data, seed=seed, quiet=True, **options) for seed in seeds]
    x, y = data.x_test, data.y_test
    classification = data.task == "classification"
    outputs = []
    with torch.no_grad():
        for member in members:
            model = member.model.eval()
            inputs = x.to(next(model.parameters()).device, next(model.parameters()).dtype)
            out = model.predict_proba(inputs) if classification else model(inputs)
            outputs.append(out.double().cpu())
    mean = torch.stack(outputs).mean(dim=0)
    if classification:
        metric = "test_accuracy"
        scores = [float((o.argmax(1) == y).double().mean()) for o in outputs]
        score = float((mean.argmax(1) == y).double().mean())
    else:
        metric = "test_mse"
        target = y.double().reshape(mean.shape)
        scores = [float((o - target).square().mean()) for o in outputs]
        score = float((mean - target).square().mean())
    return EnsembleResult(members, metric, scores, score, mean)
