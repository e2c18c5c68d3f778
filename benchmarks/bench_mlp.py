"""Training throughput of capas against a hand-written PyTorch loop, scikit-learn and Keras.

One run, the same synthetic MNIST-shaped data (N x 784 floats in [0, 1], 10 classes), one
epoch of mini-batch SGD (batch 128, lr 0.01) per contender, for (b) 784-100-10 and
(c) 784-1024-1024-10 ReLU networks. Prints samples/s and the ratios capas/loop and
capas/sklearn (> 1 means capas is faster). capas runs with ``engine="autograd"``,
``quiet=True`` and its defaults otherwise (history with gradient norms, no run dir);
``capas-bp`` is the same fit on a capas ``Network`` with ``engine="auto"``, which picks the
explicit BackProp engine for these plain MLPs.

    python benchmarks/bench_mlp.py            # N = 60000
    python benchmarks/bench_mlp.py --n 6000   # quick
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import nn

BATCH, LR = 128, 0.01


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, 784) uniform in [0, 1], y (n,) from a fixed random linear rule (learnable)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 784, generator=g)
    w = torch.randn(784, 10, generator=g)
    return x, (x @ w).argmax(dim=1)


def torch_mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def bench_loop(widths: list[int], x: torch.Tensor, y: torch.Tensor) -> float:
    """The floor: pre-made tensors, one randperm, autograd, torch.optim.SGD."""
    torch.manual_seed(0)
    model = torch_mlp(widths)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    perm = torch.randperm(len(x))
    xs, ys = x[perm], y[perm]
    for i in range(0, len(x), BATCH):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[i : i + BATCH]), ys[i : i + BATCH])
        loss.backward()
        opt.step()
    float(loss.detach())
    return len(x) / (time.perf_counter() - start)


def bench_capas(widths: list[int], x: torch.Tensor, y: torch.Tensor) -> float:
    import capas

    torch.manual_seed(0)
    model = torch_mlp(widths)
    start = time.perf_counter()
    capas.fit(
        model, (x, y), optimizer="sgd", lr=LR, epochs=1, batch_size=BATCH, engine="autograd", device="cpu", quiet=True
    )
    return len(x) / (time.perf_counter() - start)


def bench_capas_auto(widths: list[int], x: torch.Tensor, y: torch.Tensor) -> float:
    """capas on a capas Network with engine="auto": the explicit BackProp engine for MLPs."""
    import capas
    from capas.models import build

    model = build("-".join(map(str, widths)), act="relu", loss="cross_entropy", seed=0)
    start = time.perf_counter()
    result = capas.fit(
        model, (x, y), optimizer="sgd", lr=LR, epochs=1, batch_size=BATCH, engine="auto", device="cpu", quiet=True
    )
    assert result.engine == "backprop", result.engine
    return len(x) / (time.perf_counter() - start)


def bench_sklearn(widths: list[int], x: torch.Tensor, y: torch.Tensor) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(widths[1:-1]),
        solver="sgd",
        batch_size=BATCH,
        learning_rate_init=LR,
        momentum=0.0,
        max_iter=1,
        shuffle=True,
        random_state=0,
    )
    xn, yn = x.numpy(), y.numpy()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(xn, yn)
    return len(x) / (time.perf_counter() - start)


def bench_keras(widths: list[int], x: torch.Tensor, y: torch.Tensor) -> float | None:
    try:
        import keras
    except ImportError:
        return None
    model = keras.Sequential(
        [keras.Input((widths[0],))]
        + [keras.layers.Dense(w, activation="relu" if i < len(widths) - 2 else None) for i, w in enumerate(widths[1:])]
    )
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.fit(x.numpy(), y.numpy(), batch_size=BATCH, epochs=1, verbose=0)
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60000, help="training samples (default 60000)")
    parser.add_argument("--repeat", type=int, default=1, help="epochs timed per contender; the best counts")
    args = parser.parse_args()
    x, y = make_data(args.n)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, N = {args.n}, batch {BATCH}, "
        f"1 epoch SGD, best of {args.repeat}"
    )
    contenders = {
        "loop": bench_loop,
        "capas": bench_capas,
        "capas-bp": bench_capas_auto,
        "sklearn": bench_sklearn,
        "keras": bench_keras,
    }
    for label, widths in (("(b) 784-100-10", [784, 100, 10]), ("(c) 784-1024-1024-10", [784, 1024, 1024, 10])):
        bench_loop(widths, x[:2048], y[:2048])  # warm-up
        bench_capas(widths, x[:2048], y[:2048])
        rates: dict[str, float | None] = {}
        for _ in range(args.repeat):  # interleaved, so a noisy moment hurts every contender alike
            for name, bench in contenders.items():
                rate = bench(widths, x, y)
                rates[name] = None if rate is None else max(rate, rates.get(name) or 0.0)
        print(label)
        for name, rate in rates.items():
            print(f"  {name:8s} " + ("not installed" if rate is None else f"{rate:10.0f} samples/s"))
        print(f"  capas/loop    {rates['capas'] / rates['loop']:.3f}  (throughput ratio; target >= 0.9)")
        print(f"  capas/sklearn {rates['capas'] / rates['sklearn']:.2f}  (target >= 1.5 on (b), >= 2 on (c))")
        print(
            f"  capas-bp/loop {rates['capas-bp'] / rates['loop']:.3f}  capas-bp/sklearn "
            f"{rates['capas-bp'] / rates['sklearn']:.2f}  (engine='auto': the explicit BackProp engine)"
        )


if __name__ == "__main__":
    main()
