"""``sample``: draw from the generator of a trained GAN run (what ``capas sample`` calls)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from capas.api.outputs import check_output_file
from capas.errors import RunDirError
from capas.limits import check_fits
from capas.models.gan import GAN
from capas.models.registry import noun
from capas.train import rundir

#: samples generated at a time: a large --n needs memory for its samples, not for every
#: hidden activation of all of them at once
CHUNK = 4096


def sample(run_dir: str | Path, n: int = 64, *, seed: int = 0) -> Tensor:
    """``n`` samples (n, *data_shape) of the GAN trained in ``run_dir`` (its last saved
    weights), from noise drawn with ``seed``; RunDirError if the run is not a GAN's."""
    model = rundir.load_model(Path(run_dir))
    if not isinstance(model, GAN):
        raise RunDirError(f"{run_dir} holds {noun(model)}, not a GAN; capas sample draws from GAN runs")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RunDirError(f"the number of samples must be a positive integer, got {n!r}")
    size = math.prod(model.data_shape)
    check_fits(n * size * 4, f"{n:,} samples of {size:,} values", "ask for fewer samples (--n)")
    generator = torch.Generator().manual_seed(seed)
    if n <= CHUNK:
        return model.sample(n, generator)
    samples = torch.empty(n, *model.data_shape)  # the generator's activations stay one chunk's
    for start in range(0, n, CHUNK):
        samples[start : start + CHUNK] = model.sample(min(CHUNK, n - start), generator)
    return samples


def write_samples(
    run_dir: str | Path, n: int = 64, *, out: str | Path | None = None, npy: str | Path | None = None,
    seed: int = 0, force: bool = False,
) -> list[Path]:  # fmt: skip
    """Sample the run and write a PNG grid (``out``) and/or the raw array (``npy``, float32
    (n, *data_shape)); both outputs are checked before any work and not overwritten unless
    ``force``. Returns the written paths."""
    from capas.diagnostics.gan_plots import save_samples

    png = None if out is None else check_output_file(out, suffixes=(".png",), force=force)
    array = None if npy is None else check_output_file(npy, suffixes=(".npy",), force=force, option="--npy")
    samples = sample(run_dir, n, seed=seed)
    written = []
    if png is not None:
        written.append(save_samples(samples, png))
    if array is not None:
        np.save(array, np.asarray(samples.numpy(), dtype=np.float32))  # float32 already: no copy
        written.append(array)
    return written
