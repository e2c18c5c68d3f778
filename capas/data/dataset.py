"""The loaded :class:`Dataset` and the registry's one-line :class:`DatasetInfo`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

Task = Literal["classification", "regression"]


@dataclass(eq=False, repr=False)
class Dataset:
    """Train / validation / test tensors ready for a model.

    ``x_*`` are float32 ``(N, *input_shape)``; ``y_*`` are int64 class indices ``(N,)`` for
    classification or float32 ``(N, k)`` for regression. ``preprocessing`` records what was
    applied (JSON-able) and ``options`` every argument of :func:`capas.data.load`, so
    ``load(ds.name, **ds.options)`` rebuilds exactly these tensors.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int | None
    class_names: list[str]
    task: Task
    preprocessing: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_splits(cls, name: str, xs: list[torch.Tensor], ys: list[torch.Tensor], **fields: Any) -> Dataset:
        """The Dataset of [train, validation, test] inputs ``xs`` and targets ``ys``; the input
        shape is the training inputs'; ``fields`` are the other attributes."""
        return cls(
            name=name,
            x_train=xs[0],
            y_train=ys[0],
            x_val=xs[1],
            y_val=ys[1],
            x_test=xs[2],
            y_test=ys[2],
            input_shape=tuple(xs[0].shape[1:]),
            **fields,
        )

    def splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{"train": (x, y), "val": (x, y), "test": (x, y)}``."""
        return {
            "train": (self.x_train, self.y_train),
            "val": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }

    def class_counts(self, split: str = "train") -> list[int]:
        """Samples per class in ``split`` (classification only)."""
        if self.num_classes is None:
            return []
        y = self.splits()[split][1]
        return torch.bincount(y, minlength=self.num_classes).tolist()

    def summary(self) -> str:
        """A few lines for people: sizes, shapes, classes, preprocessing."""
        sizes = ", ".join(f"{name} {len(x)}" for name, (x, _) in self.splits().items())
        lines = [
            f"dataset {self.name} ({self.task})",
            f"  samples: {sizes}",
            f"  input shape: {self.input_shape}",
        ]
        if self.num_classes is not None:
            shown = ", ".join(self.class_names[:10]) + (", ..." if self.num_classes > 10 else "")
            lines.append(f"  classes: {self.num_classes} ({shown})")
            lines.append(f"  train class counts: {self.class_counts('train')}")
        else:
            lines.append(f"  targets: {tuple(self.y_train.shape[1:])} float")
        steps = ", ".join(_describe_step(name, record) for name, record in self.preprocessing.items())
        lines.append(f"  preprocessing: {steps or 'none'}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        classes = "regression" if self.num_classes is None else f"classes={self.num_classes}"
        return (
            f"Dataset({self.name!r}, train={len(self.x_train)}, val={len(self.x_val)}, "
            f"test={len(self.x_test)}, input_shape={self.input_shape}, {classes})"
        )


def _describe_step(name: str, record: Any) -> str:
    if name == "standardize":
        return "standardize (train mean, N-1 std)"
    if name == "scale":
        return f"scale /{record['divide_by']:g} to [0, 1]"
    if name == "split":
        return f"split (test {record['test']}, validation {record['validation']})"
    return name


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry as listed by :func:`capas.data.available`: a tabular/image/sequence
    dataset, or a source of sequence pairs (``task`` "sequence pairs", ``input_shape`` ()
    since its strings have any length; sizes None for the user's pairs file)."""

    name: str
    task: Task | Literal["sequence pairs"]
    input_shape: tuple[int, ...]
    num_classes: int | None
    n_train: int | None
    n_test: int | None
    local: bool
    source: str
    description: str

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (input_shape as a list)."""
        record = asdict(self)
        record["input_shape"] = list(self.input_shape)
        return record
