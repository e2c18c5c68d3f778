"""How a 2-D classifier's decision regions evolve: per-epoch snapshots and their GIF.

:class:`BoundarySnapshots` predicts a coarse grid after every epoch and, when the fit
ends, writes them to ``boundary_snapshots.safetensors`` in the run directory (tensors
``gx (R,)``, ``gy (R,)``, ``epochs (E,)``, ``classes (E, R, R)``); ``animate_boundary``
turns that file into a GIF with matplotlib's PillowWriter.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from safetensors.torch import load_file, save_file
from torch import Tensor

from capas.diagnostics.figures import evenly_spaced, plt
from capas.diagnostics.plots_model import boundary_axes, draw_regions, predict_grid
from capas.errors import RunDirError
from capas.train.callbacks import Callback

SNAPSHOT_FILE = "boundary_snapshots.safetensors"
MAX_FRAMES = 40


class BoundarySnapshots(Callback):
    """Records ``model.predict`` on a ``resolution x resolution`` grid around ``x (N, 2)`` each epoch.

    ``path`` defaults to the trainer's run directory; without either, the snapshots stay
    in memory (``epochs``, ``classes``) and nothing is written.
    """

    name = "boundary_snapshots"

    def __init__(self, x: Tensor, resolution: int = 60, path: str | Path | None = None):
        self.gx, self.gy = boundary_axes(x, resolution)
        self.path = Path(path) if path is not None else None
        self.epochs: list[int] = []
        self.classes: list[np.ndarray] = []

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        self.epochs.append(int(epoch))
        loss = getattr(getattr(trainer, "task", None), "eval_loss", None)  # the classes the trainer counts
        self.classes.append(predict_grid(trainer.model, self.gx, self.gy, loss))

    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        """The snapshots so far, so that a resumed run's animation starts at epoch 1."""
        tensors = {"classes": torch.from_numpy(np.stack(self.classes))} if self.classes else {}
        return tensors, {"epochs": self.epochs}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict) -> None:
        self.epochs = [int(e) for e in record.get("epochs", [])]
        self.classes = list(tensors["classes"].cpu().numpy()) if "classes" in tensors else []

    def on_fit_end(self, trainer) -> None:
        run_dir = getattr(trainer, "run_dir", None)
        path = self.path or (Path(run_dir) / SNAPSHOT_FILE if run_dir is not None else None)
        if path is not None and self.classes:
            save_snapshots(path, self.gx, self.gy, self.epochs, np.stack(self.classes))


def save_snapshots(path: str | Path, gx: np.ndarray, gy: np.ndarray, epochs: list[int], classes: np.ndarray) -> Path:
    """Write the snapshots atomically (temporary file, then ``os.replace``)."""
    path = Path(path)
    tensors = {
        "gx": torch.from_numpy(np.asarray(gx, dtype=np.float32)),
        "gy": torch.from_numpy(np.asarray(gy, dtype=np.float32)),
        "epochs": torch.tensor(epochs, dtype=torch.int64),
        "classes": torch.from_numpy(np.ascontiguousarray(classes)),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return path


def load_snapshots(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays ``save_snapshots`` wrote; a missing file is a ``RunDirError`` with the fix."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(
            f"no boundary snapshots at {path}; train with the BoundarySnapshots callback "
            "(a recipe with plots = ['boundary'] and animate = true adds it)"
        )
    return {name: tensor.numpy() for name, tensor in load_file(str(path)).items()}


def animate_boundary(
    snapshots: dict[str, np.ndarray],
    x: Tensor,
    y: Tensor,
    num_classes: int,
    path: str | Path,
    fps: int = 8,
    max_frames: int = MAX_FRAMES,
) -> list[int]:
    """A GIF of the decision regions over epochs (evenly spaced, first and last included); returns the epochs shown."""
    epochs, classes = snapshots["epochs"], snapshots["classes"]
    frames = evenly_spaced(len(epochs), max_frames)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    mesh = draw_regions(ax, snapshots["gx"], snapshots["gy"], classes[frames[0]], x, y, num_classes)
    title = ax.set_title("")

    def draw(frame: int) -> None:  # only the regions and the title change
        mesh.set_array(classes[frame].ravel())
        title.set_text(f"decision regions, epoch {int(epochs[frame])}")

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    FuncAnimation(fig, draw, frames=list(frames)).save(str(path), writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    return [int(epochs[f]) for f in frames]
