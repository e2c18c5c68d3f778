"""Downloads into the data cache: verified by checksum, written atomically.

A download streams into a temporary file in the destination's directory while its hash
is computed; only when the hash matches the published one is the file ``os.replace``d
into place. A mismatch, a network error or Ctrl-C deletes the temporary file, so the
cache never holds a partial or unverified file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import platformdirs

from capas.errors import DataError

CHUNK = 1 << 16
#: Show a progress bar for downloads larger than this (bytes).
PROGRESS_MIN_BYTES = 1 << 20
TIMEOUT_S = 30.0
#: errors of the local disk, not of the network, while a download is written
_STORAGE_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class RemoteFile:
    """A published file: where to get it, what to call it, and its checksum (algorithm, hex)."""

    url: str
    filename: str
    checksum: tuple[str, str]


def data_dir() -> Path:
    """The data cache: ``$CAPAS_DATA`` if set, else the user cache dir of capas."""
    return Path(os.environ.get("CAPAS_DATA") or platformdirs.user_cache_dir("capas")).expanduser()


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file with ``algorithm`` ("md5", "sha256", ...)."""
    hasher = _hasher(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _hasher(algorithm: str) -> Any:
    try:
        return hashlib.new(algorithm)
    except ValueError as err:
        raise DataError(f"unknown checksum algorithm {algorithm!r}; use 'sha256' or 'md5'") from err


def download(remote: RemoteFile, destination: Path, *, timeout: float = TIMEOUT_S, progress: bool = True) -> Path:
    """Fetch ``remote.url`` to ``destination``, verifying its checksum; returns ``destination``.

    Raises :class:`DataError` on a checksum mismatch (nothing is left behind) and lets
    ``urllib.error.URLError`` through so the caller can explain how to work offline.
    """
    algorithm, expected = remote.checksum
    hasher = _hasher(algorithm)
    try:  # before connecting: a read-only data folder is said at once
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    except OSError as err:
        raise unwritable_cache(destination, err) from None
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(remote.url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) if response.headers else 0
            try:
                _copy(response, out, hasher, total, label=remote.filename, progress=progress)
            except OSError as err:
                if err.errno not in _STORAGE_ERRORS:
                    raise  # the network's (the caller explains how to work offline)
                raise unwritable_cache(destination, err) from None
        actual = hasher.hexdigest()
        if actual != expected.lower():
            raise DataError(
                f"checksum mismatch for {remote.url}: expected {algorithm} {expected}, got {actual}; "
                "the download was deleted. Try again later, or download the file yourself, check it, "
                f"and put it at {destination}"
            )
        os.replace(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    return destination


def unwritable_cache(destination: Path, err: OSError) -> DataError:
    """The one-line error for a download that cannot be stored (read-only, full, forbidden)."""
    reason = os.strerror(err.errno).lower() if err.errno else str(err)
    return DataError(
        f"cannot store {destination.name} in the data folder {destination.parent} ({reason}); "
        "point CAPAS_DATA at a folder you can write (e.g. export CAPAS_DATA=$HOME/capas-data), "
        "or put the file there yourself"
    )


def _copy(response, out, hasher, total: int, *, label: str, progress: bool) -> None:
    """Stream ``response`` into ``out`` and ``hasher``, with a rich bar (stderr) for big files."""
    if not (progress and total >= PROGRESS_MIN_BYTES):
        for chunk in iter(lambda: response.read(CHUNK), b""):
            hasher.update(chunk)
            out.write(chunk)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"downloading {label}", total=total)
        for chunk in iter(lambda: response.read(CHUNK), b""):
            hasher.update(chunk)
            out.write(chunk)
            bar.advance(task, len(chunk))


def fetch_all(name: str, remotes: tuple[RemoteFile, ...], directory: Path, npz_names: tuple[str, ...]) -> list[Path]:
    """Make sure every file of dataset ``name`` is in ``directory``, downloading what is missing.

    Offline, the :class:`DataError` lists each URL with the exact path to put it at, and
    the alternative of a ready ``.npz`` in the data dir.
    """
    paths = [directory / remote.filename for remote in remotes]
    for remote, path in zip(remotes, paths):
        if path.exists():
            continue
        try:
            download(remote, path)
        except (URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            missing = "; ".join(f"{r.url} -> {p}" for r, p in zip(remotes, paths) if not p.exists())
            raise DataError(
                f"cannot download dataset {name!r} ({reason}). Download these files and put them at: "
                f"{missing}. Or put a ready {npz_names[0]} (keys x_train, y_train, x_test, y_test "
                f"or x, y) in {data_dir()}"
            ) from err
    return paths
