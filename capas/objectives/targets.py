"""Target codes: what output units are trained towards for a class label.

Course file 001 trains saturating output units towards codes they can reach: ``tanh``
units towards +-0.9 rather than +-1 (where g' vanishes), ``sigmoid`` units towards
0.1 / 0.9; ``onehot`` is the plain 0 / 1 code. A :class:`TargetCoder` holds the code table
of one output width; the trainer's :class:`capas.objectives.Loss` and the BackProp engine's
output rules both encode labels through it, so the two engines train towards the same
targets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from capas.errors import TrainingError

#: (low, high): the target of an output unit for the wrong and for the right class.
TARGET_CODES: dict[str, tuple[float, float]] = {"onehot": (0.0, 1.0), "tanh": (-0.9, 0.9), "sigmoid": (0.1, 0.9)}


def check_encoding(encoding: str) -> str:
    """``encoding`` if it names a code of :data:`TARGET_CODES`, else a TrainingError listing them."""
    if encoding not in TARGET_CODES:
        raise TrainingError(f"unknown target encoding '{encoding}'; valid: {', '.join(TARGET_CODES)}")
    return encoding


class TargetCoder:
    """Class labels -> target rows for ``outputs`` output units.

    ``table`` row c is the target of class c: ``(K, K)`` with ``high`` on the diagonal and
    ``low`` elsewhere for K > 1 outputs, ``(2, 1)`` = ``[[low], [high]]`` for one output
    unit deciding between two classes. Encoding is one row gather, so it costs the same
    for every code.
    """

    def __init__(
        self,
        outputs: int,
        encoding: str = "onehot",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if outputs < 1:
            raise TrainingError(f"a target coder needs at least one output unit, got {outputs}")
        self.outputs = outputs
        self.encoding = check_encoding(encoding)
        self.low, self.high = TARGET_CODES[encoding]
        if outputs == 1:
            self.table = torch.tensor([[self.low], [self.high]], dtype=dtype, device=device)  # (2, 1)
        else:
            self.table = torch.full((outputs, outputs), self.low, dtype=dtype, device=device)  # (K, K)
            self.table.fill_diagonal_(self.high)

    @property
    def threshold(self) -> float:
        """The midpoint of the codes: one output unit above it means class 1."""
        return (self.low + self.high) / 2

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TargetCoder:
        """Move the code table to ``device`` / ``dtype`` (in place); returns self."""
        self.table = self.table.to(device=device or self.table.device, dtype=dtype or self.table.dtype)
        return self

    def encode(self, y: Tensor) -> Tensor:
        """Labels ``y (B,)`` int64 -> targets ``(B, K)`` (``(B, 1)`` for one output), in the
        table's dtype and on its device."""
        return self.table.index_select(0, y)

    def __repr__(self) -> str:
        return f"TargetCoder(outputs={self.outputs}, encoding={self.encoding!r})"
