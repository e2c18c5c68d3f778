"""TensorFlow Playground's datasets and input features, as registry datasets.

The course sends students to TensorFlow Playground (file 001, "Selección del factor de
aprendizaje"); ``capas playground`` reproduces it. Its problems live here, in the data
registry (``playground`` for classes, ``playground-regression``), so that the run a
playground session exports is reloaded by ``capas evaluate`` and retrained by
``capas train --data playground --data-option problem=spiral ...``.

The generators follow TensorFlow Playground's ``dataset.ts``: points in the square
[-6, 6]^2 (radius 5 for the classification problems), ``noise`` in [0, 0.5] as a share
of that scale. Beyond it, the classification problems take ``classes`` > 2 (spiral arms,
rings, Gaussian blobs on a circle, XOR's quadrants). ``features`` picks the network's
inputs from TensorFlow Playground's seven: x1, x2, x1^2, x2^2, x1*x2, sin x1, sin x2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from capas.data.formats import Arrays
from capas.errors import DataError
from capas.limits import check_fits

RADIUS = 5.0  # classification problems (dataset.ts)
DOMAIN = 6.0  # inputs are drawn in [-DOMAIN, DOMAIN]^2 and heatmaps span it
MAX_POINTS = 5000  # a playground problem is a picture: more points only slow it
MAX_CLASSES = 8

#: feature name -> values from raw points (N, 2); the order of TensorFlow Playground's panel
FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "x1": lambda p: p[:, 0],
    "x2": lambda p: p[:, 1],
    "x1sq": lambda p: p[:, 0] ** 2,
    "x2sq": lambda p: p[:, 1] ** 2,
    "x1x2": lambda p: p[:, 0] * p[:, 1],
    "sinx1": lambda p: np.sin(p[:, 0]),
    "sinx2": lambda p: np.sin(p[:, 1]),
}
CLASSIFICATION = ("circle", "xor", "gaussians", "spiral")
REGRESSION = ("plane", "gauss")


def parse_features(features: object) -> list[str]:
    """``"x1,x2,x1sq"`` (or a list of names) -> the names, checked, in the order given."""
    names = features.split(",") if isinstance(features, str) else features
    if not isinstance(names, (list, tuple)):
        raise DataError(f"option features must be names separated by commas, got {features!r}")
    names = [str(name).strip() for name in names if str(name).strip()]
    unknown = [name for name in names if name not in FEATURES]
    if unknown or not names:
        what = f"unknown feature {unknown[0]!r}" if unknown else "no features chosen"
        raise DataError(f"{what}; the features are: {', '.join(FEATURES)} (e.g. features='x1,x2')")
    if len(set(names)) != len(names):
        raise DataError(f"option features names a feature twice: {','.join(names)}")
    return names


def feature_matrix(points: np.ndarray, features: object) -> np.ndarray:
    """The network's inputs (N, F) float32 for raw points (N, 2): one column per feature."""
    names = parse_features(features)
    return np.stack([FEATURES[name](points) for name in names], axis=1).astype(np.float32)


def _check(n: object, noise: object, classes: object = 2) -> tuple[int, float, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 4 <= n <= MAX_POINTS:
        raise DataError(f"option n must be an integer in [4, {MAX_POINTS}], got {n!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 0.5:
        raise DataError(f"option noise must be a number in [0, 0.5] (a share of the radius), got {noise!r}")
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or not 2 <= classes <= MAX_CLASSES:
        raise DataError(f"option classes must be an integer in [2, {MAX_CLASSES}], got {classes!r}")
    check_fits(int(n) * 64, f"generating {n} points", "use a smaller n", DataError)
    return int(n), float(noise), int(classes)


def _circle(rng: np.random.Generator, n: int, noise: float, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rings: class c holds radii in its band of [0, RADIUS] (two classes: TensorFlow
    Playground's disc of radius 2.5 inside a ring from 3.5 to 5); labelled by the noisy radius."""
    y = rng.permutation(np.arange(n) % classes)  # (n,) balanced
    bands = np.linspace(0.0, RADIUS, classes + 1)  # (classes + 1,)
    width = bands[1] - bands[0]
    low = bands[y] + np.where(y > 0, 0.2 * width, 0.0)  # a gap between rings, as dataset.ts leaves
    radius = rng.uniform(low, bands[y + 1])  # (n,)
    angle = rng.uniform(0, 2 * np.pi, n)
    points = radius[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=1)  # (n, 2)
    noisy = points + rng.uniform(-RADIUS, RADIUS, (n, 2)) * noise
    labels = np.clip(np.searchsorted(bands, np.hypot(noisy[:, 0], noisy[:, 1]), side="right") - 1, 0, classes - 1)
    return points, labels


def _xor(rng: np.random.Generator, n: int, noise: float, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points pushed 0.3 away from the axes; class by the signs of the noisy point
    (two classes: x1 x2 >= 0 or not; four: the quadrant)."""
    if classes not in (2, 4):
        raise DataError(f"the xor problem has 2 classes (signs) or 4 (quadrants), not {classes}")
    points = rng.uniform(-RADIUS, RADIUS, (n, 2))
    points += np.where(points > 0, 0.3, -0.3)  # padding (dataset.ts)
    noisy = points + rng.uniform(-RADIUS, RADIUS, (n, 2)) * noise
    positive = noisy >= 0  # (n, 2)
    if classes == 2:
        return points, (positive[:, 0] != positive[:, 1]).astype(np.int64)
    return points, positive[:, 0] * 2 + positive[:, 1]


def _gaussians(rng: np.random.Generator, n: int, noise: float, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs of variance 0.5 .. 4 (by noise): two at (2, 2) and (-2, -2) as in
    TensorFlow Playground, more on a circle of radius 3."""
    y = rng.permutation(np.arange(n) % classes)
    if classes == 2:
        centres = np.array([[-2.0, -2.0], [2.0, 2.0]])
    else:
        angle = 2 * np.pi * np.arange(classes) / classes
        centres = 3.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (classes, 2)
    std = np.sqrt(0.5 + (4.0 - 0.5) * noise / 0.5)
    return centres[y] + std * rng.standard_normal((n, 2)), y


def _spiral(rng: np.random.Generator, n: int, noise: float, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Arms r = 5 t, angle 1.75 * 2 pi t + 2 pi c / classes, t = i / n_arm; uniform noise."""
    y = np.arange(n) % classes
    t = (np.arange(n) // classes) / max(1, int(np.ceil(n / classes)))  # (n,) in [0, 1)
    radius = RADIUS * t
    angle = 1.75 * 2 * np.pi * t + 2 * np.pi * y / classes
    points = radius[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=1)
    points += rng.uniform(-1, 1, (n, 2)) * noise
    order = rng.permutation(n)
    return points[order], y[order]


def _plane(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points; target (x1 + x2) / 10 of the noisy point, in [-1, 1] (clipped)."""
    points = rng.uniform(-DOMAIN, DOMAIN, (n, 2))
    noisy = points + rng.uniform(-DOMAIN, DOMAIN, (n, 2)) * noise
    return points, np.clip((noisy[:, 0] + noisy[:, 1]) / 10.0, -1, 1)


#: (x1, x2, sign) of TensorFlow Playground's six regression bumps
BUMPS = np.array([[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1], [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]], dtype=float)


def _gauss(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points; target: the strongest of six signed bumps, each 1 - distance / 2 (>= 0)."""
    points = rng.uniform(-DOMAIN, DOMAIN, (n, 2))
    noisy = points + rng.uniform(-DOMAIN, DOMAIN, (n, 2)) * noise
    distance = np.hypot(noisy[:, None, 0] - BUMPS[:, 0], noisy[:, None, 1] - BUMPS[:, 1])  # (n, 6)
    values = BUMPS[:, 2] * np.clip(1 - distance / 2, 0, 1)  # (n, 6)
    strongest = np.abs(values).argmax(axis=1)
    return points, values[np.arange(n), strongest]


def points(problem: str, n: int, noise: float, classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw points (n, 2) float64 and labels (n,) int64 (or targets (n,) float64) of ``problem``."""
    n, noise, classes = _check(n, noise, classes)
    rng = np.random.default_rng(seed)
    if problem in CLASSIFICATION:
        generate = {"circle": _circle, "xor": _xor, "gaussians": _gaussians, "spiral": _spiral}[problem]
        x, y = generate(rng, n, noise, classes)
        return x, y.astype(np.int64)
    if problem in REGRESSION:
        return {"plane": _plane, "gauss": _gauss}[problem](rng, n, noise)
    raise DataError(
        f"unknown playground problem {problem!r}; classification: {', '.join(CLASSIFICATION)}; "
        f"regression (dataset playground-regression): {', '.join(REGRESSION)}"
    )


def classification(
    problem: str = "spiral",
    n: int = 500,
    noise: float = 0.0,
    classes: int = 2,
    features: str = "x1,x2",
    seed: int = 0,
) -> Arrays:
    """A classification problem: inputs (n, F) of the chosen ``features``, labels (n,)."""
    if problem not in CLASSIFICATION:
        raise DataError(f"playground classification problems are {', '.join(CLASSIFICATION)}, not {problem!r}")
    x, y = points(problem, n, noise, classes, seed)
    return Arrays(feature_matrix(x, features), y)


def regression(
    problem: str = "plane", n: int = 500, noise: float = 0.0, features: str = "x1,x2", seed: int = 0
) -> Arrays:
    """A regression problem: inputs (n, F), targets (n, 1) float32 in [-1, 1]."""
    if problem not in REGRESSION:
        raise DataError(f"playground regression problems are {', '.join(REGRESSION)}, not {problem!r}")
    x, y = points(problem, n, noise, 2, seed)
    return Arrays(feature_matrix(x, features), y[:, None].astype(np.float32))
