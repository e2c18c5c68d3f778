"""The dataset registry: :func:`load` a dataset by name, :func:`available` lists them.

``load`` turns raw arrays into a :class:`Dataset` in a fixed, recorded order:

1. hold out the test split (the official one, else a stratified 20% drawn with ``seed``;
   the ``sine`` series holds out its last 20% instead, in time order);
2. hold out ``validation`` of the remaining training samples the same way;
3. scale image pixels to [0, 1] (``scale=True``, the default for images);
4. standardise with the training split's mean and N-1 std (``standardize``; the default
   depends on the dataset: off for images and toys, on for tabular ``letter``).
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import torch

from capas.data.dataset import Dataset, DatasetInfo
from capas.data.formats import Arrays
from capas.data.preprocess import scale_to_unit, standardize_splits, stratified_split
from capas.data.sources import ENTRIES, TEST_FRACTION, Entry
from capas.errors import DataError

DEFAULT_DATASET = "digits"
REGISTRY: dict[str, Entry] = {entry.name: entry for entry in ENTRIES}


def names() -> list[str]:
    """Registered dataset names, in listing order."""
    return list(REGISTRY)


def get_entry(name: str) -> Entry:
    """The registry entry for ``name`` (case and ``_``/``-`` insensitive)."""
    key = str(name).strip().lower().replace("_", "-")
    if key in REGISTRY:
        return REGISTRY[key]
    close = difflib.get_close_matches(key, REGISTRY, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    from capas.data.pairs import PAIR_SOURCES

    pairs = ", ".join(source for source in PAIR_SOURCES if source not in REGISTRY)
    raise DataError(f"unknown dataset {name!r}; {hint}available: {', '.join(REGISTRY)}; sequence pairs: {pairs}")


def available() -> list[DatasetInfo]:
    """Every registered dataset with its default sizes and whether it is on this machine."""
    infos = []
    for entry in ENTRIES:
        classes = entry.classes(entry.defaults)
        infos.append(
            DatasetInfo(
                name=entry.name,
                task=entry.task,
                input_shape=entry.input_shape,
                num_classes=len(classes) if entry.task == "classification" else None,
                n_train=entry.n_train,
                n_test=entry.n_test,
                local=entry.is_local(),
                source=entry.source,
                description=entry.description,
            )
        )
    from capas.data.pairs import PAIR_SOURCES
    from capas.data.pairs import TEST_FRACTION as PAIR_TEST_FRACTION

    for source in PAIR_SOURCES.values():
        n = source.defaults.get("n")
        n_test = None if n is None else max(1, round(PAIR_TEST_FRACTION * n))
        infos.append(
            DatasetInfo(
                name=source.name,
                task="sequence pairs",
                input_shape=(),
                num_classes=None,
                n_train=None if n is None else n - n_test,
                n_test=n_test,
                local=True,
                source="your file" if source.vocab_from_train else "generated",
                description=source.description,
            )
        )
    return infos


def load(
    name: str = DEFAULT_DATASET,
    *,
    seed: int = 0,
    validation: float = 0.1,
    standardize: bool | None = None,
    **options: Any,
) -> Dataset:
    """Load dataset ``name`` split into train / validation / test tensors.

    Args:
        seed: draws the held-out splits (and a generated dataset's samples).
        validation: share of the training samples held out for validation, in [0, 1);
            0 gives empty validation tensors of shape (0, *input_shape).
        standardize: standardise inputs with the training split's statistics; None picks
            the dataset's default.
        options: dataset options, e.g. ``n``, ``noise`` for toys, ``scale`` for images.

    Returns a :class:`Dataset` whose ``options`` reproduce it: ``load(ds.name, **ds.options)``.
    A path to a file or folder that is not a registered name loads through
    :func:`capas.data.files.load_path` (tables, arrays, image folders, text).
    """
    from capas.data.files import load_path, looks_like_path
    from capas.data.pairs import PAIR_SOURCES, load_pairs

    _check_common(seed, validation, standardize)
    key = str(name).strip().lower().replace("_", "-")
    if key in PAIR_SOURCES and key not in REGISTRY:
        if standardize:
            raise DataError(f"{key!r} is a dataset of symbol pairs; it cannot be standardized (leave standardize out)")
        return load_pairs(key, seed=seed, validation=validation, **options)
    if key not in REGISTRY and looks_like_path(name):
        return load_path(name, seed=seed, validation=validation, standardize=standardize, **options)
    entry = get_entry(name)
    dataset_options, scale = _resolve_options(entry, options)
    standardize = entry.standardize if standardize is None else standardize
    arrays = entry.read(entry, dataset_options, seed)
    classification = entry.task == "classification"

    per_step = arrays.y_train.ndim > 1  # per-step labels (sequences) cannot be stratified
    splits = _split(arrays, validation, seed, classification and not per_step)
    preprocessing: dict[str, Any] = {"split": split_record(seed, validation, classification, arrays.x_test is not None)}
    xs = [_inputs(x) for x, _ in splits]
    ys = [_targets(y, classification) for _, y in splits]
    if scale:
        xs = [scale_to_unit(x, entry.max_value) for x in xs]
        preprocessing["scale"] = {"divide_by": entry.max_value, "range": [0.0, 1.0]}
    if standardize:
        xs, preprocessing["standardize"] = standardize_splits(xs)

    classes = entry.classes(dataset_options)
    all_options = {"seed": seed, "validation": validation, "standardize": standardize, **dataset_options}
    if entry.max_value is not None:
        all_options["scale"] = scale
    return Dataset.from_splits(
        entry.name,
        xs,
        ys,
        num_classes=len(classes) if classification else None,
        class_names=classes,
        task=entry.task,
        preprocessing=preprocessing,
        options=all_options,
    )


def split_indices(
    y: np.ndarray, seed: int, validation: float, classification: bool, has_test: bool
) -> list[np.ndarray]:
    """[train, validation, test] indices into the N samples of ``y`` (N, ...): TEST_FRACTION
    held out first (none when the data have their own test split), then ``validation`` of
    the rest; stratified by class for classification. Registry names and data files
    (``capas.data.files``) split alike."""
    if has_test:
        keep, test = np.arange(len(y)), np.arange(0)
    else:
        keep, test = stratified_split(y, TEST_FRACTION, seed, stratify=classification)
    train, val = stratified_split(y[keep], validation, seed, stratify=classification)
    return [keep[train], keep[val], test]


def split_record(seed: int, validation: float, classification: bool, has_test: bool) -> dict[str, Any]:
    """How the splits were drawn, as ``Dataset.preprocessing["split"]`` records it."""
    test: float | str = "official" if has_test else TEST_FRACTION
    return {"test": test, "validation": validation, "stratified": classification, "seed": seed}


def _split(arrays: Arrays, validation: float, seed: int, classification: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(x, y) train, validation, test]: the official test split, or TEST_FRACTION held out
    first; then ``validation`` of the rest (stratified for classes)."""
    official = arrays.x_test is not None
    train, val, test = split_indices(arrays.y_train, seed, validation, classification, official)
    x, y = arrays.x_train, arrays.y_train
    held_out = (arrays.x_test, arrays.y_test) if official else (x[test], y[test])
    return [(x[train], y[train]), (x[val], y[val]), held_out]


def _check_common(seed: Any, validation: Any, standardize: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(validation, bool) or not isinstance(validation, (int, float)) or not 0 <= validation < 1:
        raise DataError(f"validation must be a fraction in [0, 1), got {validation!r}; e.g. 0.1 or 0")
    if standardize is not None and not isinstance(standardize, bool):
        raise DataError(f"standardize must be true, false or None (dataset default), got {standardize!r}")


def _resolve_options(entry: Entry, options: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Dataset options with defaults filled in, and whether to scale pixels to [0, 1]."""
    allowed = [*entry.defaults, *(["scale"] if entry.max_value is not None else [])]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise DataError(
            f"dataset {entry.name!r} has no option {', '.join(unknown)}; its options are: {accepted} "
            "(plus seed, validation, standardize)"
        )
    scale = options.get("scale", entry.max_value is not None)
    if not isinstance(scale, bool):
        raise DataError(f"option scale must be true or false, got {scale!r}")
    resolved = {key: options.get(key, default) for key, default in entry.defaults.items()}
    return resolved, scale


def _inputs(x: np.ndarray) -> torch.Tensor:
    """Raw inputs (N, *input_shape) -> float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _targets(y: np.ndarray, classification: bool) -> torch.Tensor:
    """Class indices (N,) int64, or regression targets (N, k) float32."""
    if classification:
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
