"""Convolutional training speed and what augmentation costs (issue 14), in one run.

1. ``capas.fit`` on the LeNet-style net (``1x28x28 c5x5x6:p2 mp2 c5x5x16 mp2 d120 d84 d10``,
   Adam, batch 64) against the same training written by hand in torch (an ``nn.Sequential``
   holding the same initial weights; per epoch one seeded ``randperm`` and one gather, then
   zero_grad/forward/cross_entropy/backward/step per slice). Target: ratio >= 0.95.
2. The share of a LeNet step that augmentation takes on the CPU: one training step
   (forward, backward, Adam) on a batch of 64 against ``ImageAugmenter(spec)`` on the same
   batch, for ``flip,rotate=15,crop=2,noise=0.1`` and with elastic distortion. Target: <= 20%.
3. kornia against capas's own ops (``capas.augment.ops``: one ``affine_grid`` +
   ``grid_sample``): the same batched random rotation + translation + flip, through
   ``kornia.augmentation`` (``RandomHorizontalFlip`` + ``RandomAffine``) and through
   ``kornia.geometry.transform.warp_affine`` with capas's matrices; kornia is skipped if it
   is not installed.
4. ``capas.fit`` with ``augment="flip,rotate=15,crop=2,noise=0.1"`` against without.
5. ``capas.fit`` with ``warn_gradients=False`` (no gradient monitor: its activation probes,
   a 256-sample forward pass at the start and after each epoch, are a fixed cost).

Timings are CPU seconds of this process with ``--threads`` threads (default 1: CPU time
then counts the work and barely changes when other programs load the machine), the best
of ``--repeats`` interleaved runs after a warm-up. Data: synthetic MNIST-shaped. Nothing is
asserted: numbers depend on the machine.

    python benchmarks/bench_cnn.py              # ~1-2 minutes on 2 cores
    python benchmarks/bench_cnn.py --quick --json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import capas
from capas.augment import ImageAugmenter, ops

LENET = "1x28x28 c5x5x6:p2 mp2 c5x5x16 mp2 d120 d84 d10"
AUGMENT = "flip,rotate=15,crop=2,noise=0.1"
BATCH = 64


def cpu_seconds(function, repeats: int) -> float:
    """The best CPU time of ``repeats`` calls of ``function`` (after one warm-up call)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return best


def hand_written() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip


def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.arange(n)[torch.randperm(n, generator=g)] % 10  # every class present
    return x, y


def loop(x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    model = hand_written()
    with torch.no_grad():
        for a, b in zip(capas.build(LENET, seed=0).parameters(), model.parameters(), strict=True):
            b.copy_(a)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        xs, ys = x[order], y[order]
        for start in range(0, len(x), BATCH):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xs[start : start + BATCH]), ys[start : start + BATCH])
            loss.backward()
            opt.step()
    float(loss)


def fit(x: torch.Tensor, y: torch.Tensor, epochs: int, augment: str | None = None, warn: bool = True) -> None:
    capas.fit(
        capas.build(LENET, seed=0), (x, y), optimizer="adam", lr=1e-3, epochs=epochs, batch_size=BATCH,
        seed=0, device="cpu", quiet=True, augment=augment, warn_gradients=warn,
    )  # fmt: skip


def step_seconds(repeats: int) -> float:
    """One LeNet training step (forward, backward, Adam) on a batch of 64."""
    model = capas.build(LENET, seed=0).training_module(True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data(BATCH)

    def step() -> None:
        for _ in range(10):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    return cpu_seconds(step, repeats) / 10


def augment_seconds(spec: str, repeats: int) -> float:
    augmenter, generator, (x, _) = ImageAugmenter(spec), torch.Generator().manual_seed(0), data(BATCH)
    return cpu_seconds(lambda: [augmenter(x, generator) for _ in range(10)], repeats) / 10


def kornia_seconds(repeats: int) -> dict[str, float] | None:
    """kornia's flip + random affine (its own random draws), and its warp_affine with capas's matrices."""
    try:
        import kornia
    except ImportError:
        return None
    x, _ = data(BATCH)
    pipeline = nn.Sequential(
        kornia.augmentation.RandomHorizontalFlip(p=0.5),
        kornia.augmentation.RandomAffine(degrees=15, translate=(2 / 28, 2 / 28), p=1.0),
    )
    angle, shift = torch.empty(BATCH).uniform_(-15, 15), torch.randint(-2, 3, (BATCH, 2)).float()
    theta = ops.affine_matrices(angle, shift, torch.ones(BATCH), 28, 28)
    # warp_affine wants the forward pixel transform: capas's matrix is the normalised inverse
    pixel = kornia.geometry.conversions.denormalize_homography(
        torch.cat([theta, torch.tensor([0.0, 0.0, 1.0]).expand(BATCH, 1, 3)], 1), (28, 28), (28, 28)
    )
    forward = torch.linalg.inv(pixel)[:, :2]
    ours = ImageAugmenter("flip,rotate=15,crop=2")
    generator = torch.Generator().manual_seed(0)
    return {
        "kornia_augmentation_ms": 1e3 * cpu_seconds(lambda: [pipeline(x) for _ in range(10)], repeats) / 10,
        "kornia_warp_affine_ms": 1e3
        * cpu_seconds(lambda: [kornia.geometry.transform.warp_affine(x, forward, (28, 28)) for _ in range(10)], repeats)
        / 10,
        "capas_flip_affine_ms": 1e3 * cpu_seconds(lambda: [ours(x, generator) for _ in range(10)], repeats) / 10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6400)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1,280 samples, 2 repeats")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeats = 1280, 2
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    x, y = data(args.samples)
    results: dict[str, float | dict | None] = {"samples": args.samples, "threads": args.threads}
    loop_s = cpu_seconds(lambda: loop(x, y, args.epochs), args.repeats)
    fit_s = cpu_seconds(lambda: fit(x, y, args.epochs), args.repeats)
    fit_aug_s = cpu_seconds(lambda: fit(x, y, args.epochs, AUGMENT), args.repeats)
    fit_unwatched_s = cpu_seconds(lambda: fit(x, y, args.epochs, warn=False), args.repeats)
    results |= {"loop_s": loop_s, "fit_s": fit_s, "fit_vs_loop_speed": loop_s / fit_s}
    # the gradient monitor's dead-unit and saturation probes (a forward pass of 256 samples at
    # the start and after each epoch) are a fixed cost that a short run feels most
    results |= {"fit_warn_gradients_off_s": fit_unwatched_s, "unwatched_vs_loop_speed": loop_s / fit_unwatched_s}
    results |= {"fit_augment_s": fit_aug_s, "augment_share_of_fit": (fit_aug_s - fit_s) / fit_aug_s}
    step = step_seconds(args.repeats * 3)
    results["lenet_step_ms"] = 1e3 * step
    for spec in (AUGMENT, AUGMENT + ",elastic=2"):
        seconds = augment_seconds(spec, args.repeats * 3)
        results[f"augment[{spec}]_ms"] = 1e3 * seconds
        results[f"augment[{spec}]_share_of_step"] = seconds / (step + seconds)
    results["kornia"] = kornia_seconds(args.repeats * 3)
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        if isinstance(value, dict):
            for inner, number in value.items():
                print(f"{key}.{inner:32s} {number:10.3f}")
        elif isinstance(value, float):
            print(f"{key:46s} {value:10.3f}")
        else:
            print(f"{key:46s} {value}")


if __name__ == "__main__":
    main()
