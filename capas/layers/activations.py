"""Activation functions g(z) and their derivatives g'(z), as in the course slides.

Each activation is a tiny ``nn.Module`` whose ``forward`` is the slide's formula and whose
``derivative(z, s)`` is g'(z) written with whichever of the pre-activation ``z`` or the
output ``s = g(z)`` is cheaper (sigmoid ``s(1-s)``, tanh ``1-s^2``): the explicit
BackProp engine calls it instead of autograd. Shapes: ``z`` and ``s`` are ``(N, *)``.

Names (``ACTIVATIONS``), with the few aliases ``get_activation`` also accepts:

=============  =====================================  ==============================
name           g(z)                                   aliases
=============  =====================================  ==============================
linear         z                                      identity, none
step           Heaviside: 1 if z >= 0 else 0          heaviside
sgn            sign: +1 if z >= 0 else -1             sign
sigmoid        1 / (1 + exp(-z))                      logistic
tanh           (e^z - e^-z) / (e^z + e^-z)
softsign       z / (1 + |z|)  (the slides' "rápida")  fast
softmax        exp(z_i) / sum_j exp(z_j) (axis 1)
relu           max(0, z)
leaky_relu     max(slope*z, z), slope=0.1              lrelu
elu            z if z > 0 else alpha (e^z - 1)
selu           scale * elu(z, alpha) (fixed consts)
=============  =====================================  ==============================

``step`` and ``sgn`` are the perceptron's threshold units: their derivative is 0 wherever
it exists (undefined at z = 0), so gradient descent cannot train them; the perceptron
rule (``capas.models.classic``) does. At z = 0 both take their upper value, so their
outputs are always two-valued. A single-option activation may be written
``"name:value"``, e.g. ``"leaky_relu:0.2"`` or ``"elu:0.5"``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from capas.errors import SpecError


class Activation(nn.Module, abc.ABC):
    """An elementwise (or, for softmax, per-row) nonlinearity with its derivative."""

    name: ClassVar[str]
    elementwise: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        """g'(z) elementwise, given the pre-activation ``z`` and the output ``s = g(z)``."""

    def config(self) -> dict[str, Any]:
        """JSON-able description; ``get_activation(config)`` rebuilds the same activation."""
        return {"type": "activation", "name": self.name, **{k: getattr(self, k) for k in self.options}}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.options)


class Identity(Activation):
    """The slides' LINEAL g(z) = z (no nonlinearity)."""

    name = "linear"

    def forward(self, z: Tensor) -> Tensor:
        return z

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return torch.ones_like(z)


class Step(Activation):
    """Heaviside step with values {0, 1}; derivative 0 (undefined at 0, taken as 0)."""

    name = "step"

    def forward(self, z: Tensor) -> Tensor:
        return (z >= 0).to(z.dtype)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return torch.zeros_like(z)


class Sgn(Activation):
    """Sign with values {-1, +1} (the slides' "escalón"); derivative 0 (undefined at 0)."""

    name = "sgn"

    def forward(self, z: Tensor) -> Tensor:
        return (z >= 0).to(z.dtype) * 2 - 1

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return torch.zeros_like(z)


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return s * (1 - s)


class Tanh(Activation):
    name = "tanh"

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(z)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return 1 - s * s


class Softsign(Activation):
    """The slides' fast sigmoid z/(1+|z|); g'(z) = 1/(1+|z|)^2 = (1-|s|)^2."""

    name = "softsign"

    def forward(self, z: Tensor) -> Tensor:
        return F.softsign(z)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return (1 - s.abs()).square()


class Softmax(Activation):
    """Softmax over the class axis 1 of (N, K) or (N, K, *S) (per position of a map, like
    ``F.cross_entropy`` on (N, K, *S) logits and ``argmax(dim=1)``); a 1-D z is one row.
    Not elementwise, so the engine uses the JVP.

    ``derivative`` returns the Jacobian's diagonal s_i (1 - s_i) (the slides' g'_M);
    ``jacobian_vector_product`` applies the full Jacobian diag(s) - s s^T.
    """

    name = "softmax"
    elementwise = False

    def forward(self, z: Tensor) -> Tensor:
        return torch.softmax(z, dim=_class_axis(z))

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return s * (1 - s)

    def jacobian_vector_product(self, s: Tensor, v: Tensor) -> Tensor:
        """J v for each row, J = diag(s) - s s^T (symmetric, so also v^T J); (N, K) -> (N, K)."""
        return s * (v - (s * v).sum(dim=_class_axis(s), keepdim=True))


def _class_axis(z: Tensor) -> int:
    """1 for batched z (N, K, *S); 0 for a single row (K,)."""
    return min(1, z.dim() - 1)


class ReLU(Activation):
    name = "relu"

    def forward(self, z: Tensor) -> Tensor:
        return torch.relu(z)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return (z > 0).to(z.dtype)


class LeakyReLU(Activation):
    """max(slope*z, z) with 0 <= slope < 1 (the slides use slope 0.1)."""

    name = "leaky_relu"
    options = ("slope",)

    def __init__(self, slope: float = 0.1) -> None:
        super().__init__()
        if not 0 <= slope < 1:
            raise SpecError(f"leaky_relu slope must be in [0, 1), got {slope}; e.g. leaky_relu:0.1")
        self.slope = float(slope)

    def forward(self, z: Tensor) -> Tensor:
        return F.leaky_relu(z, self.slope)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return (z > 0).to(z.dtype) * (1 - self.slope) + self.slope


class ELU(Activation):
    """z for z > 0, alpha (e^z - 1) otherwise; g'(z) = s + alpha for z <= 0."""

    name = "elu"
    options = ("alpha",)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if not alpha > 0:
            raise SpecError(f"elu alpha must be positive, got {alpha}; e.g. elu:1.0")
        self.alpha = float(alpha)

    def forward(self, z: Tensor) -> Tensor:
        return F.elu(z, self.alpha)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return torch.where(z > 0, torch.ones_like(s), s + self.alpha)


class SELU(Activation):
    """Self-normalising ELU (Klambauer et al. 2017), initialised with ``lecun_normal``."""

    name = "selu"
    ALPHA: ClassVar[float] = 1.6732632423543772848170429916717
    SCALE: ClassVar[float] = 1.0507009873554804934193349852946

    def forward(self, z: Tensor) -> Tensor:
        return torch.selu(z)

    def derivative(self, z: Tensor, s: Tensor) -> Tensor:
        return torch.where(z > 0, torch.full_like(s, self.SCALE), s + self.SCALE * self.ALPHA)


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Identity, Step, Sgn, Sigmoid, Tanh, Softsign, Softmax, ReLU, LeakyReLU, ELU, SELU)
}
ALIASES: dict[str, str] = {
    "identity": "linear",
    "none": "linear",
    "heaviside": "step",
    "sign": "sgn",
    "logistic": "sigmoid",
    "fast": "softsign",
    "lrelu": "leaky_relu",
}


def canonical_name(name: str) -> str:
    """The registry name for ``name`` or one of its aliases; SpecError if unknown."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        valid = ", ".join(ACTIVATIONS)
        raise SpecError(f"unknown activation '{name}'; valid names: {valid} (aliases: {', '.join(ALIASES)})")
    return key


def get_activation(name_or_module: str | dict | Activation, **options: Any) -> Activation:
    """Build an activation from a name (``"tanh"``, ``"leaky_relu:0.2"``), a config dict or
    an existing ``Activation`` (returned as is)."""
    if isinstance(name_or_module, Activation):
        if options:
            raise SpecError(f"options {sorted(options)} cannot be applied to an already built {name_or_module.name}")
        return name_or_module
    if isinstance(name_or_module, dict):
        config = dict(name_or_module)
        if config.pop("type", "activation") != "activation" or "name" not in config:
            raise SpecError(f"not an activation config: {name_or_module!r}; expected {{'name': 'relu', ...}}")
        return get_activation(config.pop("name"), **config, **options)
    if not isinstance(name_or_module, str):
        raise SpecError(f"activation must be a name or an Activation, got {type(name_or_module).__name__}")
    name, _, value = name_or_module.partition(":")
    cls = ACTIVATIONS[canonical_name(name)]
    if value:
        if len(cls.options) != 1 or cls.options[0] in options:
            raise SpecError(f"activation '{cls.name}' takes no ':value' option here (in '{name_or_module}')")
        try:
            options[cls.options[0]] = float(value)
        except ValueError:
            raise SpecError(f"'{value}' in '{name_or_module}' is not a number; write e.g. {cls.name}:0.2") from None
    unknown = set(options) - set(cls.options)
    if unknown:
        takes = ", ".join(cls.options) or "no options"
        raise SpecError(f"activation '{cls.name}' got unknown options {sorted(unknown)}; it takes {takes}")
    return cls(**options)
