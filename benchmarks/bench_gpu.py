"""Training throughput and peak memory of capas on a GPU: float32 against mixed precision.

Three models on synthetic MNIST-shaped data (classes from a fixed random rule, so the
networks learn), each trained by ``capas.fit`` for a few epochs in float32, with
``amp="bf16"`` and with ``amp="fp16"`` (gradient scaling): the MLP ``784-1024-1024-10``,
the LeNet-style ``1x28x28 c5x5x6:p2 mp2 c5x5x16 mp2 d120 d84 d10`` and an LSTM reading
each image as 28 steps of 28 pixels (``T28x28 lstm128 last d10`` from capas's recurrent
layers; torch's ``nn.LSTM`` with a linear head when those are not available). Reported
per case: samples/s over the epochs after the first (the first pays cuDNN's autotuning
and the allocator's growth), the speed-up over float32, peak GPU memory
(``torch.cuda.max_memory_allocated``) and the last validation accuracy.

    python benchmarks/bench_gpu.py            # N = 20000, 3 epochs (a minute or two on a GPU)
    python benchmarks/bench_gpu.py --n 4000 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch import nn

CASES = {
    "mlp 784-1024-1024-10": ("784-1024-1024-10", (784,), 256),
    "lenet": ("1x28x28 c5x5x6:p2 mp2 c5x5x16 mp2 d120 d84 d10", (1, 28, 28), 128),
    "lstm128": ("T28x28 lstm128 last d10", (28, 28), 128),
}
PRECISIONS = (None, "bf16", "fp16")


class TorchLSTM(nn.Module):
    """The fallback LSTM classifier: torch's nn.LSTM, its last step, a linear layer (logits)."""

    def __init__(self, features: int = 28, hidden: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, classes)
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def make_data(n: int, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val): x uniform in [0, 1], y the decile (10 classes of
    equal size) of a fixed random projection of x."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    score = x.reshape(n, -1) @ torch.randn(x[0].numel(), generator=g)  # (n,)
    y = score.argsort().argsort() * 10 // n
    cut = n * 5 // 6
    return x[:cut], y[:cut], x[cut:], y[cut:]


def make_model(name: str) -> tuple[nn.Module, str]:
    """The case's capas network, or torch's LSTM when capas cannot build the recurrent spec."""
    from capas.errors import CapasError
    from capas.models import build

    spec = CASES[name][0]
    try:
        return build(spec, seed=0), spec
    except (CapasError, ImportError) as err:
        if "lstm" not in name:
            raise
        print(f"  ({spec!r} not buildable here: {err}; using torch.nn.LSTM)", file=sys.stderr)
        torch.manual_seed(0)
        return TorchLSTM(), "torch nn.LSTM(28, 128) + Linear(128, 10)"


def measure(name: str, amp: str | None, n: int, epochs: int, device: str) -> dict:
    """One fit; samples/s after the first epoch, peak memory, last validation accuracy."""
    from capas.api.fit import fit

    shape, batch = CASES[name][1], CASES[name][2]
    data = make_data(n, shape)
    model, built = make_model(name)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    options = dict(epochs=epochs, batch_size=batch, seed=0, quiet=True, device=device, engine="autograd")
    started = time.perf_counter()
    result = fit(model, data, amp=amp, grad_norms=False, warn_gradients=False, **options)
    wall = time.perf_counter() - started
    seconds = [record["seconds"] for record in result.history][1:] or [wall]
    samples = len(data[0])
    return {
        "case": name,
        "model": built,
        "amp": amp or "float32",
        "device": device,
        "samples_per_s": samples * len(seconds) / sum(seconds),
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
        "val_accuracy": result.history[-1].get("val_accuracy"),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="samples (5/6 train, 1/6 validation)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing to measure (run it on a GPU machine)")
        return
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, N = {args.n}, {args.epochs} epochs")
    rows = []
    for name in args.cases.split(","):
        base = None
        for amp in PRECISIONS:
            row = measure(name.strip(), amp, args.n, args.epochs, "cuda")
            base = base or row["samples_per_s"]
            row["speedup_vs_float32"] = row["samples_per_s"] / base
            rows.append(row)
            print(
                f"{row['case']:<22} {row['amp']:<8} {row['samples_per_s']:>11,.0f} samples/s  "
                f"x{row['speedup_vs_float32']:.2f}  peak {row['peak_mb']:>8.1f} MB  "
                f"val acc {row['val_accuracy']:.3f}",
                flush=True,
            )
    if args.json:
        print(json.dumps({"gpu": torch.cuda.get_device_name(0), "rows": rows}))


if __name__ == "__main__":
    main()
