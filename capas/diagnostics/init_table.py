"""``capas summary SPEC --init``: the course's initialisation table next to each layer's
actual scheme (course file 003, "Inicialización de pesos", after Géron's book).

The slide's table gives, per activation, the uniform bound r of U[-r, r] and the normal
sigma, with n_in + n_out in every formula (logistic: r = sqrt(6 / (n_in + n_out)); tanh:
4 times that; ReLU: sqrt(2) times that). capas's defaults (``capas.layers.init``) follow
Glorot & Bengio (2010) and He et al. (2015) instead: plain Glorot for tanh and sigmoid (4x
on request), and He's fan_in-only formula for ReLU. :func:`init_rows` gives both numbers
for every layer, so the difference is visible on the network at hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.table import Table
from torch import nn

from capas.layers.dense import ActivatedLayer

#: the slide's rows: activation -> (uniform r, normal sigma) as functions of (n_in, n_out)
SLIDE = {
    "logistic": (lambda i, o: math.sqrt(6 / (i + o)), lambda i, o: math.sqrt(2 / (i + o))),
    "tanh": (lambda i, o: 4 * math.sqrt(6 / (i + o)), lambda i, o: 4 * math.sqrt(2 / (i + o))),
    "relu": (lambda i, o: math.sqrt(2) * math.sqrt(6 / (i + o)), lambda i, o: math.sqrt(2) * math.sqrt(2 / (i + o))),
}
_ROW_OF = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu", "leaky_relu": "relu", "elu": "relu"}

#: capas's schemes: name -> ("uniform" | "normal" | "constant", spread as a function of (fan_in, fan_out))
SPREAD = {
    "glorot_uniform": ("uniform", lambda i, o: math.sqrt(6 / (i + o))),
    "glorot_normal": ("normal", lambda i, o: math.sqrt(2 / (i + o))),
    "glorot_uniform_x4": ("uniform", lambda i, o: 4 * math.sqrt(6 / (i + o))),
    "he_uniform": ("uniform", lambda i, o: math.sqrt(6 / i)),
    "he_normal": ("normal", lambda i, o: math.sqrt(2 / i)),
    "lecun_normal": ("normal", lambda i, o: math.sqrt(1 / i)),
    "normal": ("normal", lambda i, o: 0.01),
    "zeros": ("constant", lambda i, o: 0.0),
}


@dataclass(frozen=True)
class InitRow:
    """One layer: its fans, the scheme capas used and its spread (r for uniform, sigma for
    normal), and the slide's r and sigma for its activation (None: the slide has no row)."""

    layer: str
    activation: str
    fan_in: int
    fan_out: int
    scheme: str
    distribution: str
    spread: float
    slide_r: float | None
    slide_sigma: float | None


def _fans(layer: nn.Module) -> tuple[int, int]:
    if hasattr(layer, "kernel_area"):
        return layer.in_channels * layer.kernel_area, layer.out_channels * layer.kernel_area
    return layer.in_features, layer.out_features


def init_rows(model: nn.Module) -> list[InitRow]:
    """One :class:`InitRow` per layer with weights and an activation (dense, convolution),
    named as ``Network.named_layers`` names them (``conv1``, ``res1.dense1``)."""
    rows = []
    named = model.named_layers(nested=True) if hasattr(model, "named_layers") else model.named_modules()
    for name, layer in named:
        if not isinstance(layer, ActivatedLayer) or not hasattr(layer, "weight") or layer.weight is None:
            continue
        if not (hasattr(layer, "in_features") or hasattr(layer, "kernel_area")):
            continue
        fan_in, fan_out = _fans(layer)
        scheme = layer.init_scheme
        distribution, spread = SPREAD[scheme]
        slide = SLIDE.get(_ROW_OF.get(layer.activation.name, ""))
        rows.append(
            InitRow(
                name,
                layer.activation.name,
                fan_in,
                fan_out,
                scheme,
                distribution,
                spread(fan_in, fan_out),
                slide[0](fan_in, fan_out) if slide else None,
                slide[1](fan_in, fan_out) if slide else None,
            )
        )
    return rows


def init_table(rows: list[InitRow]) -> Table:
    table = Table(
        title="weight initialisation: capas's scheme and the course's table",
        caption="r: bound of U[-r, r]; sigma: std of N(0, sigma^2). Course (file 003, Géron): logistic "
        "r = sqrt(6/(n_in+n_out)), tanh 4x, ReLU sqrt(2)x. capas follows Glorot & Bengio (4x belongs to "
        "the sigmoid: glorot_uniform_x4) and He (fan_in only).",
    )
    for column in ("layer", "activation", "fan_in", "fan_out", "scheme", "capas r / sigma", "course r", "course sigma"):
        table.add_column(column, justify="left" if column in ("layer", "activation", "scheme") else "right")
    for row in rows:
        mark = "r" if row.distribution == "uniform" else ("sigma" if row.distribution == "normal" else "")
        table.add_row(
            row.layer,
            row.activation,
            str(row.fan_in),
            str(row.fan_out),
            row.scheme,
            f"{mark} {row.spread:.4f}".strip(),
            "-" if row.slide_r is None else f"{row.slide_r:.4f}",
            "-" if row.slide_sigma is None else f"{row.slide_sigma:.4f}",
        )
    return table
