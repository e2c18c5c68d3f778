"""What ``capas.fit`` costs over the same training written by hand in torch (issue 10).

For each case, every contender trains the same network from the same initial weights (a
``capas.build(..., seed=0)`` network; the hand-written loop trains an equivalent
``nn.Sequential`` into which those weights are copied) with the same optimizer, learning
rate, batch size and number of epochs, on the same data, each in a subprocess of its own so
that its peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

- ``loop``: the hand-written torch loop: per epoch one ``randperm`` from a seeded
  ``torch.Generator`` and one gather, then ``zero_grad``, forward, ``cross_entropy``,
  ``backward``, ``optimizer.step`` per slice; the loss is read once at the end.
- ``capas``: ``capas.fit(model, (x, y), optimizer=..., lr=..., epochs=..., batch_size=...,
  quiet=True)`` with every other option at its default, gradient warnings included
  (``CapasWarning``s are silenced, not switched off).
- ``capas-nodiag``: the same with ``warn_gradients=False``: the difference to ``capas`` is
  what the default diagnostics cost.

Cases: 784-100-10 and 784-1024-1024-10 ReLU (batch 128) and the LeNet-style
``1x28x28 c5x5x6:p2 mp2 c5x5x16 mp2 d120 d84 d10`` (batch 64), all with Adam (lr 0.001)
and cross-entropy; and the course's 784-30-10 sigmoid net with squared error, SGD lr 0.5,
batch 10, where ``capas.fit`` (``engine="auto"``, which picks the explicit BackProp engine)
is compared with that engine's own epoch loop (``engine``:
``capas.backprop.BackpropStepper(..., grad_norms=False).run_epoch``).

Timed: the whole training call (``capas.fit`` with its set-up, probes and history; the
loop from building its optimizer to the last loss read), after the data is in memory and
after a warm-up call of the same contender on 4 batches (a copy of the network), since
first calls in a process (torch.optim's lazy imports, kernel set-up) take seconds; not
timed: importing, making the data, the warm-up. Printed per case and contender: samples/s
(samples x epochs / wall seconds); samples per CPU second (with one thread, a measure of
the work done, which a loaded machine disturbs far less than wall time); peak resident
memory (MB); and each as a ratio to the reference (``loop`` or ``engine``). Targets of
issue 10: speed ratio >= 0.95 on LeNet and >= 0.90 for the engine case, peak memory
ratio <= 1.25.

Data: synthetic MNIST-shaped (x uniform in [0, 1], labels from a fixed random linear rule),
or real MNIST's training split when ``$CAPAS_DATA`` holds it (``mnist.npz``, as
``capas.data.load("mnist")`` reads it), e.g. ``CAPAS_DATA=../shared/data``.

    python benchmarks/bench_overhead.py                 # 60,000 samples, 1 epoch, ~5 min on 2 cores
    python benchmarks/bench_overhead.py --quick         # 2,000 samples: a smoke run (~1 min)
    python benchmarks/bench_overhead.py --threads 2 --json
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_overhead.py   # another version

It uses only ``capas.fit``, ``capas.build``, ``capas.data.load`` and
``capas.backprop.BackpropStepper``, so it runs against older checkouts too. Nothing is
asserted: timings depend on the machine and its load (run it on a quiet one).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

SEED = 0
LENET = "1x28x28 c5x5x6:p2 mp2 c5x5x16 mp2 d120 d84 d10"
CASES = {
    # name: spec, input shape, hidden act, output act, capas loss, optimizer, lr, batch, reference
    "784-100-10": ("784-100-10", (784,), "relu", None, "cross_entropy", "adam", 1e-3, 128, "loop"),
    "784-1024-1024-10": ("784-1024-1024-10", (784,), "relu", None, "cross_entropy", "adam", 1e-3, 128, "loop"),
    "lenet": (LENET, (1, 28, 28), "relu", None, "cross_entropy", "adam", 1e-3, 64, "loop"),
    "784-30-10-sigmoid": ("784-30-10", (784,), "sigmoid", "sigmoid", "mse_half_sum", "sgd", 0.5, 10, "engine"),
}
CONTENDERS = {"loop": ("loop", "capas", "capas-nodiag"), "engine": ("engine", "capas")}


# ---- the worker: one contender of one case, in its own process -------------------------------
def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(started: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds of this process since ``started``: with one thread, CPU seconds
    count the work and barely change when other programs load the machine."""
    wall, cpu = clock()
    return wall - started[0], cpu - started[1]


def load_data(n: int, shape: tuple[int, ...]):
    """x (n, *shape) float32 in [0, 1], y (n,) int64: real MNIST's training split when
    $CAPAS_DATA holds it, else synthetic (uniform pixels, labels from a random linear rule)."""
    import torch

    folder = os.environ.get("CAPAS_DATA")
    if folder and (Path(folder) / "mnist.npz").is_file():
        import capas

        data = capas.data.load("mnist", seed=SEED)
        x, y = data.x_train[:n], data.y_train[:n]
        return torch.as_tensor(x, dtype=torch.float32).reshape(len(x), *shape).contiguous(), torch.as_tensor(y).long()
    g = torch.Generator().manual_seed(SEED)
    x = torch.rand(n, 784, generator=g)
    y = (x @ torch.randn(784, 10, generator=g)).argmax(dim=1)
    return x.reshape(n, *shape), y


def hand_written(spec: str, act: str):
    """The network of ``spec`` as a plain ``nn.Sequential``, as one writes it by hand."""
    from torch import nn

    activation = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[act]
    if spec == LENET:
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), activation(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), activation(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), activation(), nn.Linear(120, 84), activation(), nn.Linear(84, 10),
        )  # fmt: skip
    widths = [int(w) for w in spec.split("-")]
    layers: list = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(a, b)] + ([activation()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


def copy_weights(source, target) -> None:
    """Copy ``source``'s parameters into ``target``'s, in order (shapes must agree)."""
    import torch

    pairs = list(zip(source.parameters(), target.parameters(), strict=True))
    with torch.no_grad():
        for a, b in pairs:
            if a.shape != b.shape:
                raise SystemExit(f"bench_overhead: parameter shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
            b.copy_(a)


def run_loop(net, spec, act, optimizer, lr, batch, epochs, x, y) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F

    model = hand_written(spec, act)
    copy_weights(net, model)
    started = clock()
    opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer](model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)  # (n,)
        xs, ys = x[order], y[order]  # one gather per epoch
        for start in range(0, len(x), batch):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xs[start : start + batch]), ys[start : start + batch])
            loss.backward()
            opt.step()
    float(loss.detach())
    return since(started)


def run_engine(net, loss, lr, batch, epochs, x, y) -> tuple[float, float]:
    import torch

    from capas.backprop import BackpropStepper

    started = clock()
    stepper = BackpropStepper(net, torch.optim.SGD(net.parameters(), lr=lr), loss, grad_norms=False)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        mean = stepper.run_epoch(x, y, batch, generator)
    float(mean)
    return since(started)


def run_capas(net, loss, optimizer, lr, batch, epochs, x, y, diagnostics: bool) -> tuple[float, float]:
    import capas

    options = {} if diagnostics else {"warn_gradients": False}
    started = clock()
    capas.fit(
        net,
        (x, y),
        loss=loss,
        optimizer=optimizer,
        lr=lr,
        epochs=epochs,
        batch_size=batch,
        seed=SEED,
        device="cpu",
        quiet=True,
        **options,
    )
    return since(started)


def worker(case: str, contender: str, n: int, epochs: int, threads: int) -> dict:
    """Train one contender; its samples/s and this process's peak resident memory."""
    import torch

    torch.set_num_threads(threads)
    import capas

    warnings.simplefilter("ignore")  # CapasWarnings about synthetic data are not news here
    spec, shape, act, out_act, loss, optimizer, lr, batch, _ = CASES[case]
    x, y = load_data(n, shape)
    net = capas.build(
        spec, act=act, loss="cross_entropy" if loss == "cross_entropy" else "mse", output_act=out_act, seed=SEED
    )

    def train(model, xs, ys, epochs: int) -> tuple[float, float]:
        if contender == "loop":
            return run_loop(model, spec, act, optimizer, lr, batch, epochs, xs, ys)
        if contender == "engine":
            return run_engine(model, loss, lr, batch, epochs, xs, ys)
        return run_capas(model, loss, optimizer, lr, batch, epochs, xs, ys, diagnostics=contender == "capas")

    warm = 4 * batch  # first calls (lazy imports in torch.optim, kernel set-up) take seconds: not per sample
    train(copy.deepcopy(net), x[:warm], y[:warm], 1)
    seconds, cpu = train(net, x, y, epochs)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "case": case,
        "contender": contender,
        "n": len(x),
        "epochs": epochs,
        "samples_per_s": len(x) * epochs / seconds,
        "seconds": seconds,
        "samples_per_cpu_s": len(x) * epochs / cpu,
        "peak_mb": peak_kb / 1024,
    }


# ---- the driver ---------------------------------------------------------------------------------
def measure(case: str, contender: str, n: int, epochs: int, threads: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        case,
        contender,
        "--n",
        str(n),
        "--epochs",
        str(epochs),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_overhead: {case}/{contender} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio(result: dict, reference: dict, key: str) -> float:
    return result[key] / reference[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 samples: a smoke run")
    parser.add_argument("--n", type=int, default=None, help="training samples (default 60,000; --quick 2,000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every contender")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--json", action="store_true", help="print one JSON object (the rows) as the last line")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "CONTENDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (2_000 if args.quick else 60_000)
    if args.worker:
        print(json.dumps(worker(*args.worker, n, args.epochs, args.threads)))
        return

    source = (
        "real MNIST"
        if os.environ.get("CAPAS_DATA") and (Path(os.environ["CAPAS_DATA"]) / "mnist.npz").is_file()
        else "synthetic MNIST-shaped data"
    )
    print(f"bench_overhead: {n:,} samples of {source}, {args.epochs} epoch(s), {args.threads} torch thread(s)")
    rows = []
    for case in args.cases:
        spec, *_, optimizer, lr, batch, reference = CASES[case]
        results = {c: measure(case, c, n, args.epochs, args.threads) for c in CONTENDERS[reference]}
        ref = results[reference]
        print(f"\n{case} ({spec}), {optimizer} lr {lr:g}, batch {batch}")
        for contender, r in results.items():
            print(
                f"  {contender:<13} {r['samples_per_s']:>9,.0f} samples/s {ratio(r, ref, 'samples_per_s'):5.2f}x"
                f"   per CPU s {r['samples_per_cpu_s']:>9,.0f} {ratio(r, ref, 'samples_per_cpu_s'):5.2f}x"
                f"   peak {r['peak_mb']:7.1f} MB {ratio(r, ref, 'peak_mb'):5.2f}x"
            )
        capas = results["capas"]
        rows.append(
            {
                "case": case,
                "reference": reference,
                "results": results,
                "speed_ratio": ratio(capas, ref, "samples_per_s"),
                "cpu_speed_ratio": ratio(capas, ref, "samples_per_cpu_s"),
                "memory_ratio": ratio(capas, ref, "peak_mb"),
            }
        )
    print("\nratios capas / reference (speed: higher is better; peak memory: lower is better)")
    for row in rows:
        print(
            f"  {row['case']:<18} vs {row['reference']:<6}  speed {row['speed_ratio']:.2f}x"
            f" (per CPU second {row['cpu_speed_ratio']:.2f}x)  peak memory {row['memory_ratio']:.2f}x"
        )
    if args.json:
        print(json.dumps({"n": n, "epochs": args.epochs, "threads": args.threads, "data": source, "rows": rows}))


if __name__ == "__main__":
    main()
