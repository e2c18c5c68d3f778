"""Readers for the file formats the datasets come in: IDX, UCI ``semeion.data`` and ``.npz``.

Every reader validates what it reads and raises :class:`DataError` naming the file and
what is wrong, so a truncated download or a foreign file never surfaces as a numpy
traceback. Nothing is unpickled (``np.load(..., allow_pickle=False)``).
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capas.errors import DataError
from capas.limits import check_fits

GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> big-endian numpy dtype (LeCun's format description).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_maybe_gzip(path: Path) -> bytes:
    """Bytes of ``path``, gunzipped when the file starts with the gzip magic number."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is a damaged gzip file ({err}); delete it and download it again") from err


def npy_header(handle, source: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) a ``.npy`` stream at its start declares, read without loading the data."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{source} is not a valid .npy array ({reason})") from None
    return tuple(shape), dtype


def check_npy_size(path: str | Path) -> None:
    """Refuse a ``.npy`` file whose header claims more data than memory can hold (or than
    the file holds), before ``np.load`` tries to allocate it."""
    path = Path(path)
    with path.open("rb") as handle:
        shape, dtype = npy_header(handle, str(path))
        offset = handle.tell()
    _check_array_bytes(str(path), shape, dtype, available=path.stat().st_size - offset)


def _check_array_bytes(source: str, shape: tuple[int, ...], dtype: np.dtype, available: int | None) -> None:
    """The bytes ``shape`` x ``dtype`` claims must fit in memory and in the stored data
    (``available``; None: compressed, unknown)."""
    needed = math.prod(shape) * dtype.itemsize
    check_fits(needed, f"{source} (an array of shape {shape}, {dtype})", "use a smaller array", DataError)
    if available is not None and not dtype.hasobject and needed > available:
        raise DataError(
            f"{source} declares an array of shape {shape} ({needed} bytes) but holds {available} bytes of data; "
            "the file is truncated or corrupt"
        )


def check_npz_sizes(path: str | Path) -> None:
    """Every member of a ``.npz`` archive must fit in memory (headers read without loading)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as handle:
                    shape, dtype = npy_header(handle, f"{path}:{info.filename}")
                stored = None if info.compress_type != zipfile.ZIP_STORED else info.file_size
                _check_array_bytes(f"{path}:{info.filename}", shape, dtype, stored)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"cannot read {path} as a .npz archive ({err})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into an array of its dims, in native byte order.

    Layout: two zero bytes, a type code, the number of dims D, then D big-endian uint32
    sizes, then the values big-endian in C order.
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file: it must start with two zero bytes (magic number)")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path} has unknown IDX type code 0x{code:02X}; known codes are {known}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path} has a truncated IDX header ({ndim} dims declared, {len(data)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{path} declares shape {shape} ({expected} bytes of data) but holds {len(data) - header}; "
            "the file is truncated or corrupt: delete it and download it again"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise DataError(f"IDX cannot store dtype {array.dtype}; use one of uint8, int8, int16, int32, float32, float64")
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"IDX stores 1 to 255 dims, got an array of {array.ndim} dims")
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[native]]).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def parse_semeion(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse UCI ``semeion.data``: per line 256 pixels (0/1, row-major 16x16) then 10 one-hot labels.

    Returns ``x`` (N, 16, 16) uint8 with values 0/1 and ``y`` (N,) int64 digit labels.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path} as a semeion.data text file: {err}") from err
    images, labels = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 266:
            raise DataError(f"{path} line {number}: expected 266 numbers (256 pixels + 10 labels), got {len(fields)}")
        try:
            values = np.array(fields, dtype=np.float64)  # (266,)
        except ValueError as err:
            raise DataError(f"{path} line {number}: not a number ({err})") from err
        pixels, code = values[:256], values[256:]
        if not np.isin(pixels, (0.0, 1.0)).all():
            raise DataError(f"{path} line {number}: pixels must be 0 or 1")
        if not (np.isin(code, (0.0, 1.0)).all() and code.sum() == 1):
            raise DataError(f"{path} line {number}: the last 10 columns must be one-hot (exactly one 1)")
        images.append(pixels.reshape(16, 16))
        labels.append(int(code.argmax()))
    if not images:
        raise DataError(f"{path} holds no samples")
    return np.array(images, dtype=np.uint8), np.array(labels, dtype=np.int64)


@dataclass(frozen=True)
class Arrays:
    """Raw arrays of a dataset; ``x_test``/``y_test`` are None when it has no official split."""

    x_train: np.ndarray  # (N, *sample_shape)
    y_train: np.ndarray  # (N,)
    x_test: np.ndarray | None = None  # (M, *sample_shape)
    y_test: np.ndarray | None = None  # (M,)


def read_npz(path: str | Path, sample_shape: tuple[int, ...], num_classes: int) -> Arrays:
    """Read a local ``.npz`` with keys ``x_train, y_train, x_test, y_test`` or ``x, y``.

    ``x`` arrays must hold samples of ``sample_shape`` (or its flattened size, reshaped
    here); ``y`` arrays integer labels in 0..num_classes-1 of matching length.
    """
    path = Path(path)
    check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            if {"x_train", "y_train", "x_test", "y_test"} <= keys:
                names = ("x_train", "y_train", "x_test", "y_test")
            elif {"x", "y"} <= keys:
                names = ("x", "y")
            else:
                raise DataError(
                    f"{path} has keys {sorted(keys)}; expected x_train, y_train, x_test, y_test "
                    "(official split) or x, y (no split)"
                )
            arrays = {name: archive[name] for name in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"cannot read {path} as a .npz archive without pickle ({err})") from err
    parts = []
    for x_name, y_name in zip(names[::2], names[1::2]):
        parts += check_pair(str(path), x_name, arrays[x_name], y_name, arrays[y_name], sample_shape, num_classes)
    return Arrays(*parts)


def check_pair(
    source: str,
    x_name: str,
    x: np.ndarray,
    y_name: str,
    y: np.ndarray,
    sample_shape: tuple[int, ...],
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs ``x`` (N, *sample_shape) and labels ``y`` (N,) read from ``source``.

    ``x`` of the right size per sample but another shape (e.g. flattened) is reshaped.
    """
    x = _check_images(source, x_name, x, sample_shape)
    y = _check_labels(source, y_name, y, num_classes)
    if len(x) != len(y):
        raise DataError(f"{source}: {x_name} has {len(x)} samples but {y_name} has {len(y)}; they must match")
    return x, y


def _check_images(path: str, key: str, x: np.ndarray, sample_shape: tuple[int, ...]) -> np.ndarray:
    if x.dtype.kind not in "uif":
        raise DataError(f"{path}: {key} has dtype {x.dtype}; expected numbers")
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{path}: {key} has shape {x.shape}; expected (N, {', '.join(map(str, sample_shape))})")
    if x.shape[1:] != sample_shape:
        if int(np.prod(x.shape[1:])) != int(np.prod(sample_shape)):
            raise DataError(
                f"{path}: {key} holds samples of shape {x.shape[1:]}; expected {sample_shape} "
                f"(or {int(np.prod(sample_shape))} values per sample)"
            )
        x = x.reshape(len(x), *sample_shape)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{path}: {key} contains NaN or infinite values")
    return x


def _check_labels(path: str, key: str, y: np.ndarray, num_classes: int) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "ui":
        raise DataError(f"{path}: {key} must be 1-D integer class labels, got {y.dtype} of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{path}: {key} has labels {y.min()}..{y.max()}; expected 0..{num_classes - 1}")
    return y.astype(np.int64)
