"""Measures of a GAN's samples that show mode collapse.

2-D toys (VEEGAN's and PacGAN's protocol): a generated sample is *high quality* when it
lies within 3 sigma of a mode's centre; a mode is *captured* when it holds at least one
high-quality sample; the *reverse KL* is KL(p_gen || uniform) of the histogram of the
high-quality samples over the modes: sum_k p_k log(K p_k), 0 when every mode holds the
same share, log K when one mode holds them all.

Images: no downloaded Inception network. capas trains a small classifier on the same data
(:func:`train_feature_classifier`); the *Fréchet distance* between real and generated
samples is that of Gaussians fitted to its penultimate layer's features,
||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)); the real-vs-real distance (two
disjoint real sets of the same size) is its floor. The classifier's decisions on generated
samples give the *class coverage* and the KL of their class histogram against uniform.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from capas.errors import TrainingError


@dataclass(frozen=True)
class ModeMeasures:
    """What :func:`mode_measures` found: ``modes`` captured of ``total_modes``,
    ``high_quality`` (fraction of samples within 3 sigma of a centre), ``reverse_kl``
    (inf with no high-quality sample) and ``histogram`` (high-quality samples per mode)."""

    modes: int
    total_modes: int
    high_quality: float
    reverse_kl: float
    histogram: list[int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def histogram_kl(counts: np.ndarray) -> float:
    """KL(p || uniform) = sum_k p_k log(K p_k) of a histogram of K bins (inf when empty)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return math.inf
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(len(counts) * p)))


def mode_measures(samples: Tensor | np.ndarray, centres: np.ndarray, sigma: float, radius: float = 3.0) -> ModeMeasures:
    """Modes captured, share of high-quality samples and reverse KL of ``samples`` (n, 2)
    against the mixture with ``centres`` (K, 2) and per-mode std ``sigma``: a sample is high
    quality within ``radius`` sigma of its nearest centre."""
    x = np.asarray(samples.detach().cpu() if isinstance(samples, Tensor) else samples, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != centres.shape[1] or len(x) == 0:
        raise TrainingError(f"mode measures need samples of shape (n, {centres.shape[1]}) with n >= 1, got {x.shape}")
    distances = np.linalg.norm(x[:, None, :] - centres[None, :, :], axis=2)  # (n, K)
    nearest = distances.argmin(axis=1)  # (n,)
    good = distances[np.arange(len(x)), nearest] <= radius * sigma  # (n,)
    counts = np.bincount(nearest[good], minlength=len(centres))  # (K,)
    return ModeMeasures(
        modes=int((counts > 0).sum()),
        total_modes=len(centres),
        high_quality=float(good.mean()),
        reverse_kl=histogram_kl(counts),
        histogram=counts.tolist(),
    )


# ---- images ---------------------------------------------------------------------------


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance of Gaussians fitted to features ``a`` (n, d) and ``b`` (m, d):
    ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)) (the last
    trace equals Tr((S_a S_b)^(1/2)) and needs only symmetric eigendecompositions)."""
    a, b = a.detach().double().flatten(1), b.detach().double().flatten(1)
    if len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        raise TrainingError(
            f"the Fréchet distance needs two feature sets (n >= 2, same width), got {a.shape}, {b.shape}"
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    middle = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return float(((mu_a - mu_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


@dataclass(frozen=True)
class ClassMeasures:
    """Class coverage of generated images: ``covered`` classes of ``num_classes`` (a class is
    covered when it gets at least ``min_share`` of the uniform share n / K), ``kl`` of the
    class histogram against uniform, and the ``histogram`` itself."""

    covered: int
    num_classes: int
    kl: float
    histogram: list[int]
    min_share: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def class_measures(predicted: Tensor, num_classes: int, min_share: float = 0.1) -> ClassMeasures:
    """Coverage and KL(p || uniform) of predicted classes (n,) over ``num_classes``."""
    counts = torch.bincount(predicted.detach().cpu().long(), minlength=num_classes).numpy()
    need = max(1.0, min_share * len(predicted) / num_classes)
    return ClassMeasures(int((counts >= need).sum()), num_classes, histogram_kl(counts), counts.tolist(), min_share)


def train_feature_classifier(
    x: Tensor, y: Tensor, num_classes: int, *, spec: str | None = None, epochs: int = 2, seed: int = 0
) -> Any:
    """A small classifier of images x (N, C, H, W) (or vectors) trained by capas itself on
    the one loop (Adam, batches of 64): the feature extractor of :func:`image_measures`.
    ``spec`` defaults to a LeNet-style net whose layer ``dense1`` (64 units) gives the features."""
    from capas.models import build
    from capas.tasks import for_model
    from capas.train.config import TrainConfig
    from capas.train.loop import Trainer

    shape = "x".join(map(str, x.shape[1:]))
    if spec is None:
        spec = (
            f"{shape} c5x5x16:same mp2 c5x5x32:same mp2 d64 {num_classes}"
            if x.dim() == 4
            else f"{shape}-128-64-{num_classes}"
        )
    network = build(spec, seed=seed, task="classification")
    config = TrainConfig.from_options(epochs=epochs, batch_size=64, seed=seed, grad_norms=False, warn_gradients=False)
    Trainer(for_model(network), config, quiet=True).fit((x, y))
    return network.eval()


def features(classifier: Any, x: Tensor, layer: str | None = None, batch: int = 1000) -> Tensor:
    """Penultimate-layer activations (n, d) of ``classifier`` (its last hidden dense layer
    unless ``layer`` names another), in batches."""
    if layer is None:
        layer = [name for name in classifier.layer_names() if name.startswith("dense")][-2]
    return torch.cat([classifier.hidden(x[i : i + batch], layer).flatten(1) for i in range(0, len(x), batch)])


def image_measures(
    classifier: Any, generated: Tensor, real: Tensor, real_other: Tensor, num_classes: int
) -> dict[str, Any]:
    """Fréchet distance of ``generated`` to ``real`` (same size, features of ``classifier``),
    the real-vs-real floor (``real`` against the disjoint ``real_other``), class coverage and
    class KL of the generated samples, and the classifier's coverage of ``real`` for reference."""
    f_gen, f_real, f_other = (
        features(classifier, generated),
        features(classifier, real),
        features(classifier, real_other),
    )
    predicted = torch.cat([classifier.predict(generated[i : i + 1000]) for i in range(0, len(generated), 1000)])
    return {
        "frechet": frechet_distance(f_real, f_gen),
        "frechet_real_vs_real": frechet_distance(f_real, f_other),
        "classes": class_measures(predicted, num_classes).to_json(),
    }
