"""Folders of images, one subfolder per class, read through Pillow.

Every image of a folder must share one mode, grayscale (``L``) or colour (``RGB``): a
folder mixing them is most likely a mistake (a colour scan among grey digits), so it is
refused naming both files instead of silently converted. Images are resized (bilinear) to
``image_size`` when given; otherwise they must all have the first image's size. Pixels come
back as uint8 ``(N, C, H, W)``; scaling to [0, 1] is recorded by the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from capas.errors import DataError
from capas.limits import check_fits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MODES = {"L": 1, "RGB": 3}  # mode -> channels
#: bytes per pixel value while loading: uint8 pixels plus the float32 copies training makes
BYTES_PER_VALUE = 1 + 3 * 4


def parse_image_size(value: Any) -> tuple[int, int] | None:
    """``28``, ``"28"``, ``"32x24"`` (height x width) or ``(32, 24)`` -> (height, width)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        sizes = [int(str(p).strip()) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise DataError(f"--image-size must be N or HxW with positive integers (e.g. 28 or 32x24), got {value!r}")
    return sizes[0], sizes[1]


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def scan_class_folders(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """(image files, class index per file (N,), class names) of ``folder/<class>/*`` (the
    images directly in each class folder); classes in alphabetical order, files in name
    order within each class."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder} has no class subfolders; put each class's images in a subfolder named after it")
    files, labels = [], []
    for k, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if is_image(p))
        if not found:
            raise DataError(f"{folder / name} holds no images ({', '.join(IMAGE_SUFFIXES)}); remove it or add images")
        files += found
        labels += [k] * len(found)
    if len(classes) < 2:
        raise DataError(f"{folder} has one class ({classes[0]!r}); classification needs two or more subfolders")
    return files, np.array(labels, dtype=np.int64), classes


def image_files(path: Path) -> list[Path]:
    """One image file, or every image under a folder (name order): new samples to predict."""
    if path.is_file():
        if not is_image(path):
            raise DataError(f"{path} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [path]
    found = sorted(p for p in _two_levels(path) if is_image(p))
    if not found:
        raise DataError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def _two_levels(folder: Path) -> list[Path]:
    """The entries of ``folder`` and of its subfolders: images as they are, or sorted into
    one subfolder per class (never deeper, so a wrong path cannot walk a whole disk)."""
    entries = []
    for entry in folder.iterdir():
        entries += sorted(entry.iterdir()) if entry.is_dir() and not entry.name.startswith(".") else [entry]
    return entries


def read_images(
    files: list[Path], size: tuple[int, int] | None = None, mode: str | None = None
) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Pixels (N, C, H, W) uint8 of ``files``, their common mode and (H, W).

    ``mode`` None: the first image's (``L`` or ``RGB``); ``size`` None: the first image's.
    Headers are read first (Pillow opens lazily), so a mismatch or a folder too large for
    memory is refused before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    resize = size is not None  # a given size: every image is resized to it
    first_mode: Path | None = None
    first_size: Path | None = None
    for path in files:
        try:
            with Image.open(path) as image:
                found, (width, height) = image.mode, image.size
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"cannot read {path} as an image ({err}); remove it or convert it") from None
        if found not in MODES:
            raise DataError(
                f"{path} has image mode {found}; use grayscale (L) or RGB images (convert it, e.g. with Pillow's "
                "image.convert('RGB'))"
            )
        if mode is None:
            mode, first_mode = found, path
        elif found != mode:
            where = f"{first_mode} is {mode}" if first_mode is not None else f"the model was trained on {mode} images"
            raise DataError(f"{path} has image mode {found} but {where}; give images of one mode")
        if size is None:
            size, first_size = (height, width), path
        elif (height, width) != size and not resize:
            raise DataError(
                f"{path} is {height}x{width} but {first_size} is {size[0]}x{size[1]}; "
                f"give --image-size {size[0]}x{size[1]} to resize them all"
            )
    assert mode is not None and size is not None
    channels = MODES[mode]
    check_fits(
        len(files) * channels * size[0] * size[1] * BYTES_PER_VALUE,
        f"{len(files)} images of {channels}x{size[0]}x{size[1]}",
        "use a smaller --image-size or fewer images",
        DataError,
    )
    x = np.empty((len(files), channels, size[0], size[1]), dtype=np.uint8)  # (N, C, H, W)
    for i, path in enumerate(files):
        with Image.open(path) as image:
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
        x[i] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return x, mode, size
