"""One epoch of CD-1 on binarised synthetic 60,000 x 784 data: capas ``RBM`` against
scikit-learn's ``BernoulliRBM`` (500 hidden units, batch 100, learning rate 0.1), in one run.

capas is timed twice: its bare CD loop (``ContrastiveDivergence.step`` over shuffled
batches: what the update costs) and ``capas.fit(rbm, x)`` (the same on the training loop,
``ContrastiveDivergenceTask``, plus per-epoch monitoring: reconstruction error, free energy
and pseudo-log-likelihood on 1,000 samples).
scikit-learn's ``fit`` runs its persistent-chain CD-1 with ``n_iter=1``. Both get float32
data. After training both are scored with the same pseudo-log-likelihood formula.

    python benchmarks/bench_rbm.py              # ~1 minute on 2 cores
    python benchmarks/bench_rbm.py --n 10000    # smaller
    python benchmarks/bench_rbm.py --threads 1 # both libraries on one thread (torch + BLAS)
    python benchmarks/bench_rbm.py --device cuda

Prints samples/s and the ratio capas / scikit-learn (higher is faster); asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.neural_network import BernoulliRBM
from threadpoolctl import threadpool_limits

import capas
from capas.models.rbm import RBM, CDOptions, ContrastiveDivergence

D, HIDDEN, BATCH, LR, SEED = 784, 500, 100, 0.1, 0


def synthetic_binary(n: int) -> torch.Tensor:
    """(n, 784) in {0, 1}: 20 random binary prototypes, each pixel flipped with probability 0.1."""
    g = torch.Generator().manual_seed(SEED)
    prototypes = (torch.rand(20, D, generator=g) < 0.3).float()  # (20, D)
    which = torch.randint(0, 20, (n,), generator=g)  # (n,)
    flips = (torch.rand(n, D, generator=g) < 0.1).float()  # (n, D)
    return (prototypes[which] + flips) % 2


def time_capas_cd_loop(x: torch.Tensor) -> tuple[float, RBM]:
    rbm = RBM(D, HIDDEN).to(x.device)
    g = torch.Generator(device=x.device).manual_seed(SEED)
    rbm.reset_parameters(g)
    trainer = ContrastiveDivergence(rbm, CDOptions(lr=LR, k=1, batch_size=BATCH), g)
    _sync(x)
    start = time.perf_counter()
    order = torch.randperm(x.shape[0], generator=g, device=x.device)
    for i in range(0, x.shape[0], BATCH):
        trainer.step(x[order[i : i + BATCH]])
    _sync(x)
    return time.perf_counter() - start, rbm


def time_capas_fit(x: torch.Tensor) -> tuple[float, list[dict]]:
    rbm = RBM(D, HIDDEN)
    _sync(x)
    start = time.perf_counter()
    history = capas.fit(
        rbm,
        x,
        epochs=1,
        batch_size=BATCH,
        lr=LR,
        seed=SEED,
        device=str(x.device),
        quiet=True,
        task_options={"k": 1},
        threads=torch.get_num_threads(),  # the bench's --threads (fit would choose by the work)
    ).history
    _sync(x)
    return time.perf_counter() - start, history


def time_sklearn(x: np.ndarray) -> tuple[float, BernoulliRBM]:
    model = BernoulliRBM(n_components=HIDDEN, learning_rate=LR, batch_size=BATCH, n_iter=1, random_state=SEED)
    start = time.perf_counter()
    model.fit(x)
    return time.perf_counter() - start, model


def sklearn_as_capas(model: BernoulliRBM) -> RBM:
    """The trained scikit-learn RBM in a capas RBM, to score both with one formula."""
    rbm = RBM(D, HIDDEN)
    with torch.no_grad():
        rbm.weight.copy_(torch.from_numpy(model.components_))
        rbm.hidden_bias.copy_(torch.from_numpy(model.intercept_hidden_))
        rbm.visible_bias.copy_(torch.from_numpy(model.intercept_visible_))
    return rbm


def quality(rbm: RBM, probe: torch.Tensor) -> str:
    rbm = rbm.cpu()
    pll = rbm.pseudo_log_likelihood(probe, torch.Generator().manual_seed(1)).mean().item()
    return f"pseudo-log-likelihood {pll:8.2f}, reconstruction error {rbm.reconstruction_error(probe):.4f}"


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60_000, help="number of samples (default 60,000)")
    parser.add_argument("--device", default="cpu", help="device of the capas RBM (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and numpy's BLAS")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    x = synthetic_binary(args.n)
    print(
        f"{args.n} x {D} binary samples, {HIDDEN} hidden units, CD-1, batch {BATCH}, lr {LR}, one epoch; "
        f"torch threads {torch.get_num_threads()}, capas on {args.device}"
    )
    device_x = x.to(args.device)
    time_capas_cd_loop(device_x[: 2 * BATCH])  # warm-up (allocator, kernels)
    time_capas_fit(device_x[: 2 * BATCH])  # ... and the first fit's imports (capas.api, pydantic)
    loop_seconds, loop_rbm = time_capas_cd_loop(device_x)
    fit_seconds, _ = time_capas_fit(device_x)
    sk_seconds, sk_model = time_sklearn(x.numpy())
    rates = {
        "capas CD loop": args.n / loop_seconds,
        "capas.fit (CD task)": args.n / fit_seconds,
        "sklearn BernoulliRBM": args.n / sk_seconds,
    }
    for name, rate in rates.items():
        print(f"{name:22s} {rate:10,.0f} samples/s")
    for name in ("capas CD loop", "capas.fit (CD task)"):
        print(f"ratio {name} / sklearn: {rates[name] / rates['sklearn BernoulliRBM']:.2f}x")
    probe = x[:5000]
    print(f"capas   after one epoch: {quality(loop_rbm, probe)}")
    print(f"sklearn after one epoch: {quality(sklearn_as_capas(sk_model), probe)}")


if __name__ == "__main__":
    main()
