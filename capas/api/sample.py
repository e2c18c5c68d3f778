"""``sample``: draw from a trained generative model (what ``capas sample`` calls): a GAN's
generator, an RBM's Gibbs chains, or a DBN's (an RBM pre-training directory: Gibbs steps
in its top RBM, then the pass down to the inputs).

A GAN draws in one pass, G(z) for noise z seeded by ``seed``. An RBM runs ``steps``
alternating Gibbs steps v -> h -> v from random visible states and gives P(v | h) of the
last step. Those probabilities are the usual picture of what an RBM has learned: binary
states would look like noise around them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from capas.api.outputs import check_output_file
from capas.errors import RunDirError
from capas.limits import check_fits
from capas.models.gan import GAN
from capas.models.rbm import RBM
from capas.models.registry import noun
from capas.train import rundir

#: samples generated at a time: a large --n needs memory for its samples, not for every
#: hidden activation of all of them at once
CHUNK = 4096
#: Gibbs steps of an RBM's chains when none are given (far from its random start)
GIBBS_STEPS = 1000


def sample(run_dir: str | Path, n: int = 64, *, seed: int = 0, steps: int | None = None) -> Tensor:
    """``n`` samples of the GAN or RBM trained in ``run_dir`` (its last saved weights), or of
    the DBN of an RBM pre-training directory, drawn with ``seed``: (n, *data_shape) for a
    GAN, (n, V) for an RBM or a DBN (``steps`` Gibbs steps, default :data:`GIBBS_STEPS`);
    RunDirError for another kind of run."""
    if (Path(run_dir) / "pretrain.json").is_file():
        from capas.diagnostics.pretrain_plots import load_pretrained_dbn

        return draw(load_pretrained_dbn(run_dir), n, seed=seed, steps=steps)
    model = rundir.load_model(Path(run_dir))
    if not isinstance(model, (GAN, RBM)):
        raise RunDirError(
            f"{run_dir} holds {noun(model)}, not a GAN, an RBM or an RBM pre-training; capas sample draws from those"
        )
    return draw(model, n, seed=seed, steps=steps)


def draw(model: nn.Module, n: int, *, seed: int = 0, steps: int | None = None) -> Tensor:
    """``n`` samples of a GAN or an RBM, :data:`CHUNK` at a time, refused in one line when
    the samples alone would not fit in memory."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RunDirError(f"the number of samples must be a positive integer, got {n!r}")
    if isinstance(model, GAN) and steps is not None:
        raise RunDirError("--steps counts an RBM's Gibbs steps; a GAN draws its samples in one pass, drop it")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise RunDirError(f"the number of Gibbs steps must be a positive integer, got {steps!r}")
    if isinstance(model, GAN):
        shape = tuple(model.data_shape)
    else:
        shape = (model.n_visible,) if isinstance(model, RBM) else (model.rbms[0].n_visible,)  # an RBM or a DBN
    size = math.prod(shape)
    check_fits(n * size * 4, f"{n:,} samples of {size:,} values", "ask for fewer samples (--n)")
    generator = torch.Generator().manual_seed(seed)

    def chunk(count: int) -> Tensor:
        if isinstance(model, GAN):
            return model.sample(count, generator)
        if not isinstance(model, RBM):  # a DBN: Gibbs steps in its top RBM, then the pass down to the inputs
            return model.sample(count, steps or GIBBS_STEPS, generator)
        with torch.no_grad():
            v = model.sample(count, (steps or GIBBS_STEPS) - 1, generator)
            return model.visible_probs(model.sample_hidden(v, generator))  # (count, V): the last step's P(v|h)

    if n <= CHUNK:
        return chunk(n)
    samples = torch.empty(n, *shape)  # the model's activations stay one chunk's
    for start in range(0, n, CHUNK):
        samples[start : start + CHUNK] = chunk(min(CHUNK, n - start))
    return samples


def write_samples(
    run_dir: str | Path, n: int = 64, *, out: str | Path | None = None, npy: str | Path | None = None,
    seed: int = 0, steps: int | None = None, force: bool = False,
) -> list[Path]:  # fmt: skip
    """Sample the run and write a PNG grid (``out``) and/or the raw array (``npy``, float32
    (n, *data_shape)); both outputs are checked before any work and not overwritten unless
    ``force``. Returns the written paths."""
    from capas.diagnostics.gan_plots import save_samples

    png = None if out is None else check_output_file(out, suffixes=(".png",), force=force)
    array = None if npy is None else check_output_file(npy, suffixes=(".npy",), force=force, option="--npy")
    samples = sample(run_dir, n, seed=seed, steps=steps)
    written = []
    if png is not None:
        written.append(save_samples(samples, png))
    if array is not None:
        np.save(array, np.asarray(samples.numpy(), dtype=np.float32))  # float32 already: no copy
        written.append(array)
    return written
