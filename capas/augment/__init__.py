"""Data augmentation (course file 001, "Aumento de datos artificiales"): new training
samples made from real ones by transforms, drawn afresh for every batch.

- images (:mod:`capas.augment.images`, :mod:`capas.augment.ops`): flips, rotations, crops
  and translations, zoom, elastic distortion, brightness/contrast, added noise; batched on
  the model's device, random parameters per sample from the run's ``augment`` generator.
  ``capas.fit(..., augment="flip,rotate=15,crop=2,noise=0.1")``, ``capas train --augment``,
  or ``augment = "..."`` in a recipe's ``[train]`` table.
- text (:mod:`capas.augment.text`): substitute, insert, delete and swap words, with a
  synonym table the user gives.
"""

from capas.augment.images import ImageAugmenter, augmenter_for
from capas.augment.spec import AugmentError, AugmentSpec, parse_augment
from capas.augment.text import TextAugmenter

__all__ = [
    "AugmentError",
    "AugmentSpec",
    "ImageAugmenter",
    "TextAugmenter",
    "augmenter_for",
    "parse_augment",
]
