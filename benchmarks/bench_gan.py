"""What one GAN step of ``capas.fit`` costs over the same step written by hand in torch (issue 13).

For each case both contenders train the same generator and discriminator (copies of one
``capas.models.gan.build_gan(..., seed=0)`` GAN) on the same data with Adam (lr 2e-4,
betas 0.5/0.999), the non-saturating loss and the same batch size, for the same number of
epochs:

- ``loop``: the hand-written torch GAN loop: per epoch one ``randperm`` and one gather;
  per batch noise z ~ N(0, I) from a seeded generator, fake = G(z), the discriminator's
  loss BCE(a(x), 1) + BCE(a(fake.detach()), 0) from the logits, backward, step; then the
  generator's loss softplus(-a(fake)).mean(), backward, step. Nothing is read back until
  the end.
- ``capas``: ``capas.fit(gan, x, epochs=..., batch_size=..., lr=2e-4,
  optimizer_options={"betas": (0.5, 0.999)}, quiet=True)`` (the GAN task: the same two
  steps plus its history of D(x), D(G(z)) and both losses; no run directory, so no
  per-epoch sample grids).

Cases: an MLP GAN on 784-dimensional data (G 64-256-256-784:tanh, D 784-256-256-1, batch
64) and a DCGAN on 1x28x28 images (G ``64x1x1 tc7x7x64 bn relu tc4x4x32:s2:p1 bn relu
tc4x4x1:s2:p1:tanh``, D ``1x28x28 c4x4x32:s2:p1 c4x4x64:s2:p1 d1``, batch 64). Data:
synthetic, uniform in [-1, 1].

Timed: each contender's whole training call after a warm-up epoch; the contenders
alternate ``--repeats`` times and the fastest of each is kept (a loaded machine only slows
runs down). Printed: ms per GAN step (wall and CPU) and the speed ratio loop / capas
(target >= 0.9). Nothing is asserted: run it on a quiet machine.

    python benchmarks/bench_gan.py                # ~1-2 min on 2 cores
    python benchmarks/bench_gan.py --quick --json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings

import torch
from torch.nn import functional as F

import capas
from capas.models.gan import build_gan

CASES = {
    "mlp": ("64-256-256-784:tanh", "784-256-256-1", (784,)),
    "dcgan": (
        "64x1x1 tc7x7x64 bn relu tc4x4x32:s2:p1 bn relu tc4x4x1:s2:p1:tanh",
        "1x28x28 c4x4x32:s2:p1 c4x4x64:s2:p1 d1",
        (1, 28, 28),
    ),
}
LR, BETAS = 2e-4, (0.5, 0.999)


def hand_loop(gan, x: torch.Tensor, epochs: int, batch: int) -> float:
    """The same training written by hand; returns the last discriminator loss."""
    G, D = gan.generator, gan.discriminator
    g_opt = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
    d_opt = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    shuffle, noise = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    G.train()
    D.train()
    last = torch.zeros(())
    for _ in range(epochs):
        order = x[torch.randperm(len(x), generator=shuffle)]
        for start in range(0, len(x), batch):
            real = order[start : start + batch]
            z = torch.randn((len(real), *gan.noise_shape), generator=noise)
            fake = G(z)
            real_scores, fake_scores = D.logits(real).reshape(-1), D.logits(fake.detach()).reshape(-1)
            d_loss = F.binary_cross_entropy_with_logits(
                real_scores, torch.ones_like(real_scores)
            ) + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g_loss = F.softplus(-D.logits(fake).reshape(-1)).mean()
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            last = d_loss.detach()
    return float(last)


def with_capas(gan, x: torch.Tensor, epochs: int, batch: int) -> float:
    result = capas.fit(
        gan, x, epochs=epochs, batch_size=batch, lr=LR, optimizer_options={"betas": BETAS}, quiet=True,
        threads=torch.get_num_threads(),
    )  # fmt: skip
    return result.history[-1]["train_d_loss"]


def timed(function, gan, x, epochs, batch) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    function(gan, x, epochs, batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="512 samples, 1 epoch, 2 repeats")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.epochs, args.repeats = 512, 1, 2
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    results = {}
    for case, (g_spec, d_spec, shape) in CASES.items():
        x = torch.rand((args.samples, *shape), generator=torch.Generator().manual_seed(0)) * 2 - 1
        reference = build_gan(g_spec, d_spec, seed=0)
        steps = args.epochs * -(-args.samples // args.batch)
        for function in (hand_loop, with_capas):  # warm-up: lazy imports, kernel set-up
            function(copy.deepcopy(reference), x[: args.batch * 4], 1, args.batch)
        best = {"loop": (float("inf"),) * 2, "capas": (float("inf"),) * 2}
        for _ in range(args.repeats):
            for name, function in (("loop", hand_loop), ("capas", with_capas)):
                wall, cpu = timed(function, copy.deepcopy(reference), x, args.epochs, args.batch)
                best[name] = min(best[name], (wall, cpu))
        row = {
            name: {"ms_per_step": 1000 * wall / steps, "cpu_ms_per_step": 1000 * cpu / steps}
            for name, (wall, cpu) in best.items()
        }
        row["speed_ratio"] = best["loop"][0] / best["capas"][0]
        row["cpu_ratio"] = best["loop"][1] / best["capas"][1]
        row["steps"] = steps
        results[case] = row
        if not args.json:
            print(
                f"{case:6s} loop {row['loop']['ms_per_step']:7.2f} ms/step  capas {row['capas']['ms_per_step']:7.2f} "
                f"ms/step  speed ratio {row['speed_ratio']:.3f} (cpu {row['cpu_ratio']:.3f})  [{steps} steps]"
            )
    if args.json:
        print(json.dumps({"threads": args.threads, "batch": args.batch, "cases": results}))


if __name__ == "__main__":
    main()
