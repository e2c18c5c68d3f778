"""Recurrent nets: what ``capas.fit`` costs over a hand-written ``nn.LSTM`` loop, and the
variable-length and cell-loop paths side by side (issue 11).

Cases, one process, the same data and initial weights for every contender:

- ``fit``: an LSTM 28 -> 128 over 28 steps, many-to-one, then a dense 128 -> 10 (the
  sequential-MNIST net ``T28x28 lstm128 last d10``), Adam lr 0.001, batch 128, one epoch of
  N samples: ``capas.fit`` (default options, diagnostics included, ``threads`` as the
  loop's) against a hand-written
  loop over ``nn.LSTM(batch_first=True)`` + ``nn.Linear`` holding the same weights (one
  ``randperm`` and one gather per epoch, then zero_grad, forward, cross-entropy, backward,
  step per slice). Target of issue 11: speed ratio >= 0.95.
- ``lengths``: forward + backward of the same LSTM layer on batches of 128 sequences whose
  lengths are drawn from 7..28 (right-padded, mask given): ``padded`` (the fused kernel
  over all 28 steps, padded outputs zeroed), ``packed`` (``pack_padded_sequence``: padded
  steps skipped) and ``loop`` (the explicit cell loop, which carries the state through
  padded steps).
- ``cell``: forward + backward over 28 full steps: the fused kernel against the explicit
  cell loop (``Recurrent.fused = False``), for the LSTM, the GRU and the Elman cell.

Timed after a warm-up of each contender; printed as samples/s and a ratio to the reference
(the hand-written loop, ``padded``, the fused kernel). Synthetic data (x ~ U[0, 1], labels
from a fixed linear rule of the mean row). Nothing is asserted: timings depend on the
machine and its load.

    python benchmarks/bench_rnn.py                  # 12,800 samples (~2 min on 2 busy cores)
    python benchmarks/bench_rnn.py --quick          # 2,560 samples
    python benchmarks/bench_rnn.py --threads 2 --json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch
from torch import nn

import capas
from capas.layers.recurrent import Recurrent, sequence_mask

SPEC = "T28x28 lstm128 last d10"
BATCH, STEPS, FEATURES, HIDDEN = 128, 28, 28, 128
THREADS = 1  # every contender's torch threads (--threads); capas.fit gets it as its threads option


def make_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, STEPS, FEATURES, generator=generator)
    rule = torch.randn(FEATURES, 10, generator=generator)
    return x, ((x.mean(1) - 0.5) @ rule).argmax(1)  # centred: all ten classes occur


def hand_loop(net: capas.models.Network, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """The same net as nn.LSTM + nn.Linear, trained by the textbook loop; returns seconds."""
    cell, dense = net.layer("lstm1").cells[0], net.layer("dense1")
    lstm, linear = nn.LSTM(FEATURES, HIDDEN, batch_first=True), nn.Linear(HIDDEN, 10)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(cell.weight_ih)
        lstm.weight_hh_l0.copy_(cell.weight_hh)
        lstm.bias_ih_l0.copy_(cell.bias)
        lstm.bias_hh_l0.zero_()
        linear.weight.copy_(dense.weight)
        linear.bias.copy_(dense.bias)
    parameters = [*lstm.parameters(), *linear.parameters()]
    started = time.perf_counter()
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        xs, ys = x[order], y[order]
        for start in range(0, len(x), BATCH):
            optimizer.zero_grad(set_to_none=True)
            out, _ = lstm(xs[start : start + BATCH])
            loss = nn.functional.cross_entropy(linear(out[:, -1]), ys[start : start + BATCH])
            loss.backward()
            optimizer.step()
    float(loss.detach())
    return time.perf_counter() - started


def capas_fit(net: capas.models.Network, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        capas.fit(net, (x, y), optimizer="adam", lr=1e-3, epochs=epochs, batch_size=BATCH, threads=THREADS, quiet=True)
    return time.perf_counter() - started


def bench_fit(n: int) -> dict[str, float]:
    x, y = make_data(n)
    warm_x, warm_y = x[: 4 * BATCH], y[: 4 * BATCH]
    hand_loop(capas.build(SPEC, seed=0), warm_x, warm_y, 1)
    capas_fit(capas.build(SPEC, seed=0), warm_x, warm_y, 1)
    seconds = {
        "hand-written nn.LSTM loop": hand_loop(capas.build(SPEC, seed=0), x, y, 1),
        "capas.fit": capas_fit(capas.build(SPEC, seed=0), x, y, 1),
    }
    return {name: n / s for name, s in seconds.items()}


def forward_backward(layer: Recurrent, x: torch.Tensor, mask: torch.Tensor | None, repeats: int) -> float:
    """Samples/s of forward + backward of ``layer`` on x (B, T, F) under ``mask``."""
    for _ in range(2):  # warm-up
        with sequence_mask(mask):
            layer(x).sum().backward()
    started = time.perf_counter()
    for _ in range(repeats):
        with sequence_mask(mask):
            layer(x).sum().backward()
    return repeats * len(x) / (time.perf_counter() - started)


def bench_lengths(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    layer = Recurrent("lstm", FEATURES, HIDDEN)
    x = torch.rand(BATCH, STEPS, FEATURES)
    lengths = torch.randint(7, STEPS + 1, (BATCH,))
    mask = torch.arange(STEPS)[None, :] < lengths[:, None]
    results = {}
    for name, fused, packed in (("padded + mask", True, False), ("packed", True, True), ("cell loop", False, False)):
        layer.fused, layer.packed = fused, packed
        results[name] = forward_backward(layer, x, mask, repeats)
    return results


def bench_cells(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.rand(BATCH, STEPS, FEATURES)
    results = {}
    for kind in ("lstm", "gru", "elman"):
        layer = Recurrent(kind, FEATURES, HIDDEN)
        for name, fused in (("fused", True), ("cell loop", False)):
            layer.fused = fused
            results[f"{kind} {name}"] = forward_backward(layer, x, None, repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,560 samples and fewer repeats: a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    torch.set_num_threads(args.threads)
    n, repeats = (2560, 5) if args.quick else (12800, 20)
    sections = {
        "fit": bench_fit(n),
        "lengths": bench_lengths(repeats),
        "cell": bench_cells(repeats),
    }
    references = {"fit": "hand-written nn.LSTM loop", "lengths": "padded + mask"}
    if args.json:
        print(json.dumps({"samples": n, "threads": args.threads, **sections}))
        return
    print(f"bench_rnn: LSTM {FEATURES} -> {HIDDEN}, {STEPS} steps, batch {BATCH}, {args.threads} thread(s)")
    for section, results in sections.items():
        print(f"\n[{section}]")
        for name, rate in results.items():
            kind = name.split()[0]
            reference = references.get(section) or f"{kind} fused"
            ratio = rate / results[reference]
            print(f"  {name:28s} {rate:10.0f} samples/s   x{ratio:.2f} of {reference}")


if __name__ == "__main__":
    main()
