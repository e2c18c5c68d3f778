"""Re-apply a run's fitted preprocessing to new raw files.

A dataset loaded from a file (``capas.data.files``) records in ``Dataset.preprocessing``
what was fitted on it: a table's columns, categories, fills and classes (``table``), an
image folder's size, mode and classes (``images``), a text's vocabulary (``text``, kept for decoding), and the
``scale`` / ``standardize`` steps. The run keeps that record in config.json
(``data.preprocessing``); :func:`read_new` turns a new raw file into the model's raw inputs
with it (the scale and standardisation are applied after, by ``capas.api.predict.prepare``,
exactly as for a registry dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capas.data.images import image_files, read_images
from capas.data.tables import TableEncoder, read_table
from capas.errors import DataError

#: preprocessing records that say how a new raw file is read
FILE_RECORDS = ("table", "images")


@dataclass
class NewData:
    """Raw inputs read from a new file, one id per sample, and labels when the file has them."""

    x: np.ndarray  # (N, *input_shape) float64 / float32, before scale and standardisation
    ids: list[str]
    y: np.ndarray | None = None  # (N,) class indices or (N, 1) targets, when the target column is there


def reads_files(preprocessing: dict[str, Any]) -> bool:
    """Whether ``preprocessing`` came from a file that new raw files must be encoded like."""
    return isinstance(preprocessing, dict) and any(key in preprocessing for key in FILE_RECORDS)


def class_names(preprocessing: dict[str, Any]) -> list[str] | None:
    """The class names a file-trained classifier predicts (None: regression or unknown)."""
    if not isinstance(preprocessing, dict):
        return None
    for key in ("table", "images", "arrays"):
        record = preprocessing.get(key)
        if isinstance(record, dict) and isinstance(record.get("classes"), list):
            return [str(c) for c in record["classes"]]
    if isinstance(preprocessing.get("text"), dict):
        return list(preprocessing["text"].get("vocabulary") or []) or None
    return None


def read_new(preprocessing: dict[str, Any], path: str | Path) -> NewData:
    """``path`` read and encoded as the run's training file was.

    A table: its columns by name (extra columns ignored; a target column present is checked
    against the training classes), categories one-hot in the stored order, stored fills for
    missing values. Images: one file or a folder, in the stored mode, resized to the stored
    size. Errors name the file, line and column."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no input file or folder {path}")
    if "table" in preprocessing:
        encoder = TableEncoder.from_json(preprocessing["table"])
        table = read_table(path)
        y = encoder.targets(table) if encoder.target in table.header else None
        return NewData(encoder.transform(table), encoder.ids(table), y)
    if "images" in preprocessing:
        record = preprocessing["images"]
        try:
            size, mode = (int(record["size"][0]), int(record["size"][1])), str(record["mode"])
        except (KeyError, TypeError, ValueError, IndexError):
            raise DataError("the run's images record needs size [H, W] and mode; the run is damaged") from None
        files = image_files(path)
        x, _, _ = read_images(files, size, mode)  # (N, C, H, W) uint8
        base = path if path.is_dir() else path.parent
        return NewData(x.astype(np.float32), [str(f.relative_to(base)) for f in files])
    raise DataError("this run's preprocessing does not come from a file; give a .npy or .csv of numbers")
