"""One epoch of 60,000 synthetic 784-pixel samples: the explicit BackProp engine against a
hand-written autograd loop and scikit-learn's ``MLPClassifier`` (sgd), in one run.

All peers start from the same initial weights and visit the samples in the same random
order. capas is timed twice: through its stepper's epoch loop (``BackpropStepper.run_epoch``,
the engine ``engine="auto"`` picks for these nets, gradient norms off like the autograd
loop) and through ``capas.fit(engine="auto")`` (the whole trainer: batching, history,
training accuracy and per-layer gradient norms every step; its own seeded order).
scikit-learn's classifier always uses softmax + log-loss, so in (a) its loss differs.

    python benchmarks/bench_backprop.py            # all cases, ~1 minute on 2 cores
    python benchmarks/bench_backprop.py --cases a  # one case
    python benchmarks/bench_backprop.py --threads 2

Measured 2026-11-25 on a shared 2-core machine (load ~4), 1 torch thread: (a) capas engine
105k samples/s = 6.3x the autograd loop, 3.5x scikit-learn (capas.fit 51k); (a1) 12k/s =
7.1x autograd; (b) 143k/s = 1.33x autograd (both do the same two 784x100x128 products per
step, so at batch 128 the engine only removes overhead). With 2 threads on the loaded
machine every torch peer was 5-40x slower.

Cases: (a) 784-30-10 sigmoid, squared error, batch 10; (a1) the same at batch 1 (on-line;
the slow peers run a 10,000-sample slice, said in the output); (b) 784-100-10 ReLU,
cross-entropy, batch 128. Prints samples/s and ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from capas.api import fit
from capas.backprop import BackpropStepper
from capas.errors import CapasWarning
from capas.models import build
from capas.objectives import Loss

N, D, K, SEED = 60_000, 784, 10, 0
CASES = {
    # name: (spec, hidden act, output act, capas loss, batch, lr, samples for slow peers)
    "a": ("784-30-10", "sigmoid", "sigmoid", "mse_half_sum", 10, 0.5, N),
    "a1": ("784-30-10", "sigmoid", "sigmoid", "mse_half_sum", 1, 0.5, 10_000),
    "b": ("784-100-10", "relu", "softmax", "cross_entropy", 128, 0.1, N),
}


def synthetic_data() -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-sized noisy prototypes: x = 0.3 p_y + 0.7 u in [0, 1) (N, 784) float32, with
    one random pattern p_c per class and uniform noise u; y (N,) uniform over 10 classes."""
    generator = torch.Generator().manual_seed(SEED)
    prototypes = torch.rand(K, D, generator=generator)  # (K, D)
    y = torch.randint(0, K, (N,), generator=generator)  # (N,)
    return 0.3 * prototypes[y] + 0.7 * torch.rand(N, D, generator=generator), y  # (N, D), (N,)


def order(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(SEED))  # (n,)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Training accuracy on the first 10,000 samples (argmax of the outputs)."""
    with torch.no_grad():
        return (model(x[:10_000]).argmax(dim=1) == y[:10_000]).double().mean().item()


def time_stepper(model, loss_name, lr, batch, x, y) -> tuple[float, float]:
    """The engine's own epoch loop, without per-layer gradient norms (as the autograd loop)."""
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=lr), loss_name, grad_norms=False)
    started = time.perf_counter()
    stepper.run_epoch(x, y, batch, torch.Generator().manual_seed(SEED))
    return time.perf_counter() - started, accuracy(model, x, y)


def time_fit(model, loss_name, lr, batch, x, y) -> tuple[float, float, str]:
    """``capas.fit`` as a user calls it (gradient norms and warnings on); the epoch's own
    ``seconds`` after a warm-up fit on 2,000 samples (first-call costs are not per-epoch)."""
    options = dict(
        loss=loss_name, optimizer="sgd", lr=lr, epochs=1, batch_size=batch, engine="auto", seed=SEED, quiet=True
    )
    fit(copy.deepcopy(model), (x[:2000], y[:2000]), warn_gradients=False, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CapasWarning)  # synthetic data saturates units: not news here
        result = fit(model, (x, y), **options)
    return result.history[-1]["seconds"], accuracy(model, x, y), result.engine


def time_autograd(model, loss_name, lr, batch, x, y) -> tuple[float, float]:
    """The floor for a PyTorch toolkit: index, forward, loss, backward, optimizer step."""
    loss = Loss(loss_name, num_classes=K)
    forward = model.logits if loss.from_logits else model
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    codes = torch.eye(K)
    started = time.perf_counter()
    for index in order(len(x)).split(batch):
        xb, yb = x[index], y[index]
        optimizer.zero_grad(set_to_none=True)
        output = forward(xb)
        if loss_name == "cross_entropy":
            value = F.cross_entropy(output, yb)
        else:
            value = 0.5 * (output - codes[yb]).pow(2).sum(dim=1).mean()
        value.backward()
        optimizer.step()
    return time.perf_counter() - started, accuracy(model, x, y)


def time_sklearn(model, act, lr, batch, x, y) -> tuple[float, float]:
    """``MLPClassifier`` (softmax + log-loss, plain SGD), initialised with our weights."""
    hidden = model.layers[0].out_features
    clf = MLPClassifier(
        (hidden,),
        activation="logistic" if act == "sigmoid" else act,
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
    clf.partial_fit(xs[permuted], ys[permuted])  # one pass, in our order
    seconds = time.perf_counter() - started
    return seconds, float((clf.predict(xs[:10_000]) == ys[:10_000]).mean())


def run_case(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    spec, act, out_act, loss_name, batch, lr, slow_n = CASES[name]
    initial = build(
        spec, act=act, loss="mse" if loss_name != "cross_entropy" else loss_name, output_act=out_act, seed=SEED
    )
    print(
        f"\n({name}) {spec} {act}, {loss_name}, batch {batch}, lr {lr}"
        + ("" if slow_n == N else f"; autograd and sklearn on the first {slow_n:,} samples of the order")
    )
    rows = []
    engine_model = copy.deepcopy(initial)
    seconds, acc = time_stepper(engine_model, loss_name, lr, batch, x, y)
    rows.append(("capas BackpropStepper.run_epoch", N, seconds, acc))
    fit_model = copy.deepcopy(initial)
    seconds, acc, engine = time_fit(fit_model, loss_name, lr, batch, x, y)
    rows.append((f"capas.fit(engine='auto' -> {engine})", N, seconds, acc))
    slow_x, slow_y = (x, y) if slow_n == N else (x[order(N)[:slow_n]], y[order(N)[:slow_n]])
    autograd_model = copy.deepcopy(initial)
    seconds, acc = time_autograd(autograd_model, loss_name, lr, batch, slow_x, slow_y)
    rows.append(("hand-written autograd loop", slow_n, seconds, acc))
    if slow_n == N:
        gap = max((a - b).abs().max().item() for a, b in zip(engine_model.parameters(), autograd_model.parameters()))
        print(f"  max |weight difference| capas engine vs autograd after the epoch: {gap:.2e} (float32)")
    seconds, acc = time_sklearn(copy.deepcopy(initial), act, lr, batch, slow_x, slow_y)
    rows.append(("scikit-learn MLPClassifier (sgd)", slow_n, seconds, acc))
    rates = {label: n / seconds for label, n, seconds, _ in rows}
    engine_rate = rates[rows[0][0]]
    print(f"  {'':38s} {'samples/s':>10s} {'engine speed-up':>16s} {'accuracy':>9s}")
    for label, _, _, acc in rows:
        print(f"  {label:38s} {rates[label]:10,.0f} {engine_rate / rates[label]:15.2f}x {acc:9.3f}")


def main() -> None:
    global N
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--samples", type=int, default=N, help="fewer samples for a quick smoke run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both torch peers (on a shared 2-core machine, 2 threads "
        "make every small op wait on the other thread)",
    )
    args = parser.parse_args()
    N = args.samples
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; one epoch of {N:,} x {D} samples"
    )
    x, y = synthetic_data()
    for name, case in CASES.items():
        CASES[name] = (*case[:-1], min(case[-1], N))
    for name in args.cases:
        run_case(name, x, y)
    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.1f} (timings are wall-clock; a busy machine slows all peers)")


if __name__ == "__main__":
    main()
