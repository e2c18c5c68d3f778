"""Small MLPs at the ``capas.fit`` level against a hand-written autograd loop and scikit-learn's
``MLPClassifier``, with the issue-18 targets' ratios side by side, in one run.

``capas.fit(engine="auto")`` takes the compiled whole-epoch kernel (``capas.fast``) for these
nets; every capas time below is the whole ``fit`` call (set-up, epochs, history, gradient
norms), after one warm-up fit that loads the compiled kernel. Cases:

- (a) 784-30-10 sigmoid, squared error, batch 10, one epoch of 60,000 MNIST-shaped samples;
  target: >= 6x the autograd loop and >= 2.5x ``MLPClassifier(solver="sgd")`` (which always
  uses softmax + log-loss; same initial weights and sample order).
- (a1) the same at batch 1 (on-line BackProp); the autograd loop runs a 10,000-sample slice;
  target: >= 30x the autograd loop.
- (t) the CLI defaults (Adam lr 0.003, batch 32, ReLU, 30 epochs) on small tabular nets:
  64-100-10 on scikit-learn's digits and 20-100-20 on 20,000 synthetic rows; target:
  >= 2x ``MLPClassifier(solver="adam")`` with the same batch, rate and epochs, at equal or
  better test accuracy.
- (n) Nielsen's chapter-1 protocol on MNIST (``CAPAS_DATA`` must hold mnist.npz): 784-30-10
  sigmoid, quadratic cost, eta = 3, batch 10, 30 epochs on the first 50,000 training images,
  then the 10,000 test images; target: under 15 s including evaluation, ~95% test accuracy.

It also measures this machine's float32 matmul peak (2048 x 2048, 1 thread and all cores) and
prints the GFLOP/s each capas fit reached (6 x weights flops a sample at batch 10: forward,
back-propagated error and gradient; fewer when the first layer's error is not needed).

    python benchmarks/bench_backprop.py            # all cases, ~2 minutes on 2 cores
    python benchmarks/bench_backprop.py --cases a t
    python benchmarks/bench_backprop.py --samples 10000   # a quick smoke run

Measured 2026-12-01 on the shared 2-core Xeon (AVX-512; load 1.3; float32 matmul peak 155
GFLOP/s on 1 thread, 291 on 2): (a) capas.fit 298k samples/s = 10.4x the autograd loop,
7.1x scikit-learn, 29 GFLOP/s (19% of peak); (a1) 186k/s = 61x the autograd loop; (t)
digits 2.40x MLPClassifier (test accuracy 0.997 vs 0.986), 20-100-20 2.26x (0.911 vs
0.912); (n) Nielsen 4.5 s with evaluation, 95.88% test accuracy, 32 GFLOP/s.

Prints samples/s and ratios; nothing is asserted. Timings are wall-clock: on a shared
machine repeat a figure that looks odd.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from capas.api import fit
from capas.models import build

N, D, K, SEED = 60_000, 784, 10, 0
TARGETS = {"a_autograd": 6.0, "a_sklearn": 2.5, "a1_autograd": 30.0, "t_sklearn": 2.0, "n_seconds": 15.0}


def matmul_peak(threads: int, size: int = 2048) -> float:
    """GFLOP/s of a float32 ``size x size`` matmul with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b
    repeats, started = 5, time.perf_counter()
    for _ in range(repeats):
        a @ b
    seconds = time.perf_counter() - started
    torch.set_num_threads(1)
    return 2 * size**3 * repeats / seconds / 1e9


def flops_per_sample(widths: list[int]) -> int:
    """Forward (2 m n a layer), gradient (2 m n) and the error sent below (2 m n, not for layer 1)."""
    products = [a * b for a, b in zip(widths[:-1], widths[1:])]
    return 2 * sum(products) + 2 * sum(products) + 2 * sum(products[1:])


def synthetic_data() -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-sized noisy prototypes: x = 0.3 p_y + 0.7 u in [0, 1) (N, 784) float32, with
    one random pattern p_c per class and uniform noise u; y (N,) uniform over 10 classes."""
    generator = torch.Generator().manual_seed(SEED)
    prototypes = torch.rand(K, D, generator=generator)  # (K, D)
    y = torch.randint(0, K, (N,), generator=generator)  # (N,)
    return 0.3 * prototypes[y] + 0.7 * torch.rand(N, D, generator=generator), y  # (N, D), (N,)


def order(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(SEED))  # (n,)


def timed_fit(model, data, **options) -> tuple[float, object]:
    """Wall-clock seconds of one ``capas.fit`` call (after a warm-up fit on a slice)."""
    x, y = data[0], data[1]
    fit(copy.deepcopy(model), (x[:500], y[:500]), **{**options, "epochs": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # synthetic data saturate units: not news here
        started = time.perf_counter()
        result = fit(model, data, **options)
        return time.perf_counter() - started, result


def time_autograd(model, lr, batch, x, y) -> float:
    """The floor for a PyTorch toolkit: index, forward, squared error, backward, SGD step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    codes = torch.eye(K)
    started = time.perf_counter()
    for index in order(len(x)).split(batch):
        xb, yb = x[index], y[index]
        optimizer.zero_grad(set_to_none=True)
        value = 0.5 * (model(xb) - codes[yb]).pow(2).sum(dim=1).mean()
        value.backward()
        optimizer.step()
    return time.perf_counter() - started


def time_sklearn_sgd(model, lr, batch, x, y) -> float:
    """``MLPClassifier`` (softmax + log-loss, plain SGD), one pass, initialised with our weights."""
    clf = MLPClassifier(
        (model.layers[0].out_features,),
        activation="logistic",
        solver="sgd",
        batch_size=batch,
        learning_rate_init=lr,
        momentum=0.0,
        alpha=0.0,
        shuffle=False,
    )
    xs, ys = x.numpy(), y.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # the 1-sample warm-up call
        clf.partial_fit(xs[:1], ys[:1], classes=np.arange(K))  # allocates the weights
    clf.coefs_ = [layer.weight.detach().numpy().T.copy() for layer in model.layers]
    clf.intercepts_ = [layer.bias.detach().numpy().copy() for layer in model.layers]
    permuted = order(len(x)).numpy()
    started = time.perf_counter()
    clf.partial_fit(xs[permuted], ys[permuted])
    return time.perf_counter() - started


def row(label: str, samples: int, seconds: float, extra: str = "") -> float:
    rate = samples / seconds
    print(f"  {label:44s} {rate:12,.0f} samples/s {seconds:8.2f} s  {extra}")
    return rate


def verdict(name: str, ratio: float) -> str:
    return f"{ratio:6.2f}x (target >= {TARGETS[name]:g}x: {'met' if ratio >= TARGETS[name] else 'MISSED'})"


def case_a(x: torch.Tensor, y: torch.Tensor, batch: int, slow_n: int, peak: float) -> None:
    name = "a" if batch > 1 else "a1"
    print(f"\n({name}) 784-30-10 sigmoid, squared error, batch {batch}, lr 0.5, one epoch of {len(x):,}")
    initial = build("784-30-10", act="sigmoid", output_act="sigmoid", loss="mse", seed=SEED)
    options = dict(loss="mse_half_sum", optimizer="sgd", lr=0.5, epochs=1, batch_size=batch, seed=SEED, quiet=True)
    seconds, result = timed_fit(copy.deepcopy(initial), (x, y), **options)
    epoch = result.history[-1]["seconds"]
    gflops = flops_per_sample([784, 30, 10]) * len(x) / epoch / 1e9
    fit_rate = row(
        f"capas.fit (engine {result.engine})",
        len(x),
        seconds,
        f"epoch {epoch:.2f} s: {gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of 1-thread peak",
    )
    slow_x, slow_y = (x, y) if slow_n == len(x) else (x[order(len(x))[:slow_n]], y[order(len(x))[:slow_n]])
    autograd_rate = row(
        "hand-written autograd loop", slow_n, time_autograd(copy.deepcopy(initial), 0.5, batch, slow_x, slow_y)
    )
    print(f"  capas.fit / autograd loop: {verdict(f'{name}_autograd', fit_rate / autograd_rate)}")
    if batch > 1:
        sk_rate = row(
            "scikit-learn MLPClassifier (sgd)",
            slow_n,
            time_sklearn_sgd(copy.deepcopy(initial), 0.5, batch, slow_x, slow_y),
        )
        print(f"  capas.fit / scikit-learn:  {verdict('a_sklearn', fit_rate / sk_rate)}")


def tabular_data(which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) float32 / int64: digits (1,437 + 360, scaled to
    [0, 1]) or 20,000 + 5,000 synthetic rows of 20 features in 20 classes."""
    if which == "digits":
        x, y = load_digits(return_X_y=True)
        x = x / 16.0
    else:
        x, y = make_classification(
            25_000, n_features=20, n_informative=16, n_redundant=2, n_classes=20, n_clusters_per_class=1, random_state=0
        )
    rng = np.random.default_rng(SEED)
    index = rng.permutation(len(x))
    cut = int(0.8 * len(x))
    x, y = x[index].astype(np.float32), y[index].astype(np.int64)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def case_tabular(which: str, spec: str, epochs: int = 30) -> None:
    x_train, y_train, x_test, y_test = tabular_data(which)
    print(f"\n(t) {spec} on {which}: {len(x_train):,} training rows, Adam lr 0.003, batch 32, ReLU, {epochs} epochs")
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    model = build(spec, act="relu", loss="cross_entropy", seed=SEED)
    options = dict(optimizer="adam", lr=0.003, batch_size=32, epochs=epochs, seed=SEED, quiet=True)
    seconds, result = timed_fit(model, (xt, yt), **options)
    accuracy = float((result.model.predict(torch.from_numpy(x_test)).numpy() == y_test).mean())
    widths = [int(w) for w in spec.split("-")]
    gflops = flops_per_sample(widths) * len(xt) * epochs / sum(r["seconds"] for r in result.history) / 1e9
    fit_rate = row(
        f"capas.fit (engine {result.engine})",
        len(xt) * epochs,
        seconds,
        f"test accuracy {accuracy:.3f}, {gflops:.1f} GFLOP/s",
    )
    clf = MLPClassifier(
        (widths[1],),
        solver="adam",
        batch_size=32,
        learning_rate_init=0.003,
        max_iter=epochs,
        alpha=0.0,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=SEED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        clf.fit(x_train, y_train)
        sk_seconds = time.perf_counter() - started
    sk_accuracy = float((clf.predict(x_test) == y_test).mean())
    sk_rate = row("scikit-learn MLPClassifier (adam)", len(xt) * epochs, sk_seconds, f"test accuracy {sk_accuracy:.3f}")
    equal = "equal or better" if accuracy >= sk_accuracy else f"WORSE by {sk_accuracy - accuracy:.3f}"
    print(f"  capas.fit / scikit-learn: {verdict('t_sklearn', fit_rate / sk_rate)}; accuracy {equal}")


def case_nielsen(peak: float, epochs: int = 30) -> None:
    path = os.path.join(os.environ.get("CAPAS_DATA", ""), "mnist.npz")
    if not os.path.exists(path):
        print(f"\n(n) skipped: {path} not found (set CAPAS_DATA to a folder holding mnist.npz)")
        return
    with np.load(path) as files:
        arrays = {name: files[name] for name in files.files}
    x_all = torch.from_numpy(arrays["x_train"].reshape(-1, 784).astype(np.float32) / 255.0)
    y_all = torch.from_numpy(arrays["y_train"].astype(np.int64))
    x_test = torch.from_numpy(arrays["x_test"].reshape(-1, 784).astype(np.float32) / 255.0)
    y_test = torch.from_numpy(arrays["y_test"].astype(np.int64))
    x, y = x_all[:50_000], y_all[:50_000]
    print(
        f"\n(n) Nielsen ch. 1: 784-30-10 sigmoid, quadratic cost, eta 3, batch 10, {epochs} epochs on 50,000 MNIST images"
    )
    model = build("784-30-10", act="sigmoid", output_act="sigmoid", loss="mse", seed=SEED)
    options = dict(loss="mse_half_sum", optimizer="sgd", lr=3.0, batch_size=10, epochs=epochs, seed=SEED, quiet=True)
    fit(copy.deepcopy(model), (x[:500], y[:500]), **{**options, "epochs": 1})  # warm-up: loads the kernel
    started = time.perf_counter()
    result = fit(model, (x, y), **options)
    accuracy = float((result.model.predict_proba(x_test).argmax(dim=1) == y_test).double().mean())
    seconds = time.perf_counter() - started
    train = sum(r["seconds"] for r in result.history)
    gflops = flops_per_sample([784, 30, 10]) * len(x) * epochs / train / 1e9
    within = "met" if seconds < TARGETS["n_seconds"] else "MISSED"
    print(
        f"  capas.fit (engine {result.engine}) + evaluation: {seconds:.1f} s (target < 15 s: {within}), "
        f"test accuracy {accuracy:.4f} (published ~0.95); {gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of peak"
    )


def main() -> None:
    global N
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=["a", "a1", "t", "n"], choices=["a", "a1", "t", "n"])
    parser.add_argument("--samples", type=int, default=N, help="fewer samples for a quick smoke run")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the tabular and Nielsen cases")
    args = parser.parse_args()
    N = args.samples
    cores = os.cpu_count() or 1
    peak1, peak_all = matmul_peak(1), matmul_peak(cores)
    print(
        f"torch {torch.__version__}, {cores} cores, load average {os.getloadavg()[0]:.1f}; float32 matmul peak "
        f"(2048^2): {peak1:.1f} GFLOP/s on 1 thread, {peak_all:.1f} on {cores}"
    )
    x, y = synthetic_data()
    if "a" in args.cases:
        case_a(x, y, 10, N, peak1)
    if "a1" in args.cases:
        case_a(x, y, 1, min(N, 10_000), peak1)
    if "t" in args.cases:
        case_tabular("digits", "64-100-10", args.epochs)
        case_tabular("synthetic", "20-100-20", args.epochs)
    if "n" in args.cases:
        case_nielsen(peak1, args.epochs)
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.1f} (timings are wall-clock; a busy machine slows all peers)"
    )


if __name__ == "__main__":
    main()
