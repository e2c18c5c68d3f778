"""Claiming an output before any work: nothing overwritten, nothing written where it cannot be.

Every capas writer (``capas.fit(out=...)``, ``capas train``, ``capas run``, ``capas pretrain``,
``capas predict --out``, ``capas evaluate --out``) calls one of these *before* it loads data
or trains, so that a mistake in the output path costs nothing and never destroys results:

- :func:`claim_output_dir`: a directory that is absent or empty (an existing non-empty one
  is refused: its results are not replaced), that is not a file, not in the kernel's
  virtual file systems, and that can really be written (created with a probe file, which is
  removed again together with every directory the probe created);
- :func:`check_output_file`: a file of one of the given suffixes, not one of the command's
  own inputs, not inside a run directory (whose files belong to the run), not an existing
  file unless ``force``, in a directory that can be written.

An ``OSError`` on the way (read-only file system, permission denied, a parent that is a
file...) becomes a one-line :class:`~capas.errors.CapasError` naming the path and the reason.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from capas.errors import CapasError, RunDirError
from capas.train.rundir import LOCK_FILE

#: the record of a recipe run in its output folder (``capas.api.recipes``)
RECIPE_RECORD = "recipe.json"
#: where a recipe model's greedy pre-training lives inside its run directory (capas/api/pretrain_recipe.py)
RECIPE_PRETRAIN = "pretrain"
#: files that make a directory a capas output (a run, a pre-training, a recipe's folder)
RUN_MARKERS = ("config.json", "model.json", "weights.safetensors", "state.json", "pretrain.json", RECIPE_RECORD)
#: the kernel's virtual file systems: never a place for results
VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"))

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a parent is a file, not a directory",
    errno.EEXIST: "a file is in the way",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ENOENT: "its parent cannot hold it",
}


def os_reason(err: OSError) -> str:
    """A short, human reason for ``err`` (errno-based; the OS's own text otherwise)."""
    return _REASONS.get(err.errno, err.strerror or str(err))


def claim_output_dir(
    path: str | Path, *, hint: str = "choose another output directory", keep: Iterable[str] = ()
) -> Path:
    """Check that ``path`` can become a new output directory, before any work.

    Refused with a one-line error: a file, a directory under /proc or /sys, a directory
    holding anything but the names in ``keep`` (and a run directory's lock file) (``hint`` says what to do instead, e.g.
    "choose another --out or --resume it"), or a place that cannot be written. Leaves the
    file system as it found it (a directory the probe had to create is removed again).
    """
    path = Path(path)
    _refuse_virtual(path)
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise RunDirError(f"the output {path} is a file, not a directory; {hint}")
    if path.is_dir():
        try:
            ignored = {LOCK_FILE, *keep}  # a lock left by a writer that stopped before writing anything
            held = sorted(entry.name for entry in path.iterdir() if entry.name not in ignored)
        except OSError as err:
            raise RunDirError(f"cannot read the output directory {path}: {os_reason(err)}; {hint}") from None
        if held:
            shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            raise RunDirError(f"{path} already exists and is not empty (it holds {shown}); {hint}")
    check_writable_dir(path, hint=hint)
    return path


def check_writable_dir(path: str | Path, *, hint: str = "choose another output directory") -> None:
    """Create ``path`` (and missing parents) and a probe file in it, then remove every one of
    them that did not exist before; an ``OSError`` is a RunDirError naming the reason."""
    path = Path(path)
    _refuse_virtual(path)
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".capas-probe-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise RunDirError(f"cannot write to {path}: {os_reason(err)}; {hint}") from None
    finally:
        for directory in created:
            try:
                directory.rmdir()
            except OSError:
                break  # not created by us after all (a concurrent writer), or not empty: keep it


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a capas output (a run, a pre-training, a recipe)."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in RUN_MARKERS)


def check_output_file(
    path: str | Path,
    *,
    suffixes: tuple[str, ...],
    inputs: Iterable[str | Path] = (),
    force: bool = False,
    option: str = "--out",
) -> Path:
    """Check a file output before any work: one of ``suffixes``; not one of ``inputs``; not
    in a run directory; not an existing file unless ``force`` (overwriting one's own earlier
    output, on purpose); in an existing directory that can be written."""
    path = Path(path)
    _refuse_virtual(path)
    kinds = " or ".join(suffixes)
    if path.suffix not in suffixes:
        raise CapasError(f"{option} must be a {kinds} file, got {path}")
    if path.is_dir():
        raise CapasError(f"{option} {path} is a directory; give a new {kinds} file")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise CapasError(f"{option} {path} is the input file itself; write the results to another file")
    if is_run_dir(path.parent):
        raise CapasError(
            f"{option} {path} is inside the capas run directory {path.parent}, whose files belong to the run; "
            "write the results elsewhere"
        )
    if not path.parent.is_dir():
        raise CapasError(f"{option} must be a {kinds} file in an existing directory, got {path}")
    if path.exists() and not force:
        raise CapasError(f"{path} already exists; choose another {option} file, or add --force to replace it")
    check_writable_dir(path.parent, hint=f"choose another {option}")
    return path


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False
    return a.resolve() == b.resolve()


def _refuse_virtual(path: Path) -> None:
    resolved = path.resolve()
    for root in VIRTUAL_ROOTS:
        if resolved == root or root in resolved.parents:
            raise RunDirError(f"{path} is in {root}, the kernel's virtual file system; write results elsewhere")


def discard_unstarted_run(run_dir: Path) -> None:
    """Remove a recipe's run directory that holds no checkpoint (``state.json``): a run
    killed before its first epoch ended left only the files ``fit`` writes at its start,
    nothing to resume, and ``fit`` would refuse the non-empty folder. Run directories with a
    checkpoint are left alone (they resume)."""
    import shutil

    if run_dir.is_dir() and not (run_dir / "state.json").exists():
        shutil.rmtree(run_dir)
