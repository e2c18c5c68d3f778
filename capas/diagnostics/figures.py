"""The one place capas touches matplotlib's global state: headless backend and saving.

Importing this module selects the ``Agg`` backend, so plots work on servers and in CI
without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from capas.errors import CapasError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders created), close it, return the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    except OSError as err:  # a file where the plots folder should be, a folder named like the plot, read-only
        blocking = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocking} is a file, not a folder" if blocking else (err.strerror or str(err))
        raise CapasError(f"cannot write the plot {path}: {reason}; move it away or make the folder writable") from None
    finally:
        plt.close(fig)
    return path


def evenly_spaced(n: int, most: int) -> list[int]:
    """At most ``most`` (>= 2) indices of ``range(n)``, evenly spaced, the first and the last
    included: the frames an animation of ``n`` snapshots shows."""
    if n <= most:
        return list(range(n))
    return list(dict.fromkeys(round(i * (n - 1) / (most - 1)) for i in range(most)))
