"""Where each registered dataset comes from: generated, bundled, downloaded or a local .npz.

File-backed datasets look first for a ready ``.npz`` in the data dir (the layout of the
project's ``shared/data``: ``mnist.npz``, ``fashion_mnist.npz``, ...), then for files
already downloaded into ``<data dir>/<name>/``, and only then download them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from capas.data import gan_toys, playground, sequences, toys
from capas.data.dataset import Task
from capas.data.downloads import RemoteFile, data_dir, fetch_all
from capas.data.formats import Arrays, check_pair, parse_semeion, read_idx, read_npz
from capas.errors import DataError

#: Share of the samples held out for testing when a dataset has no official test split.
TEST_FRACTION = 0.2

Reader = Callable[["Entry", dict[str, Any], int], Arrays]


@dataclass(frozen=True)
class Entry:
    """A registered dataset: how to get its arrays and what they look like by default."""

    name: str
    description: str
    source: str  # "generated", "bundled", "download" or "local"
    read: Reader  # (entry, dataset options, seed) -> Arrays
    input_shape: tuple[int, ...]  # with the default options
    class_names: tuple[str, ...] | Callable[[dict[str, Any]], tuple[str, ...]]
    n_train: int  # before the validation split, with the default options
    n_test: int
    task: Task = "classification"
    defaults: dict[str, Any] = field(default_factory=dict)  # dataset options
    max_value: float | None = None  # raw maximum of image pixels; scaled to [0, 1] unless scale=False
    standardize: bool = False  # default of load(standardize=None)
    npz_names: tuple[str, ...] = ()
    remotes: tuple[RemoteFile, ...] = ()
    parse: Callable[[Entry, list[Path]], Arrays] | None = None  # downloaded files -> Arrays

    def classes(self, options: dict[str, Any]) -> list[str]:
        """Class names for these dataset options ([] for regression)."""
        names = self.class_names(options) if callable(self.class_names) else self.class_names
        return list(names)

    def is_local(self) -> bool:
        """True when loading needs no download."""
        if self.source in ("generated", "bundled"):
            return True
        directory = data_dir()
        if any((directory / name).is_file() for name in self.npz_names):
            return True
        return bool(self.remotes) and all((directory / self.name / r.filename).is_file() for r in self.remotes)


def _numbered(count: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(count))


def _split_sizes(total: int) -> tuple[int, int]:
    """(train, test) sizes after holding out TEST_FRACTION (scikit-learn rounds the test part up)."""
    n_test = math.ceil(TEST_FRACTION * total)
    return total - n_test, n_test


def _generated(generator: Callable[..., Arrays]) -> Reader:
    def read(entry: Entry, options: dict[str, Any], seed: int) -> Arrays:
        return generator(**options, seed=seed)

    return read


def _read_digits(entry: Entry, options: dict[str, Any], seed: int) -> Arrays:
    """scikit-learn's bundled 8x8 digits: x (1797, 1, 8, 8) values 0..16, y (1797,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Arrays(bunch.images[:, None].astype(np.float32), bunch.target.astype(np.int64))


def _read_files(entry: Entry, options: dict[str, Any], seed: int) -> Arrays:
    """A local .npz if there is one, else the downloaded (or now downloading) original files."""
    directory = data_dir()
    num_classes = len(entry.classes(options))
    for name in entry.npz_names:
        if (directory / name).is_file():
            return read_npz(directory / name, entry.input_shape, num_classes)
    if not entry.remotes or entry.parse is None:
        raise DataError(
            f"dataset {entry.name!r} is read from a local file only and {directory / entry.npz_names[0]} "
            f"does not exist: put {entry.npz_names[0]} (keys x_train, y_train, x_test, y_test or x, y) "
            "there, or point CAPAS_DATA at the folder that holds it"
        )
    paths = fetch_all(entry.name, entry.remotes, directory / entry.name, entry.npz_names)
    return entry.parse(entry, paths)


def _parse_idx_set(entry: Entry, paths: list[Path]) -> Arrays:
    """Paths of train images, train labels, test images, test labels (IDX) -> Arrays."""
    arrays = [read_idx(path) for path in paths]
    num_classes = len(entry.classes({}))
    folder = str(paths[0].parent)
    train = check_pair(folder, paths[0].name, arrays[0], paths[1].name, arrays[1], entry.input_shape, num_classes)
    test = check_pair(folder, paths[2].name, arrays[2], paths[3].name, arrays[3], entry.input_shape, num_classes)
    return Arrays(*train, *test)


def _read_mnist_rows(entry: Entry, options: dict[str, Any], seed: int) -> Arrays:
    """MNIST read as the ``mnist`` entry reads it, each image (1, 28, 28) -> 28 rows of 28."""
    mnist = next(other for other in ENTRIES if other.name == "mnist")
    images = _read_files(mnist, {}, seed)
    rows = sequences.rows_of_images
    return Arrays(rows(images.x_train), images.y_train, rows(images.x_test), images.y_test)


def _parse_semeion(entry: Entry, paths: list[Path]) -> Arrays:
    """semeion.data (pixels 0/1) -> Arrays with pixels 0/255, the layout of semeion.npz."""
    x, y = parse_semeion(paths[0])
    return Arrays(x * np.uint8(255), y)


IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _idx_files(base_url: str, checksums: tuple[str, str, str, str]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(base_url + name, name, ("md5", md5)) for name, md5 in zip(IDX_NAMES, checksums))


MNIST_FILES = _idx_files(
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
     "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
)  # fmt: skip
FASHION_FILES = _idx_files(
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
     "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
)  # fmt: skip
SEMEION_FILES = (
    RemoteFile(
        "https://archive.ics.uci.edu/ml/machine-learning-databases/semeion/semeion.data",
        "semeion.data",
        ("md5", "cb545d371d2ce14ec121470795a77432"),
    ),
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DIGITS = _numbered(10)
TWO = _numbered(2)


def _toy(
    name: str, description: str, generator: Callable[..., Arrays], defaults: dict[str, Any], **extra: Any
) -> Entry:
    """A generated dataset; 2-D two-class unless ``extra`` says otherwise."""
    n_train, n_test = _split_sizes(defaults["n"])
    extra.setdefault("input_shape", (2,))
    extra.setdefault("class_names", TWO)
    read = _generated(generator)
    return Entry(name, description, "generated", read, n_train=n_train, n_test=n_test, defaults=defaults, **extra)


ENTRIES: tuple[Entry, ...] = (
    Entry("digits", "8x8 handwritten digits bundled with scikit-learn (the default)", "bundled", _read_digits,
          (1, 8, 8), DIGITS, *_split_sizes(1797), max_value=16.0),
    _toy("xor", "XOR: four Gaussian clusters at (+-1, +-1)", toys.xor, {"n": 400, "noise": 0.2}),
    _toy("circles", "a small circle inside a large one", toys.circles, {"n": 400, "noise": 0.1}),
    _toy("moons", "two interleaving half moons", toys.moons, {"n": 400, "noise": 0.1}),
    _toy("spirals", "two interleaved spirals", toys.spirals, {"n": 400, "noise": 0.05, "turns": 1.5}),
    _toy("gaussians", "k Gaussian blobs (option centers)", toys.gaussians,
         {"n": 400, "noise": 1.0, "centers": 3}, class_names=lambda options: _numbered(options.get("centers", 3))),
    _toy("sine", "noisy sine series: a window predicts the next value", toys.sine,
         {"n": 500, "window": 20, "noise": 0.05, "period": 25.0},
         input_shape=(1, 20), class_names=(), task="regression"),
    Entry("mnist", "MNIST handwritten digits 28x28 (LeCun, Cortes & Burges)", "download", _read_files,
          (1, 28, 28), DIGITS, 60000, 10000, max_value=255.0, npz_names=("mnist.npz",),
          remotes=MNIST_FILES, parse=_parse_idx_set),
    Entry("fashion-mnist", "Fashion-MNIST clothing images 28x28 (Zalando)", "download", _read_files,
          (1, 28, 28), FASHION_CLASSES, 60000, 10000, max_value=255.0,
          npz_names=("fashion_mnist.npz", "fashion-mnist.npz"), remotes=FASHION_FILES, parse=_parse_idx_set),
    Entry("semeion", "SEMEION handwritten digits 16x16, binary (UCI 178)", "download", _read_files,
          (1, 16, 16), DIGITS, *_split_sizes(1593), max_value=255.0, npz_names=("semeion.npz",),
          remotes=SEMEION_FILES, parse=_parse_semeion),
    Entry("usps", "USPS handwritten digits 16x16 (local usps.npz only)", "local", _read_files,
          (1, 16, 16), DIGITS, 7291, 2007, max_value=255.0, npz_names=("usps.npz",)),
    Entry("optdigits", "UCI optical digits 8x8, values 0-16 (local optdigits.npz only)", "local", _read_files,
          (1, 8, 8), DIGITS, 3823, 1797, max_value=16.0, npz_names=("optdigits.npz",)),
    Entry("letter", "UCI letter recognition: 16 integer features, A-Z (local letter.npz only)", "local",
          _read_files, (16,), tuple(chr(ord("A") + i) for i in range(26)), 16000, 4000, standardize=True,
          npz_names=("letter.npz",)),
    _toy("adding", "adding problem: T steps of (value, marker); y = sum of the two marked values", sequences.adding,
         {"n": 10000, "length": 50}, input_shape=(50, 2), class_names=(), task="regression"),
    _toy("copy-memory", "copy memory: repeat the first symbols after a delay (per-step classes)",
         sequences.copy_memory, {"n": 5000, "symbols": 8, "memory": 10, "delay": 20}, input_shape=(40, 10),
         class_names=lambda options: _numbered(options.get("symbols", 8) + 1)),
    _toy("embedded-reber", "embedded Reber grammar: the legal next symbols at every step (multi-label)",
         sequences.embedded_reber, {"n": 2000}, input_shape=(None, 7), class_names=(), task="regression"),
    _toy("tomita", "Tomita grammars 1-7: is the bit string in the language? (option grammar)", sequences.tomita,
         {"n": 2000, "grammar": 4, "max_length": 12}, input_shape=(12, 2)),
    _toy("temporal-xor", "Elman's temporal XOR: predict the next bit of (a, b, a xor b) triples",
         sequences.temporal_xor, {"n": 1000, "triples": 10}, input_shape=(29, 1), class_names=(), task="regression"),
    _toy("parity", "parity of a bit string (option variable: random lengths, padded)", sequences.parity,
         {"n": 2000, "length": 10, "variable": False}, input_shape=(10, 2)),
    _toy("sine-forecast", "sine series: a window of T steps predicts the next horizon values",
         sequences.sine_forecast, {"n": 2000, "window": 20, "horizon": 1, "noise": 0.0, "period": 25.0},
         input_shape=(20, 1), class_names=(), task="regression"),
    _toy("mackey-glass", "Mackey-Glass chaotic series (tau 17): a window predicts the next horizon values",
         sequences.mackey_glass, {"n": 2000, "window": 20, "horizon": 1, "tau": 17},
         input_shape=(20, 1), class_names=(), task="regression"),
    Entry("sequential-mnist", "MNIST row by row: 28 steps of 28 pixels (from mnist)", "download",
          _read_mnist_rows, (28, 28), DIGITS, 60000, 10000, max_value=255.0, npz_names=("mnist.npz",),
          remotes=MNIST_FILES),
    _toy("text", "characters of your text file (option path): one-hot windows, the next character per step",
         sequences.text_windows, {"path": "", "window": 64, "n": 2000}, input_shape=(64, None),
         class_names=lambda options: tuple(sequences.text_vocabulary(options["path"])) if options.get("path") else ()),
    _toy("playground", "TensorFlow Playground's problems (capas playground): problem, classes, features",
         playground.classification, {"n": 500, "noise": 0.0, "problem": "spiral", "classes": 2, "features": "x1,x2"},
         class_names=lambda options: _numbered(options.get("classes", 2))),
    _toy("playground-regression", "TensorFlow Playground's regression problems plane and gauss (capas playground)",
         playground.regression, {"n": 500, "noise": 0.0, "problem": "plane", "features": "x1,x2"},
         class_names=(), task="regression"),
    _toy("ring", "GAN toy: 8 Gaussians (sigma 0.01) on the unit circle; label = mode", gan_toys.ring,
         {"n": 10000, "sigma": 0.01}, class_names=_numbered(8)),
    _toy("grid", "GAN toy: 25 Gaussians (sigma 0.05) on {-4,-2,0,2,4}^2; label = mode", gan_toys.grid,
         {"n": 10000, "sigma": 0.05}, class_names=_numbered(25)),
)  # fmt: skip
