"""Your own data from files: ``load_path(path)`` gives the same :class:`Dataset` as a name.

- ``.csv`` / ``.tsv`` / ``.tab`` with a header (``capas.data.tables``): target
  column (default the last), numeric and one-hot categorical features, ``impute``,
  ``task``;
- ``.npz`` with ``x, y`` or ``x_train, y_train, x_test, y_test`` (never unpickled);
- ``.npy`` pairs: ``x.npy`` + ``y.npy``, ``NAME_x.npy`` + ``NAME_y.npy``, ``x_train.npy``...
  (the path of the inputs file is given; the targets file is found beside it);
- a folder with one subfolder of images per class (``capas.data.images``), ``image_size``;
- a ``.txt`` (or ``.text``) plain text file: the registry's ``text`` dataset on it
  (one-hot windows of ``length`` characters, the next character per step), its vocabulary
  (``capas.data.text.read_text``) recorded.

The splits are the registry's: a stratified 20% test split (unless the file has its own),
then ``validation`` of the rest; what is fitted (categories, fills, classes, the
standardiser, image size and mode, the vocabulary) is fitted on the training split alone
where it is a statistic, and recorded in ``Dataset.preprocessing``, which a run keeps in
config.json, so ``capas predict RUN_DIR new.csv`` encodes new raw data the same way
(``capas.data.fitted``). ``Dataset.name`` is the absolute path and ``Dataset.options`` every
option, so ``load_path(ds.name, **ds.options)`` rebuilds the same tensors.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from capas.data.dataset import Dataset
from capas.data.formats import check_npy_size, check_npz_sizes, npy_header
from capas.data.images import parse_image_size, read_images, scan_class_folders
from capas.data.preprocess import standardize_splits
from capas.data.registry import split_indices, split_record
from capas.data.tables import MAX_CLASSES_FROM_NUMBERS, TASKS, TableEncoder, read_table
from capas.data.text import read_text
from capas.errors import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".tab")
TEXT_SUFFIXES = (".text", ".txt")
ARRAY_SUFFIXES = (".npz", ".npy")
SUFFIXES = (*TABLE_SUFFIXES, *TEXT_SUFFIXES, *ARRAY_SUFFIXES)
#: the characters of a window of text (``length``) when none is given
TEXT_WINDOW = 64
#: options a file dataset accepts beyond seed, validation, standardize
FILE_OPTIONS = ("target", "impute", "task", "image_size", "length")


def looks_like_path(name: str) -> bool:
    """A data argument is a path (not a registry name) when it names an existing file or
    folder, contains a path separator, or ends in a data file suffix."""
    text = str(name)
    return Path(text).exists() or "/" in text or "\\" in text or text.lower().endswith(SUFFIXES)


def file_kind(path: Path) -> str:
    """``folder``, ``table``, ``npz``, ``npy`` or ``text`` for an existing ``path``, by suffix
    (a ``.txt`` is always plain text: a table is ``.csv``, ``.tsv`` or ``.tab``)."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix in (".npz", ".npy"):
        return suffix[1:]
    if suffix in TEXT_SUFFIXES:
        return "text"
    raise DataError(
        f"cannot tell what {path} holds from its suffix; use .csv/.tsv (a table with a header), .npz, "
        ".npy, .txt (text) or a folder of images in one subfolder per class"
    )


def load_path(
    path: str | Path,
    *,
    seed: int = 0,
    validation: float = 0.1,
    standardize: bool | None = None,
    **file_options: Any,
) -> Dataset:
    """Load the data in ``path`` (see the module docstring) into a :class:`Dataset`.

    Args (``file_options``, each None for its default):
        target: a table's target column (default: the last).
        impute: ``mean`` | ``median``: fill a table's missing values (default: refuse them).
        task: ``classification`` | ``regression`` (default: inferred from the targets).
        image_size: resize images to this (``28``, ``"32x24"``); default: their own size.
        length: characters per window of a text file (default :data:`TEXT_WINDOW`).
        standardize: default on for tables and arrays, off for images (scaled to [0, 1]) and text.
    """
    unknown = sorted(set(file_options) - set(FILE_OPTIONS))
    if unknown:
        raise DataError(
            f"a data file has no option {', '.join(unknown)}; its options are: {', '.join(FILE_OPTIONS)} "
            "(plus seed, validation, standardize)"
        )
    given = {key: file_options.get(key) for key in FILE_OPTIONS}
    task = given["task"]
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no file or folder {path}; give a data file (.csv, .npz, .npy, .txt) or an image folder")
    path = path.resolve()
    if not isinstance(validation, (int, float)) or isinstance(validation, bool) or not 0 <= validation < 1:
        raise DataError(f"validation must be a fraction in [0, 1), got {validation!r}; e.g. 0.1 or 0")
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task {task!r}; use classification or regression")
    kind = file_kind(path)
    allowed = {"table": ("target", "impute", "task"), "npz": ("task",), "npy": ("task",), "folder": ("image_size",)}
    allowed["text"] = ("length",)
    extra = sorted(k for k, v in given.items() if v is not None and k not in allowed[kind])
    if extra:
        options = ", ".join(allowed[kind]) or "none"
        raise DataError(f"{path} is a {kind} file: option {', '.join(extra)} does not apply (its options: {options})")
    options = {"seed": seed, "validation": validation, "standardize": standardize}
    options.update({k: v for k, v in given.items() if v is not None})
    readers = {"table": _load_table, "npz": _load_npz, "npy": _load_npy, "folder": _load_folder, "text": _load_text}
    return readers[kind](path, options)


def _assemble(
    path: Path,
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    classes: list[str] | None,
    options: dict[str, Any],
    preprocessing: dict[str, Any],
    standardize_default: bool,
    split: dict[str, Any],
) -> Dataset:
    """The Dataset of [train, val, test] arrays: float32 inputs (int64 kept for ids),
    standardised with the training split's statistics when asked."""
    tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in xs]
    tensors = [t if t.dtype == torch.int64 else t.to(torch.float32) for t in tensors]
    standardize = standardize_default if options["standardize"] is None else options["standardize"]
    if not isinstance(standardize, bool):
        raise DataError(f"standardize must be true, false or None (the file's default), got {standardize!r}")
    record: dict[str, Any] = {"split": split, **preprocessing}
    if standardize:
        tensors, record["standardize"] = standardize_splits(tensors)
    classification = classes is not None
    targets = [torch.from_numpy(np.ascontiguousarray(y)) for y in ys]
    return Dataset.from_splits(
        str(path),
        tensors,
        targets,
        num_classes=len(classes) if classification else None,
        class_names=list(classes or []),
        task="classification" if classification else "regression",
        preprocessing=record,
        options={**options, "standardize": standardize},
    )


def _load_table(path: Path, options: dict[str, Any]) -> Dataset:
    table = read_table(path)
    seed, validation = options["seed"], options["validation"]
    typed = TableEncoder.fit(table, options.get("target"), options.get("task"), None)  # classes of every row
    y_all = typed.targets(table)
    classification = typed.task == "classification"
    train, val, test = split_indices(y_all if classification else y_all[:, 0], seed, validation, classification, False)
    encoder = TableEncoder.fit(table, options.get("target"), typed.task, options.get("impute"), train)
    x_all = encoder.transform(table)  # (N, F) float64
    parts = [train, val, test]
    return _assemble(
        path,
        [x_all[i] for i in parts],
        [y_all[i] for i in parts],
        encoder.classes,
        options,
        {"table": encoder.to_json()},
        standardize_default=True,
        split=split_record(seed, validation, classification, False),
    )


def _npz_members(path: Path) -> dict[str, Any]:
    """Member name -> dtype of a ``.npz``, read from the headers: an object array is refused
    here, before anything could try to unpickle it."""
    check_npz_sizes(path)
    dtypes = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                with archive.open(info) as handle:
                    _, dtype = npy_header(handle, f"{path}:{info.filename}")
                name = info.filename[: -len(".npy")]
                if dtype.hasobject:
                    raise DataError(
                        f"{path}: array {name!r} holds Python objects (dtype {dtype}); capas never unpickles "
                        "data: save numeric (or string) arrays, e.g. x.astype('float32')"
                    )
                dtypes[name] = dtype
    return dtypes


def _load_npz(path: Path, options: dict[str, Any]) -> Dataset:
    keys = set(_npz_members(path))
    if {"x_train", "y_train", "x_test", "y_test"} <= keys:
        names = ["x_train", "y_train", "x_test", "y_test"]
    elif {"x", "y"} <= keys:
        names = ["x", "y"]
    else:
        raise DataError(f"{path} has arrays {sorted(keys)}; expected x, y or x_train, y_train, x_test, y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = [archive[name] for name in names]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"cannot read {path} as a .npz archive without pickle ({err})") from None
    return _load_arrays(path, dict(zip(names, arrays)), options)


def npy_partner(path: Path, letter: str) -> Path:
    """The file beside ``path`` whose name has ``letter`` where ``path``'s has the token ``x``
    (``x.npy`` -> ``y.npy``, ``digits_x_train.npy`` -> ``digits_y_train.npy``)."""
    tokens = re.split(r"([_.\-])", path.stem)
    if "x" not in [t.lower() for t in tokens]:
        raise DataError(
            f"{path.name}: name the inputs file with an x token (x.npy, NAME_x.npy, x_train.npy) so that its "
            "targets file (y.npy, NAME_y.npy, y_train.npy) can be found beside it"
        )
    index = [t.lower() for t in tokens].index("x")
    tokens[index] = letter if tokens[index] == "x" else letter.upper()
    return path.with_name("".join(tokens) + path.suffix)


def _load_npy(path: Path, options: dict[str, Any]) -> Dataset:
    y_path = npy_partner(path, "y")
    files = {"x": path, "y": y_path}
    stem = path.stem.lower()
    if re.search(r"(^|[_.\-])train($|[_.\-])", stem):
        test = path.with_name(re.sub(r"train", "test", path.name, flags=re.IGNORECASE))
        if test.exists():
            files = {"x_train": path, "y_train": y_path, "x_test": test, "y_test": npy_partner(test, "y")}
    arrays = {}
    for name, file in files.items():
        if not file.is_file():
            raise DataError(f"{path} needs its partner file {file.name} beside it ({name}); it does not exist")
        check_npy_size(file)
        with file.open("rb") as handle:
            _, dtype = npy_header(handle, str(file))
        if dtype.hasobject:
            raise DataError(f"{file} holds Python objects (dtype {dtype}); capas never unpickles data")
        arrays[name] = np.load(file, allow_pickle=False)
    return _load_arrays(path, arrays, options)


def _load_arrays(path: Path, arrays: dict[str, np.ndarray], options: dict[str, Any]) -> Dataset:
    """x (N, ...) numbers and y (N,) labels or (N, k) targets, maybe with a test pair."""
    has_test = "x_test" in arrays
    x_name, y_name = ("x_train", "y_train") if has_test else ("x", "y")
    pairs = [(x_name, y_name), *([("x_test", "y_test")] if has_test else [])]
    for xn, yn in pairs:
        x, y = arrays[xn], arrays[yn]
        if x.dtype.kind not in "biuf":
            raise DataError(f"{path}: {xn} has dtype {x.dtype}; inputs must be numbers")
        if x.ndim < 2 or len(x) == 0:
            raise DataError(f"{path}: {xn} has shape {x.shape}; expected (N, features...) with N > 0")
        if len(y) != len(x):
            raise DataError(f"{path}: {xn} has {len(x)} samples but {yn} has {len(y)}; they must match")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            row = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
            raise DataError(f"{path}: {xn} row {row} holds NaN or infinite values; fix or drop it")
    y_train = arrays[y_name]
    task = options.get("task") or _array_task(y_train)
    classification = task == "classification"
    seed, validation = options["seed"], options["validation"]
    if classification:
        if y_train.ndim != 1 and not (y_train.ndim == 2 and y_train.shape[1] == 1):
            raise DataError(f"{path}: {y_name} has shape {y_train.shape}; class labels must be (N,)")
        labels = [arrays[yn].reshape(-1) for _, yn in pairs]
        keys = np.unique(labels[0])
        if len(keys) < 2:
            raise DataError(f"{path}: {y_name} has one class ({keys[0]!r}); classification needs two or more")
        coded = []
        for (_, yn), y in zip(pairs, labels):
            unseen = np.setdiff1d(y, keys)
            if len(unseen):
                row = int(np.flatnonzero(y == unseen[0])[0])
                raise DataError(f"{path}: {yn} row {row} has label {unseen[0]!r}, not seen in {y_name}")
            coded.append(np.searchsorted(keys, y).astype(np.int64))
        classes: list[str] | None = [str(k) for k in keys]
    else:
        coded = []
        for _, yn in pairs:
            y = arrays[yn]
            if y.dtype.kind not in "biuf":
                raise DataError(f"{path}: {yn} has dtype {y.dtype}; regression targets must be numbers")
            coded.append(np.asarray(y, dtype=np.float32).reshape(len(y), -1))
        classes = None
    split_y = coded[0] if classification else coded[0][:, 0]
    train, val, test = split_indices(split_y, seed, validation, classification, has_test)
    x0, y0 = arrays[x_name], coded[0]
    xs, ys = [x0[train], x0[val]], [y0[train], y0[val]]
    if has_test:
        xs.append(arrays["x_test"])
        ys.append(coded[1])
    else:
        xs.append(x0[test])
        ys.append(y0[test])
    record = {"arrays": {"classes": classes, "task": task, "input_shape": list(x0.shape[1:])}}
    return _assemble(
        path, xs, ys, classes, options, record, True, split_record(seed, validation, classification, has_test)
    )


def _array_task(y: np.ndarray) -> str:
    """Classification for strings, booleans and a few whole numbers; regression otherwise."""
    if y.dtype.kind in "USb":
        return "classification"
    if y.dtype.kind not in "iuf":
        raise DataError(f"targets of dtype {y.dtype} are neither labels nor numbers")
    if y.ndim > 1 and y.shape[1] > 1:
        return "regression"
    whole = bool(np.all(np.mod(y, 1) == 0)) if y.dtype.kind == "f" else True
    return "classification" if whole and len(np.unique(y)) <= MAX_CLASSES_FROM_NUMBERS else "regression"


def _load_folder(path: Path, options: dict[str, Any]) -> Dataset:
    files, labels, classes = scan_class_folders(path)
    size = parse_image_size(options.get("image_size"))
    if size is not None:
        options["image_size"] = f"{size[0]}x{size[1]}"
    seed, validation = options["seed"], options["validation"]
    x, mode, size = read_images(files, size)  # (N, C, H, W) uint8
    train, val, test = split_indices(labels, seed, validation, True, False)
    x = x.astype(np.float32) / 255.0
    record = {
        "images": {"size": list(size), "mode": mode, "classes": classes},
        "scale": {"divide_by": 255.0, "range": [0.0, 1.0]},
    }
    parts = [train, val, test]
    return _assemble(
        path,
        [x[i] for i in parts],
        [labels[i] for i in parts],
        classes,
        options,
        record,
        False,
        split_record(seed, validation, True, False),
    )


def _load_text(path: Path, options: dict[str, Any]) -> Dataset:
    """A text file is the registry's ``text`` dataset on that file (one-hot windows of
    ``length`` characters, the next character per step: the recurrent models' layout), with
    the vocabulary of :func:`capas.data.text.read_text` recorded for the run."""
    from capas.data.registry import load

    text = read_text(path)  # refuses an empty or non-UTF-8 file naming it
    window = options.get("length") or TEXT_WINDOW
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise DataError(f"length (characters per window) must be a positive integer, got {window!r}")
    dataset = load(
        "text",
        path=str(path),
        window=window,
        seed=options["seed"],
        validation=options["validation"],
        standardize=options["standardize"],
    )
    dataset.preprocessing["text"] = {**text.to_json(), "window": window}
    return dataset
