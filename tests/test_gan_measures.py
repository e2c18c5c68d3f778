"""Mode measures on hand-made sample sets, the Fréchet distance, class coverage and the toys."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from capas.data import load
from capas.data.gan_toys import SIGMAS, mode_centres
from capas.diagnostics.gan_measures import class_measures, frechet_distance, histogram_kl, mode_measures


def test_all_samples_in_one_mode_capture_one():
    centres = mode_centres("ring")
    samples = centres[3] + 0.005 * np.random.default_rng(0).standard_normal((500, 2))
    measures = mode_measures(samples, centres, SIGMAS["ring"])
    assert measures.modes == 1 and measures.total_modes == 8
    assert measures.high_quality == pytest.approx(float((np.linalg.norm(samples - centres[3], axis=1) <= 0.03).mean()))
    assert measures.reverse_kl == pytest.approx(math.log(8))
    assert measures.histogram[3] == round(measures.high_quality * 500)


def test_exact_centres_are_all_high_quality_and_uniform():
    centres = mode_centres("grid")
    measures = mode_measures(np.repeat(centres, 4, axis=0), centres, SIGMAS["grid"])
    assert (measures.modes, measures.high_quality, measures.reverse_kl) == (25, 1.0, 0.0)
    far = mode_measures(torch.full((10, 2), 1.0), centres, SIGMAS["grid"])  # 1 from every centre: > 3 x 0.05
    assert (far.modes, far.high_quality, far.reverse_kl) == (0, 0.0, math.inf)
    half = mode_measures(np.concatenate([centres[:1], centres[:1] + 1.0]), centres, SIGMAS["grid"])
    assert (half.modes, half.high_quality) == (1, 0.5)


def test_histogram_kl_against_its_formula():
    counts = np.array([3, 1, 0, 4])
    p = np.array([3, 1, 4]) / 8
    assert histogram_kl(counts) == pytest.approx(float(np.sum(p * np.log(4 * p))))


def test_toys_have_the_published_geometry():
    ring = load("ring", validation=0.0, n=4000)
    centres = mode_centres("ring")
    assert np.allclose(np.linalg.norm(centres, axis=1), 1.0) and len(centres) == 8
    x, y = ring.x_train.numpy(), ring.y_train.numpy()
    offsets = x - centres[y]
    assert offsets.std() == pytest.approx(0.01, rel=0.1)
    assert sorted({tuple(c) for c in mode_centres("grid")}) == [
        (a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)
    ]
    grid = load("grid", validation=0.0, n=4000)
    measures = mode_measures(grid.x_train, mode_centres("grid"), SIGMAS["grid"])
    assert measures.modes == 25 and measures.high_quality > 0.98 and measures.reverse_kl < 0.02


def test_frechet_distance_of_gaussians():
    """Equal covariances: the squared mean distance; against the closed form with scipy's sqrtm."""
    from scipy.linalg import sqrtm

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=generator, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64)) == pytest.approx(25.0)
    b = (
        torch.randn(3000, 3, generator=generator, dtype=torch.float64)
        @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 2.0, 0.3], [0.0, 0.0, 0.7]], dtype=torch.float64)
        + 1.0
    )
    ca, cb = np.cov(a.numpy().T), np.cov(b.numpy().T)
    mean = ((a.mean(0) - b.mean(0)) ** 2).sum().item()
    expected = mean + np.trace(ca + cb - 2 * np.real(sqrtm(ca @ cb)))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_class_coverage_and_kl():
    predicted = torch.tensor([0] * 50 + [1] * 45 + [2] * 4 + [3] * 1)
    measures = class_measures(predicted, 4)  # a class needs 10% of the uniform share (2.5 samples)
    assert (measures.covered, measures.histogram) == (3, [50, 45, 4, 1])
    assert measures.kl == pytest.approx(histogram_kl(np.array([50, 45, 4, 1])))
