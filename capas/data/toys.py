"""Generated toy problems: 2-D classification sets and a sine series for forecasting.

Each generator is a pure function of its options and ``seed`` (numpy ``default_rng`` or
scikit-learn's ``random_state``), returning every sample in :class:`Arrays`; the registry
holds out the test and validation splits. 2-D sets: ``x`` (n, 2) float32, ``y`` (n,) int64.
"""

from __future__ import annotations

import numpy as np

from capas.data.formats import Arrays
from capas.errors import DataError
from capas.limits import check_fits

#: bytes one generated value costs at its peak: float64 draws, noise and the float32 copy
BYTES_PER_VALUE = 32


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"option {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _samples(n: object, minimum: int, values_per_sample: int) -> int:
    """``n`` checked as a count and against the memory its generation takes (the
    generators draw every sample at once), so n=10**12 is refused before numpy tries."""
    n = _count("n", n, minimum)
    check_fits(n * values_per_sample * BYTES_PER_VALUE, f"generating {n:,} samples", "use a smaller n", DataError)
    return n


def _non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise DataError(f"option {name} must be a number >= 0, got {value!r}")
    return float(value)


def _arrays(x: np.ndarray, y: np.ndarray) -> Arrays:
    return Arrays(x.astype(np.float32), y.astype(np.int64))


def xor(n: int = 400, noise: float = 0.2, seed: int = 0) -> Arrays:
    """Four Gaussian clusters at (+-1, +-1); class 1 where the two signs differ (x1 XOR x2)."""
    n, noise = _samples(n, 4, 3), _non_negative("noise", noise)
    rng = np.random.default_rng(seed)
    corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])  # (4, 2)
    which = rng.permutation(np.arange(n) % 4)  # (n,) balanced corners
    x = corners[which] + noise * rng.standard_normal((n, 2))  # (n, 2)
    y = (corners[which, 0] != corners[which, 1]).astype(np.int64)  # (n,)
    return _arrays(x, y)


def circles(n: int = 400, noise: float = 0.1, seed: int = 0) -> Arrays:
    """A circle of radius 0.5 (class 1) inside one of radius 1 (class 0): scikit-learn's make_circles."""
    from sklearn.datasets import make_circles  # scikit-learn only when these data are made

    x, y = make_circles(n_samples=_samples(n, 4, 3), noise=_non_negative("noise", noise), factor=0.5, random_state=seed)
    return _arrays(x, y)


def moons(n: int = 400, noise: float = 0.1, seed: int = 0) -> Arrays:
    """Two interleaving half circles: scikit-learn's make_moons."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=_samples(n, 4, 3), noise=_non_negative("noise", noise), random_state=seed)
    return _arrays(x, y)


def spirals(n: int = 400, noise: float = 0.05, turns: float = 1.5, seed: int = 0) -> Arrays:
    """Two interleaved spirals (Lang & Witbrock's benchmark), the second the first turned by pi.

    A point at radius r in [0.05, 1) sits at angle ``2 pi turns r``: class 0 at
    ``r (cos a, sin a)``, class 1 at ``-r (cos a, sin a)``; Gaussian noise of std ``noise``.
    """
    n, noise = _samples(n, 4, 3), _non_negative("noise", noise)
    if isinstance(turns, bool) or not isinstance(turns, (int, float)) or not turns > 0:
        raise DataError(f"option turns must be a number > 0, got {turns!r}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)  # (n,) balanced classes
    radius = rng.uniform(0.05, 1.0, n)  # (n,)
    angle = 2 * np.pi * turns * radius  # (n,)
    arm = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (n, 2)
    x = np.where(y[:, None] == 0, arm, -arm) + noise * rng.standard_normal((n, 2))  # (n, 2)
    return _arrays(x, y)


def gaussians(n: int = 400, noise: float = 1.0, centers: int = 3, seed: int = 0) -> Arrays:
    """``centers`` isotropic Gaussian blobs of std ``noise``, centres drawn in [-5, 5]^2 (make_blobs)."""
    centers = _count("centers", centers, 2)
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=_samples(n, centers, 3),
        centers=centers,
        cluster_std=_non_negative("noise", noise),
        center_box=(-5.0, 5.0),
        random_state=seed,
    )
    return _arrays(x, y)


def sine(n: int = 500, window: int = 20, noise: float = 0.05, period: float = 25.0, seed: int = 0) -> Arrays:
    """Windows of a noisy sine series, each predicting the value that follows it.

    The series is ``s_t = sin(2 pi t / period + phase) + noise * N(0, 1)`` with the phase
    drawn from ``seed``; sample i is ``x = s[i : i + window]`` shaped (1, window) (one
    channel, so Conv1d nets apply; dense layers flatten it) and ``y = s[i + window]`` (1,).
    Samples stay in time order: the registry holds out the *last* ones for test/validation.
    """
    window = _count("window", window, 1)
    n, noise = _samples(n, 4, 2 * window + 2), _non_negative("noise", noise)
    if isinstance(period, bool) or not isinstance(period, (int, float)) or not period > 0:
        raise DataError(f"option period must be a number > 0, got {period!r}")
    rng = np.random.default_rng(seed)
    t = np.arange(n + window)  # (n + window,)
    series = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) + noise * rng.standard_normal(t.shape)
    starts = np.arange(n)[:, None] + np.arange(window)[None, :]  # (n, window) indices
    x = series[starts][:, None, :]  # (n, 1, window)
    y = series[np.arange(n) + window][:, None]  # (n, 1)
    return Arrays(x.astype(np.float32), y.astype(np.float32))
