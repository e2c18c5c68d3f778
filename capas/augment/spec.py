"""The augmentation spec: ``"flip,rotate=15,crop=2,noise=0.1"`` -> :class:`AugmentSpec`.

One comma-separated item per transform, ``name`` or ``name=value``:

=================  ========================================================================
item               per sample
=================  ========================================================================
``flip[=P]``       mirror left-right with probability P (default 0.5)
``vflip[=P]``      mirror upside-down with probability P (default 0.5)
``rotate=D``       rotate by an angle uniform in [-D, D] degrees
``crop=K``         random crop after zero-padding by K pixels: an integer shift in
                   [-K, K] on each axis (the size is kept)
``translate=T``    a real-valued shift uniform in [-T, T] pixels on each axis
``scale=S``        zoom by a factor uniform in [1 - S, 1 + S]
``elastic=A``      elastic distortion (Simard et al. 2003): a random displacement field,
                   smoothed by a Gaussian of ``sigma`` pixels, times A pixels
``sigma=S``        the elastic field's smoothing (default 4, Simard's value for MNIST)
``brightness=B``   add a value uniform in [-B, B]
``contrast=C``     scale deviations from the image's mean by a factor in [1 - C, 1 + C]
``noise=S``        add Gaussian noise of standard deviation S
=================  ========================================================================

The transforms run in the order of the table, whatever the order written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from capas.errors import CapasError


class AugmentError(CapasError):
    """An augmentation spec that does not parse, or data it cannot apply to."""


@dataclass(frozen=True)
class AugmentSpec:
    """Parsed augmentation settings; 0 means the transform is off."""

    flip: float = 0.0
    vflip: float = 0.0
    rotate: float = 0.0
    crop: int = 0
    translate: float = 0.0
    scale: float = 0.0
    elastic: float = 0.0
    sigma: float = 4.0
    brightness: float = 0.0
    contrast: float = 0.0
    noise: float = 0.0

    @property
    def geometric(self) -> bool:
        """True when an affine warp is needed (rotation, shift or zoom)."""
        return bool(self.rotate or self.crop or self.translate or self.scale)

    def text(self) -> str:
        """The canonical spec string (parse(text()) == self)."""
        default = AugmentSpec()
        items = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value != getattr(default, field.name):
                items.append(f"{field.name}={value:g}")
        return ",".join(items)


_PROBABILITIES = ("flip", "vflip")
_LIMITS = {"scale": 1.0, "contrast": 1.0}  # a factor 1 - S must stay positive
_NAMES = tuple(field.name for field in fields(AugmentSpec))


def parse_augment(text: str) -> AugmentSpec:
    """Parse ``"flip,rotate=15,crop=2,noise=0.1"``; AugmentError naming the bad item."""
    if not isinstance(text, str) or not text.strip():
        raise AugmentError(f"an augmentation spec is text like 'flip,rotate=15,crop=2,noise=0.1', got {text!r}")
    values: dict[str, float | int] = {}
    for item in text.split(","):
        name, sep, raw = (part.strip() for part in item.partition("="))
        if name not in _NAMES:
            raise AugmentError(f"unknown augmentation '{name}' in {text!r}; known: {', '.join(_NAMES)}")
        if name in values:
            raise AugmentError(f"augmentation '{name}' is given twice in {text!r}")
        if not sep:
            if name not in _PROBABILITIES:
                raise AugmentError(f"augmentation '{name}' needs a value, e.g. {name}=0.1")
            raw = "0.5"
        try:
            value = float(raw)
        except ValueError:
            raise AugmentError(f"augmentation '{name}={raw}': the value must be a number") from None
        if not math.isfinite(value) or value < 0:
            raise AugmentError(f"augmentation '{name}={raw}': the value must be a finite number >= 0")
        if name in _PROBABILITIES and value > 1:
            raise AugmentError(f"augmentation '{name}={raw}' is a probability: give a value in [0, 1]")
        if name in _LIMITS and value >= _LIMITS[name]:
            raise AugmentError(f"augmentation '{name}={raw}' must be below {_LIMITS[name]:g} (factors 1 +- {name})")
        if name == "crop":
            if value != int(value):
                raise AugmentError(f"augmentation 'crop={raw}' is a whole number of pixels; use translate= for shifts")
            value = int(value)
        if name == "sigma" and value == 0:
            raise AugmentError("augmentation 'sigma' (the elastic field's smoothing) must be > 0")
        values[name] = value
    spec = AugmentSpec(**values)
    if "sigma" in values and not spec.elastic:
        raise AugmentError("augmentation 'sigma' smooths the elastic field: give elastic=A too")
    return spec
