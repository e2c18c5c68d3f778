"""The 2-D mixtures on which GAN papers count modes (VEEGAN, PacGAN's geometry).

- ``ring``: 8 Gaussians of standard deviation 0.01 centred on a circle of radius 1;
- ``grid``: 25 Gaussians of standard deviation 0.05 centred on {-4, -2, 0, 2, 4}^2.

Each sample picks a mode uniformly at random; its label is that mode's index (so the
registry's class balance is the mode balance). :func:`mode_centres` and :data:`SIGMAS`
give the geometry that ``capas.diagnostics.gan_measures`` scores generated samples against:
a sample is high quality within 3 sigma of a centre.
"""

from __future__ import annotations

import math

import numpy as np

from capas.data.formats import Arrays
from capas.data.toys import _non_negative, _samples
from capas.errors import DataError

#: each toy's standard deviation per mode (the published settings)
SIGMAS = {"ring": 0.01, "grid": 0.05}


def mode_centres(name: str) -> np.ndarray:
    """The (K, 2) centres of toy ``name``: 8 on the unit circle (angles 2 pi k / 8) or the 25
    points of {-4, -2, 0, 2, 4}^2 (row-major, x first)."""
    if name == "ring":
        angles = 2 * math.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if name == "grid":
        axis = np.arange(-4.0, 5.0, 2.0)
        return np.array([(a, b) for a in axis for b in axis])
    raise DataError(f"unknown GAN toy {name!r}; the toys are {', '.join(SIGMAS)}")


def _mixture(name: str, n: object, sigma: object, seed: int) -> Arrays:
    n, sigma = _samples(n, 1, 3), _non_negative("sigma", sigma)
    centres = mode_centres(name)  # (K, 2)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(centres), n)  # (n,)
    x = centres[which] + sigma * rng.standard_normal((n, 2))  # (n, 2)
    return Arrays(x.astype(np.float32), which.astype(np.int64))


def ring(n: int = 10000, sigma: float = SIGMAS["ring"], seed: int = 0) -> Arrays:
    """8 Gaussians (std ``sigma``) on the unit circle: x (n, 2), y (n,) the mode index."""
    return _mixture("ring", n, sigma, seed)


def grid(n: int = 10000, sigma: float = SIGMAS["grid"], seed: int = 0) -> Arrays:
    """25 Gaussians (std ``sigma``) on {-4, -2, 0, 2, 4}^2: x (n, 2), y (n,) the mode index."""
    return _mixture("grid", n, sigma, seed)
