"""Pictures of a GAN: sample grids from a fixed noise batch (per epoch, and their GIF), the
training curves of D(x), D(G(z)) and both losses, and the saturation plot: the generator's
gradient norm under the minimax and non-saturating losses at the start of training.

:class:`SampleGrids` is the callback ``capas.fit`` adds to a GAN run with a run directory:
after every epoch it draws G(z_fixed) (the same z each time, ``GanTask.fixed_samples``)
into ``samples/epoch-NNNN.png`` and at the end of the fit makes ``samples.gif`` of them;
since the frames are files of the run directory, a resumed run's GIF has every epoch.
Samples with no picture (vectors of 5 values) get no grids; the run trains all the same.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from capas.diagnostics.figures import evenly_spaced, plt, save_figure
from capas.errors import CapasError
from capas.train.callbacks import Callback

SAMPLES_DIR = "samples"
GIF_NAME = "samples.gif"
#: the most frames a samples.gif holds (at 300 ms each: 30 s)
MAX_GIF_FRAMES = 100


def image_grid(images: Tensor | np.ndarray, columns: int | None = None) -> np.ndarray:
    """Images (n, C, H, W) tiled into one uint8 picture (rows H+1 high, 1-pixel gaps), each
    image scaled from its value range ([-1, 1] when negative values occur, else [0, 1])."""
    x = np.asarray(images.detach().cpu() if isinstance(images, Tensor) else images, dtype=np.float64)
    if x.ndim != 4:
        raise CapasError(f"an image grid needs images (n, C, H, W), got shape {x.shape}")
    if x.min() < 0:
        x = (x + 1) / 2
    x = np.clip(x, 0, 1)
    n, channels, h, w = x.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, channels))
    for i in range(n):
        r, c = divmod(i, columns)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i].transpose(1, 2, 0)
    picture = (grid * 255).round().astype(np.uint8)
    return picture[:, :, 0] if channels == 1 else picture


def scatter_picture(samples: Tensor, real: Tensor | None = None, size: int = 256) -> np.ndarray:
    """2-D samples (n, 2) drawn as blue 2x2-pixel dots over the ``real`` points (grey) in a
    size x size RGB picture (y up), framed on the real data's range plus a margin (on the
    samples' own range without real data): rasterised with numpy, a millisecond per frame."""
    points = samples.detach().cpu().double().numpy()
    frame = (real if real is not None else samples).detach().cpu().double().numpy()
    low, high = frame.min(0), frame.max(0)
    margin = 0.15 * max(float((high - low).max()), 1e-6)
    low, span = low - margin, float((high - low).max()) + 2 * margin
    picture = np.full((size, size, 3), 255, dtype=np.uint8)

    def draw(xy: np.ndarray, colour: tuple[int, int, int], dot: int) -> None:
        pixels = np.floor((xy - low) / span * (size - dot)).astype(np.int64)
        inside = ((pixels >= 0) & (pixels <= size - dot)).all(axis=1)
        for dx in range(dot):
            for dy in range(dot):
                picture[size - 1 - pixels[inside, 1] - dy, pixels[inside, 0] + dx] = colour

    if real is not None:
        draw(frame[:4000], (190, 190, 190), 1)
    draw(points, (31, 119, 180), 2)
    return picture


def drawn_shape(sample_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """How one sample of ``sample_shape`` is drawn: (C, H, W) as an image; (2,) as a point; a
    flat vector of s^2 or 3 s^2 values (an MLP GAN on MNIST: 784) as a square grey or colour
    image (1 or 3, s, s); None for anything else (5 values have no picture)."""
    if len(sample_shape) == 3 or tuple(sample_shape) == (2,):
        return tuple(sample_shape)
    if len(sample_shape) == 1:
        for channels in (1, 3):
            side = math.isqrt(sample_shape[0] // channels)
            if channels * side * side == sample_shape[0] and side > 1:
                return (channels, side, side)
    return None


def save_samples(samples: Tensor, path: str | Path, real: Tensor | None = None) -> Path:
    """Write generated ``samples`` as a PNG: an image grid for images (n, C, H, W) and square
    flat vectors (see :func:`drawn_shape`), a scatter picture over the ``real`` points (grey)
    for 2-D vectors (n, 2)."""
    from PIL import Image

    path = Path(path)
    shape = drawn_shape(tuple(samples.shape[1:]))
    if shape is None:
        raise CapasError(
            f"samples of shape {tuple(samples.shape)} cannot be drawn: need images (n, C, H, W), square flat "
            "images (n, s*s) or points (n, 2); save them with --npy instead"
        )
    if len(shape) == 3:
        picture = image_grid(samples.reshape(len(samples), *shape))
        scale = max(1, 256 // picture.shape[0])
        picture = np.kron(picture, np.ones((scale, scale) + picture.shape[2:], dtype=np.uint8))
    else:
        picture = scatter_picture(samples, real)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(path)
    except OSError as err:
        raise CapasError(f"cannot write the samples {path}: {err.strerror or err}; choose another path") from None
    return path


def animate(frames: list[Path], path: str | Path, ms_per_frame: int = 300, max_frames: int = MAX_GIF_FRAMES) -> Path:
    """A looping GIF of the PNG ``frames`` in order (each shown ``ms_per_frame``); of more
    than ``max_frames``, an evenly spaced selection that keeps the first and the last, so a
    600-epoch run still plays in half a minute (every epoch's PNG stays in the run)."""
    from PIL import Image

    if not frames:
        raise CapasError("no sample frames to animate; train at least one epoch with a run directory")
    if max_frames < 2:
        raise CapasError(f"max_frames must be at least 2 (the first and the last frame), got {max_frames}")
    frames = [frames[i] for i in evenly_spaced(len(frames), max_frames)]
    images = [Image.open(frame).convert("RGB") for frame in frames]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return path


class SampleGrids(Callback):
    """Per-epoch sample grids of a GAN run (``samples/epoch-NNNN.png``) and ``samples.gif``."""

    name = "sample_grids"

    def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, Any]) -> None:
        if trainer.run_dir is None or drawn_shape(trainer.task.model.data_shape) is None:  # no picture of 5-D data
            return
        task = trainer.task
        real = task.x_train if task.x_train.dim() == 2 else None
        save_samples(task.fixed_samples(), trainer.run_dir / SAMPLES_DIR / f"epoch-{epoch:04d}.png", real)

    def on_fit_end(self, trainer: Any) -> None:
        if trainer.run_dir is None:
            return
        frames = sorted((trainer.run_dir / SAMPLES_DIR).glob("epoch-*.png"))
        if frames:
            animate(frames, trainer.run_dir / GIF_NAME)


def plot_gan_history(history: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """D(x) and D(G(z)) (left) and the two losses (right) per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label in (("train_d_real", "D(x)"), ("train_d_fake", "D(G(z))")):
        left.plot(epochs, [row[key] for row in history], label=label)
    for key, label in (("train_d_loss", "discriminator loss"), ("train_g_loss", "generator loss")):
        right.plot(epochs, [row[key] for row in history], label=label)
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.legend()
    left.set_title(title or "what D says")
    return save_figure(fig, path)


def generator_gradient_norms(
    gan: Any, x: Tensor, steps: int = 200, lr: float = 1e-3, seed: int = 0
) -> dict[str, list[float]]:
    """Why the slides train G on -log D(G(z)): D is trained alone (non-saturating
    discriminator loss, Adam at ``lr``) for ``steps`` batches of ``x`` against the untrained
    G, and before each of its steps the generator's gradient norm ||dL_G / d theta_G|| is
    measured under both generator losses, on the same noise. As D grows confident that
    G(z) is fake, the minimax gradient vanishes and the non-saturating one does not.
    Returns ``{"minimax": [...], "non_saturating": [...]}`` (``steps`` norms each)."""
    from capas.objectives.gan_losses import gan_loss

    generator = torch.Generator(device=x.device).manual_seed(seed)
    losses = {name: gan_loss(name) for name in ("minimax", "non_saturating")}
    optimizer = torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    g_params = list(gan.generator.parameters())
    norms: dict[str, list[float]] = {name: [] for name in losses}
    batch = min(len(x), 256)
    for _ in range(steps):
        real = x[torch.randint(0, len(x), (batch,), generator=generator, device=x.device)]
        fake = gan.generator(gan.noise(batch, generator))
        fake_scores = gan.scores(fake)
        for name, loss in losses.items():
            grads = torch.autograd.grad(loss.generator(fake_scores), g_params, retain_graph=True)
            norms[name].append(float(torch.sqrt(sum((g**2).sum() for g in grads))))
        d_loss = losses["non_saturating"].discriminator(gan.scores(real), gan.scores(fake.detach()), 1.0)
        optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        optimizer.step()
    return norms


def plot_saturation(norms: dict[str, list[float]], path: str | Path) -> Path:
    """The generator's gradient norm per discriminator step under each loss (log scale)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, values in norms.items():
        ax.semilogy(
            range(1, len(values) + 1),
            values,
            label=f"{name}: " + ("log(1 - D(G(z)))" if name == "minimax" else "-log D(G(z))"),
        )
    ax.set_xlabel("discriminator steps (G untrained)")
    ax.set_ylabel("||gradient of G's loss||")
    ax.set_title("minimax saturates as D grows confident")
    ax.legend()
    return save_figure(fig, path)
