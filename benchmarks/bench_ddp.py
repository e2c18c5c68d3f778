"""Multi-process training: 1 process against 2 on this machine's CPUs (gloo), and, when
CUDA exists, one GPU against the CPU.

The same ``capas.fit`` of ``784-256-10`` (ReLU, Adam) on synthetic MNIST-shaped data, with
the same *global* batch: 1 process of batch 2B against 2 processes of batch B each (DDP
averages their gradients, so both take the same steps). Reported: samples/s over the
epochs after the first (inside the ranks, without start-up), the wall time including
starting the ranks, and the ratio 2-proc/1-proc. On a 2-core machine no speed-up is
expected: each rank gets one core (``torch.set_num_threads(cores // nproc)``), so the
matrix products are no faster than one process's two threads, and every step adds an
all-reduce of the gradients; the point of the numbers is what DDP costs, honestly.

    python benchmarks/bench_ddp.py            # N = 12000, 3 epochs
    python benchmarks/bench_ddp.py --n 3000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

SPEC, BATCH = "784-256-10", 64  # global batch: 1 process x 64 = 2 processes x 32


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """x (n, 784) uniform in [0, 1]; y the decile (10 equal classes) of a random projection."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 784, generator=g)
    y = (x @ torch.randn(784, generator=g)).argsort().argsort() * 10 // n
    cut = n * 5 // 6
    return x[:cut], y[:cut], x[cut:], y[cut:]


def train(n: int, epochs: int, batch: int, device: str, threads: int | None = None) -> dict:
    """One fit (in every rank of a multi-process run); rank 0's numbers. ``threads``: torch's
    intra-op threads for it (None: as set, the launcher gives each rank cores // nproc)."""
    from capas.api.fit import fit
    from capas.models import build

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)

    data = make_data(n)
    result = fit(
        build(SPEC, seed=0),
        data,
        epochs=epochs,
        batch_size=batch,
        seed=0,
        quiet=True,
        device=device,
        engine="autograd",
        grad_norms=False,
        warn_gradients=False,
    )
    seconds = [record["seconds"] for record in result.history][1:]
    used = torch.get_num_threads()
    torch.set_num_threads(before)
    return {
        "samples_per_s": len(data[0]) * len(seconds) / sum(seconds),
        "val_accuracy": result.history[-1]["val_accuracy"],
        "threads": used,
    }


def one_against_two(n: int, epochs: int) -> list[dict]:
    """Single process (batch 2B; all cores, then one thread) and two gloo ranks (batch B
    each, cores // 2 threads each), same global batch; ratios against the first row."""
    from capas.train import distributed

    rows = []
    for threads in (os.cpu_count() or 1, 1):
        started = time.perf_counter()
        single = train(n, epochs, BATCH, "cpu", threads)
        rows.append({"setup": "1 process, batch 64", "wall_s": time.perf_counter() - started, **single})
    started = time.perf_counter()
    pair = distributed.launch(train, 2, (n, epochs, BATCH // 2, "cpu"))
    rows.append({"setup": "2 processes, batch 32 each (gloo)", "wall_s": time.perf_counter() - started, **pair})
    for row in rows[1:]:
        row["ratio"] = row["samples_per_s"] / rows[0]["samples_per_s"]
    return rows


def gpu_against_cpu(n: int, epochs: int) -> list[dict]:
    """One GPU against this machine's CPU, one process each, batch 64."""
    rows = []
    for device in ("cpu", "cuda"):
        started = time.perf_counter()
        row = train(n, epochs, BATCH, device)
        rows.append({"setup": f"1 process on {device}", "wall_s": time.perf_counter() - started, **row})
    rows[1]["ratio"] = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12000, help="samples (5/6 train, 1/6 validation)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is not timed)")
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args()
    print(f"{SPEC}, N = {args.n}, {args.epochs} epochs, {os.cpu_count()} CPU cores, torch {torch.__version__}")
    report = {"cpu": one_against_two(args.n, args.epochs)}
    if torch.cuda.is_available():
        report["gpu"] = gpu_against_cpu(args.n, args.epochs)
    else:
        print("(no CUDA device: the GPU-against-CPU section runs on a GPU machine)")
    for section in report.values():
        for row in section:
            ratio = f"  x{row['ratio']:.2f}" if "ratio" in row else ""
            print(
                f"{row['setup']:<36} {row['samples_per_s']:>10,.0f} samples/s{ratio}  "
                f"wall {row['wall_s']:6.1f} s  val acc {row['val_accuracy']:.3f}  threads {row['threads']}"
            )
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
