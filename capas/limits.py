"""Memory limits: estimate what an operation will allocate and refuse it before it starts.

An allocation that does not fit ends in ``MemoryError``, an allocator ``RuntimeError`` or
the kernel's OOM killer, long after the mistake (a spec with a 10**6-unit layer, an ``.npy``
header that claims terabytes, ``n=10**12`` samples). Each of those places estimates its
bytes first and calls :func:`check_fits`, which compares them with the memory available now.

No third-party dependency: ``/proc/meminfo`` (Linux) or ``sysconf`` give the limit; where
neither is readable there is no check. Nothing here imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from capas.errors import CapasError

MEMINFO = Path("/proc/meminfo")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None when unknown.

    Linux's ``MemAvailable`` (free memory plus reclaimable caches); elsewhere the physical
    memory from ``sysconf`` (an upper bound); None when neither can be read."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``; binary units up to EiB (larger numbers stay in EiB)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} EiB"


def check_fits(
    needed: int, what: str, hint: str, error: type[CapasError] = CapasError, limit: int | None = None
) -> None:
    """Raise ``error`` (one line: ``what``, the estimate, the limit, ``hint``) when ``needed``
    bytes exceed ``limit`` (default: :func:`available_memory`; unknown: no check)."""
    limit = available_memory() if limit is None else limit
    if limit is not None and needed > limit:
        raise error(f"{what} needs about {format_bytes(needed)} but only {format_bytes(limit)} is available; {hint}")
