"""The compiled whole-epoch kernel (capas.fast) trains exactly as the torch delta-rule engine:
the same weights, optimizer state, losses, accuracy counts and gradient norms after two
epochs (1e-5 in float32, 1e-10 in float64), for every activation, loss and optimizer, at
batch 1 and 64; ``engine="auto"`` takes it only when it applies; ``engine="fast"`` says why
it cannot; the thread count follows the work."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from capas.api import fit
from capas.backprop import BackpropStepper
from capas.errors import TrainingError
from capas.fast import FastStepper, choose_threads
from capas.models import build

N = 150
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}

# hidden act, output act, loss, optimizer (class, options), batch, penalties (l1, l2, regularize_bias)
CASES = {
    "sigmoid-sse-sgd-b10": ("sigmoid", "sigmoid", "mse_half_sum", (torch.optim.SGD, {"lr": 0.5}), 10, None),
    "tanh-ce-nesterov-b1": (
        "tanh",
        "softmax",
        "cross_entropy",
        (torch.optim.SGD, {"lr": 0.02, "momentum": 0.9, "nesterov": True}),
        1,
        None,
    ),
    "relu-linear-mse-adam-b64": ("relu", "linear", "mse", (torch.optim.Adam, {"lr": 0.01}), 64, None),
    "lrelu-softmax-mse-rmsprop-b7": (
        "leaky_relu:0.2",
        "softmax",
        "mse",
        (torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True}),
        7,
        None,
    ),
    "linear-tanh-mse-momentum-wd-b1": (
        "linear",
        "tanh",
        "mse",
        (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
        1,
        None,
    ),
    "sigmoid-ce-adam-penalties-b64": (
        "sigmoid",
        "softmax",
        "cross_entropy",
        (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.001}),
        64,
        (0.001, 0.01, True),
    ),
    "relu-sigmoid-sse-rmsprop-l2-b1": (
        "relu",
        "sigmoid",
        "mse_half_sum",
        (torch.optim.RMSprop, {"lr": 0.001}),
        1,
        (0.0, 0.01, False),
    ),
}


def make_data(dtype: torch.dtype, outputs: int, regression: bool = False):
    """x (N, 12) with half its entries 0 (the kernel skips zero inputs), labels or targets."""
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(N, 12, generator=generator, dtype=dtype)
    x[x < 0.5] = 0
    if regression:
        return x, torch.randn(N, outputs, generator=generator, dtype=dtype)
    return x, torch.randint(0, outputs, (N,), generator=generator)


def pair(spec, act, out_act, loss, optimizer, dtype, penalties=None):
    """The torch engine and the kernel on two copies of one network."""
    model = build(spec, act=act, output_act=out_act, loss="mse" if loss != "cross_entropy" else loss, seed=1)
    model = model.to(dtype)
    twin = copy.deepcopy(model)
    cls, options = optimizer
    l1, l2, regularize_bias = penalties or (0.0, 0.0, False)
    kw = dict(l1=l1, l2=l2, regularize_bias=regularize_bias)
    engine = BackpropStepper(model, cls(model.parameters(), **options), loss, **kw)
    kernel = FastStepper(BackpropStepper(twin, cls(twin.parameters(), **options), loss, **kw))
    return model, engine, twin, kernel


def assert_same_epochs(model, engine, twin, kernel, x, y, batch, dtype, labels=True, epochs=2):
    tol = TOLERANCE[dtype]
    codes = engine.encode(y)
    for epoch in range(epochs):
        order = torch.randperm(N, generator=torch.Generator().manual_seed(epoch))
        given = y if labels else None
        losses, correct = engine.steps(x, codes, batch, order, labels=given, measure_every=3)
        fast_losses, fast_correct = kernel.steps(x, codes, batch, order, labels=given, measure_every=3)
        assert fast_losses.shape == losses.shape == (-(-N // batch),)
        torch.testing.assert_close(fast_losses, losses.double(), rtol=10 * tol, atol=10 * tol)
        if labels:
            assert int(fast_correct) == int(correct)
        expected, got = engine.layer_grad_norms(), kernel.layer_grad_norms()
        assert expected.keys() == got.keys() and expected
        for name in expected:
            assert float(got[name]) == pytest.approx(float(expected[name]), rel=10 * tol, abs=tol)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert q.dtype == dtype
        assert (p - q).abs().max().item() < tol
        state, fast_state = engine.optimizer.state[p], kernel.optimizer.state[q]
        assert state.keys() == fast_state.keys()
        for key, value in state.items():  # RMSprop's momentum buffer sums g/avg ~ 1 a step: relative
            torch.testing.assert_close(fast_state[key].double(), value.double(), rtol=10 * tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_epochs_match_the_torch_engine(case, dtype):
    act, out_act, loss, optimizer, batch, penalties = CASES[case]
    x, y = make_data(dtype, 4)
    model, engine, twin, kernel = pair("12-9-6-4", act, out_act, loss, optimizer, dtype, penalties)
    assert_same_epochs(model, engine, twin, kernel, x, y, batch, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_kernel_regression_targets(dtype):
    """Float targets (no labels, no accuracy count), squared error, Adam, batch 64."""
    x, y = make_data(dtype, 3, regression=True)
    model, engine, twin, kernel = pair("12-8-3", "tanh", "linear", "mse", (torch.optim.Adam, {"lr": 0.01}), dtype)
    assert_same_epochs(model, engine, twin, kernel, x, y, 64, dtype, labels=False)


def small_data(n: int = 300):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 10, generator=generator)
    y = (x[:, 0] + x[:, 1] > 1).long() + (x[:, 2] > 0.5).long()
    return x, y


def test_fit_fast_equals_fit_backprop_with_max_norm_and_history():
    """The whole fit: the same shuffled order, max-norm after every step, momentum carried
    across epochs, the same history (losses, accuracy, gradient norms); the engine recorded."""
    x, y = small_data()
    options = dict(
        epochs=3,
        batch_size=8,
        optimizer="momentum",
        lr=0.1,
        max_norm=0.8,
        l2=0.001,
        seed=2,
        quiet=True,
        warn_gradients=False,
    )
    runs = {engine: fit("10-16-3", (x, y), engine=engine, **options) for engine in ("backprop", "fast", "auto")}
    assert runs["fast"].engine == runs["auto"].engine == "fast"
    assert runs["backprop"].engine == "backprop"
    for p, q in zip(runs["backprop"].model.parameters(), runs["fast"].model.parameters()):
        assert (p - q).abs().max().item() < 1e-5
    assert runs["fast"].model.layers[0].weight.norm(dim=1).max().item() <= 0.8 + 1e-6
    for expected, got in zip(runs["backprop"].history, runs["fast"].history):
        for key in ("train_loss", "train_accuracy", "grad_norm/dense1", "grad_norm/dense2"):
            assert got[key] == pytest.approx(expected[key], rel=1e-4), key


@pytest.mark.parametrize(
    ("spec", "options", "engine"),
    [
        ("10-16-3", {"batch_size": 32}, "fast"),  # the CLI defaults: adam, batch 32
        ("10-16-3", {"batch_size": 128}, "backprop"),
        ("10-16-3", {"optimizer": "adagrad"}, "backprop"),
        ("10-16-3", {"clip_norm": 1.0}, "backprop"),
        ("10-drop0.5-16-3", {}, "backprop"),
        ("10-16-3", {"loss": "binary_cross_entropy"}, "backprop"),  # no BCE in the kernel
        ("10-16-ln-3", {}, "autograd"),  # not a plain MLP
    ],
)
def test_auto_picks_the_kernel_only_when_it_applies(spec, options, engine):
    x, y = small_data(100)
    assert fit(spec, (x, y), epochs=1, quiet=True, engine="auto", **options).engine == engine


@pytest.mark.parametrize(
    ("spec", "options", "reason"),
    [
        ("10-16-3", {"batch_size": 128}, "batch_size 128 is above 64"),
        ("10-16-3", {"optimizer": "adagrad"}, "the optimizer is Adagrad"),
        ("10-16-3", {"clip_norm": 1.0}, "gradient clipping runs step by step"),
        ("10-16-3", {"scheduler": "one_cycle"}, "a per-batch LR schedule"),
        ("10-16-3", {"input_noise": 0.1}, "input noise"),
        ("10-drop0.5-16-3", {}, "dropout before 'dense"),
        ("10-mx16x2-3", {}, "is maxout"),
        ("10-16-3", {"class_weights": "balanced"}, "class weights"),
    ],
)
def test_engine_fast_says_why_it_cannot_apply(spec, options, reason):
    x, y = small_data(100)
    with pytest.raises(TrainingError) as err:
        fit(spec, (x, y), epochs=1, quiet=True, engine="fast", **options)
    message = str(err.value)
    assert message.startswith("engine='fast' cannot train this run: ") and "\n" not in message
    assert reason in message and message.endswith("use engine='auto'")


def test_thread_choice_follows_the_work():
    cores = os.cpu_count() or 1
    assert choose_threads(25_000, 10, "fast") == 1
    assert choose_threads(25_000, 10, "backprop") == 1  # 784-30-10 at batch 10: too small to split
    assert choose_threads(1_860_000, 128, "autograd") == cores  # 784-1024-1024-10 at batch 128
    assert choose_threads(25_000, "full", "backprop") == cores  # 60,000-row full batches count as large
    assert choose_threads(25_000, 10, "fast", requested=3) == 3


def test_fit_echoes_its_threads_and_restores_torch_s(capsys):
    x, y = small_data(100)
    before = torch.get_num_threads()
    fit("10-16-3", (x, y), epochs=1, engine="auto", quiet=False)
    assert "engine fast, device cpu (1 thread)" in capsys.readouterr().err
    fit("10-16-3", (x, y), epochs=1, engine="autograd", threads=2, quiet=False)
    assert "engine autograd, device cpu (2 threads)" in capsys.readouterr().err
    assert torch.get_num_threads() == before
