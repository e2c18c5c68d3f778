"""Predictions as a table: one id per sample, the predicted class name (or outputs), and
class probabilities with ``proba``: what ``capas predict --proba`` and ``--out x.csv`` write
for a run trained on a file (ids from the file's ``id`` column or its images' names).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capas.api.predict import check_predicts, prepare, read_inputs, run_preprocessing
from capas.data.fitted import class_names, read_new, reads_files
from capas.errors import DataError
from capas.train.rundir import load_run


@dataclass
class PredictionTable:
    """``ids`` (N), ``predictions`` (N,) class indices or (N, k) outputs, ``classes`` (K names,
    classification only) and ``proba`` (N, K) when asked."""

    ids: list[str]
    predictions: np.ndarray
    classes: list[str] | None = None
    proba: np.ndarray | None = None

    def labels(self) -> list[str]:
        """The prediction of each sample as text: its class name, or its outputs."""
        if self.classes is not None and self.predictions.ndim == 1:
            return [self.classes[int(k)] for k in self.predictions]
        return [" ".join(f"{v:g}" for v in row) for row in self.predictions.reshape(len(self.predictions), -1)]

    def header(self) -> list[str]:
        head = ["id", "prediction"]
        if self.proba is not None:
            head += [f"proba_{name}" for name in self.classes or range(self.proba.shape[1])]
        return head

    def rows(self) -> list[list[str]]:
        rows = []
        for i, (sample_id, label) in enumerate(zip(self.ids, self.labels())):
            row = [sample_id, label]
            if self.proba is not None:
                row += [f"{p:.6g}" for p in self.proba[i]]
            rows.append(row)
        return rows

    def write(self, path: Path) -> None:
        """``.csv``: the header and one row per sample; ``.npy``: the probabilities (with
        ``proba``) or the predictions."""
        if path.suffix == ".npy":
            np.save(path, self.proba if self.proba is not None else self.predictions)
            return
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.header())
            writer.writerows(self.rows())

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"ids": self.ids, "predictions": self.labels(), "classes": self.classes}
        if self.proba is not None:
            record["proba"] = self.proba.tolist()
        return record


def wants_table(run_dir: str | Path) -> bool:
    """Whether the run was trained on a file whose new raw rows it encodes (CSV, images)."""
    run = load_run(run_dir)
    return reads_files(run_preprocessing(run.config, run.path / "config.json"))


def predict_table(run_dir: str | Path, inputs: str | Path, *, proba: bool = False) -> PredictionTable:
    """Predictions of the run in ``run_dir`` for the raw samples in ``inputs`` (a file the
    run's training file is like, or a ``.npy``/``.csv`` of numbers), with ids and, with
    ``proba``, the probability of every class (N, K)."""
    run = load_run(run_dir)
    preprocessing = run_preprocessing(run.config, run.path / "config.json")
    model = run.build_model()
    check_predicts(model, run_dir)
    if reads_files(preprocessing):
        new = read_new(preprocessing, inputs)
        array, ids = new.x, new.ids
    else:
        array = read_inputs(Path(inputs))
        ids = [str(i) for i in range(len(array))]
    x = prepare(array, tuple(model.input_shape), preprocessing, source=f"{run.path / 'config.json'} preprocessing")
    predictions = model.predict(x).cpu().numpy()
    data = run.config.get("data", {})
    classification = data.get("task") == "classification"
    names = class_names(preprocessing) if classification else None
    if classification and names is None and isinstance(data.get("num_classes"), int):
        names = [str(k) for k in range(data["num_classes"])]
    probabilities = None
    if proba:
        if not classification:
            raise DataError(f"{run_dir} is a regression run; --proba needs a classifier (drop --proba)")
        probabilities = model.predict_proba(x).double().cpu().numpy().reshape(len(x), -1)  # (N, K) or (N, 1)
        if probabilities.shape[1] == 1:  # one sigmoid output: P(class 1)
            probabilities = np.hstack([1 - probabilities, probabilities])
    return PredictionTable(ids, predictions, names, probabilities)


def labelled_file_dataset(run: Any, path: str | Path) -> Any:
    """A Dataset whose test split is every labelled sample of ``path``, encoded with the run's
    stored preprocessing (what ``capas evaluate RUN --data new.csv`` scores): a table must
    hold the target column; an image folder, one subfolder per class of the run."""
    import torch

    from capas.data import Dataset
    from capas.data.images import read_images, scan_class_folders

    preprocessing = run_preprocessing(run.config, run.path / "config.json")
    model = run.build_model()
    names = class_names(preprocessing)
    if "images" in preprocessing:
        files, labels, folders = scan_class_folders(Path(path))
        unseen = sorted(set(folders) - set(names or []))
        if unseen:
            known = ", ".join(names or [])
            raise DataError(f"{path}: class folder {unseen[0]!r} was not seen in training (classes: {known})")
        record = preprocessing["images"]
        pixels, _, _ = read_images(files, tuple(record["size"]), record["mode"])
        raw, y = pixels.astype(np.float32), np.array([names.index(folders[k]) for k in labels], dtype=np.int64)
    else:
        new = read_new(preprocessing, path)
        raw, y = new.x, new.y
    if y is None:
        target = preprocessing.get("table", {}).get("target")
        raise DataError(f"{path} has no target column {target!r}; evaluating needs the true labels")
    x = prepare(raw, tuple(model.input_shape), preprocessing, source=f"{run.path / 'config.json'} preprocessing")
    y_t = torch.from_numpy(np.ascontiguousarray(y))
    empty = x[:0]
    classification = names is not None
    return Dataset(
        name=str(path),
        x_train=empty,
        y_train=y_t[:0],
        x_val=empty,
        y_val=y_t[:0],
        x_test=x,
        y_test=y_t,
        input_shape=tuple(model.input_shape),
        num_classes=len(names) if classification else None,
        class_names=list(names or []),
        task="classification" if classification else "regression",
        preprocessing=preprocessing,
    )
