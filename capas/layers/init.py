"""Weight initialisation per activation (course file 003, "Inicialización de pesos").

The scale of the initial weights decides whether signals and gradients keep their size
through many layers. ``fan_in``/``fan_out`` are the number of inputs/outputs of one unit
(a convolution counts ``channels * kernel area``).

===================  ==============================================  =====================
scheme               distribution                                    used for
===================  ==============================================  =====================
glorot_uniform       U[-r, r], r = sqrt(6 / (fan_in + fan_out))       linear, sigmoid, tanh,
                                                                     softsign, softmax
glorot_normal        N(0, s^2), s = sqrt(2 / (fan_in + fan_out))
glorot_uniform_x4    U[-4r, 4r], r as glorot_uniform                  opt-in for sigmoid
he_uniform           U[-r, r], r = sqrt(6 / fan_in) = sqrt(2)*sqrt(3/fan_in)  relu, leaky_relu, elu
he_normal            N(0, s^2), s = sqrt(2 / fan_in)
lecun_normal         N(0, s^2), s = sqrt(1 / fan_in)                  selu
normal               N(0, 0.01^2): the classic "small random values"
zeros                all zero (biases; never for hidden weights)
===================  ==============================================  =====================

About ``glorot_uniform_x4``: Glorot & Bengio (2010) derive the Glorot range for tanh,
whose slope at 0 is 1; the logistic sigmoid has slope 1/4 at 0, so the Theano deep
learning tutorials use 4 times that range for *sigmoid* units. The course's table (from
Géron's book) prints the 4x on the tanh row; we follow the original derivation and keep
plain Glorot as the default for sigmoid (as Keras and the course's logistic row do),
with the 4x variant available by name. The He schemes use fan_in (He et al. 2015, as
``torch.nn.init.kaiming_*``); the course table writes sqrt(2) times the Glorot range,
which is the same thing when fan_in == fan_out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from capas.errors import SpecError
from capas.layers.activations import canonical_name

Sampler = Callable[[Tensor, int, int, "torch.Generator | None"], None]


def _uniform(bound: Callable[[int, int], float]) -> Sampler:
    return lambda w, fan_in, fan_out, gen: w.uniform_(-bound(fan_in, fan_out), bound(fan_in, fan_out), generator=gen)


def _normal(std: Callable[[int, int], float]) -> Sampler:
    return lambda w, fan_in, fan_out, gen: w.normal_(0.0, std(fan_in, fan_out), generator=gen)


SCHEMES: dict[str, Sampler] = {
    "glorot_uniform": _uniform(lambda i, o: math.sqrt(6 / (i + o))),
    "glorot_normal": _normal(lambda i, o: math.sqrt(2 / (i + o))),
    "glorot_uniform_x4": _uniform(lambda i, o: 4 * math.sqrt(6 / (i + o))),
    "he_uniform": _uniform(lambda i, o: math.sqrt(6 / i)),
    "he_normal": _normal(lambda i, o: math.sqrt(2 / i)),
    "lecun_normal": _normal(lambda i, o: math.sqrt(1 / i)),
    "normal": _normal(lambda i, o: 0.01),
    "zeros": lambda w, fan_in, fan_out, gen: w.zero_(),
}

_INIT_FOR: dict[str, str] = {
    "linear": "glorot_uniform",
    "step": "glorot_uniform",
    "sgn": "glorot_uniform",
    "sigmoid": "glorot_uniform",
    "tanh": "glorot_uniform",
    "softsign": "glorot_uniform",
    "softmax": "glorot_uniform",
    "relu": "he_uniform",
    "leaky_relu": "he_uniform",
    "elu": "he_uniform",
    "selu": "lecun_normal",
}


def init_for(activation_name: str) -> str:
    """The default scheme for units with this activation (aliases accepted).

    ``"maxout"`` (a piecewise-linear unit with no fixed zero half) gets ``glorot_uniform``.
    """
    if activation_name == "maxout":
        return "glorot_uniform"
    return _INIT_FOR[canonical_name(activation_name)]


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` if it is known, else a SpecError listing the valid ones."""
    if scheme not in SCHEMES:
        raise SpecError(f"unknown init scheme '{scheme}'; valid schemes: {', '.join(SCHEMES)}")
    return scheme


def initialize_(
    weight: Tensor, scheme: str, fan_in: int, fan_out: int, generator: torch.Generator | None = None
) -> Tensor:
    """Fill ``weight`` in place with ``scheme`` for units of ``fan_in`` inputs and
    ``fan_out`` outputs; returns ``weight``. ``generator`` makes it reproducible alone."""
    sample = SCHEMES[check_scheme(scheme)]
    if fan_in < 1 or fan_out < 1:
        raise SpecError(f"fan_in and fan_out must be positive, got {fan_in} and {fan_out}")
    with torch.no_grad():
        sample(weight, fan_in, fan_out, generator)
    return weight
