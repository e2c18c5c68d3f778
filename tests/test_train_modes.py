"""Batch, mini-batch and incremental BackProp, penalties, clipping and constraints: each
epoch the trainer runs is replayed by hand with autograd (float64) and compared."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from capas.api.fit import fit
from capas.errors import TrainingError
from capas.train import Callback

SEED = 3


def _data(n=10, d=3, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, torch.randint(0, k, (n,), generator=g)


def _model(d=3, h=4, k=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k)).double()


def _hand_step(model, xb, yb, lr, l2=0.0, l1=0.0):
    """theta <- theta - lr (dq/dtheta + l2 w + l1 sign(w)) on weights; biases unpenalised."""
    model.zero_grad()
    F.cross_entropy(model(xb), yb).backward()
    with torch.no_grad():
        for p in model.parameters():
            step = p.grad.clone()
            if p.ndim >= 2:
                step += l2 * p + l1 * torch.sign(p)
            p -= lr * step


def _fit(model, data, **options):
    options = {
        "optimizer": "sgd",
        "lr": 0.5,
        "engine": "autograd",
        "device": "cpu",
        "quiet": True,
        "seed": SEED,
        **options,
    }
    return fit(model, data, **options)


def _assert_same(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=name)


class CountSteps(Callback):
    def __init__(self):
        self.steps = 0

    def on_batch_end(self, trainer, step, loss):
        self.steps += 1


def test_batch_mode_is_one_full_gradient_step_per_epoch():
    x, y = _data()
    model, reference = _model(), _model()
    counter = CountSteps()
    result = _fit(model, (x, y), epochs=2, batch_size="full", callbacks=[counter])
    for _ in range(2):
        _hand_step(reference, x, y, 0.5)
    assert counter.steps == 2
    _assert_same(model, reference)
    # the recorded gradient norm is ||dq_S/dW|| of the one step of epoch 2, taken before it
    reference.zero_grad()
    F.cross_entropy(reference(x), y).backward()
    assert result.history[-1]["grad_norm/2"] != pytest.approx(reference[2].weight.grad.norm().item())
    before_last = _model()
    _hand_step(before_last, x, y, 0.5)
    before_last.zero_grad()
    F.cross_entropy(before_last(x), y).backward()
    assert result.history[-1]["grad_norm/2"] == pytest.approx(before_last[2].weight.grad.norm().item(), rel=1e-6)


@pytest.mark.parametrize(
    "loss, encoding, codes",
    [
        ("mse_half_sum", "onehot", (0.0, 1.0)),
        ("mse_half_sum", "tanh", (-0.9, 0.9)),
        ("mse", "sigmoid", (0.1, 0.9)),
    ],
)
def test_squared_errors_train_against_encoded_class_targets(loss, encoding, codes):
    x, y = _data()
    model, reference = _model(), _model()
    _fit(model, (x, y), epochs=1, batch_size="full", loss=loss, target_encoding=encoding)
    low, high = codes
    t = torch.full((len(y), 3), low, dtype=torch.float64)
    t[torch.arange(len(y)), y] = high
    out = reference(x)
    q = 0.5 * (out - t).pow(2).sum(dim=1).mean() if loss == "mse_half_sum" else (out - t).pow(2).mean()
    q.backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.5 * p.grad
    _assert_same(model, reference)


@pytest.mark.parametrize("batch_size", [4, 1])
def test_minibatch_and_incremental_follow_the_seeded_permutation(batch_size):
    x, y = _data()
    model, reference = _model(), _model()
    counter = CountSteps()
    _fit(model, (x, y), epochs=2, batch_size=batch_size, callbacks=[counter])
    g = torch.Generator().manual_seed(SEED)
    for _ in range(2):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            _hand_step(reference, x[index], y[index], 0.5)
    assert counter.steps == 2 * -(-len(x) // batch_size)  # N/B updates per epoch (ceil)
    _assert_same(model, reference)


@pytest.mark.parametrize("l2, l1", [(0.1, 0.0), (0.0, 0.05)])
def test_penalties_take_the_closed_form_step(l2, l1):
    x, y = _data()
    model, reference = _model(), _model()
    _fit(model, (x, y), epochs=1, batch_size="full", l2=l2, l1=l1)
    _hand_step(reference, x, y, 0.5, l2=l2, l1=l1)  # w - lr (g + l2 w + l1 sign w); b - lr g
    _assert_same(model, reference)


def test_regularize_bias_penalises_every_parameter():
    x, y = _data()
    model, reference = _model(), _model()
    _fit(model, (x, y), epochs=1, batch_size="full", l2=0.2, regularize_bias=True)
    reference.zero_grad()
    F.cross_entropy(reference(x), y).backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.5 * (p.grad + 0.2 * p)
    _assert_same(model, reference)


def test_clipping_by_norm_caps_the_update_and_by_value_each_component():
    x, y = _data()
    for option, check in (
        ({"clip_norm": 0.01}, lambda deltas: torch.cat([d.flatten() for d in deltas]).norm().item()),
        ({"clip_value": 0.002}, lambda deltas: max(d.abs().max().item() for d in deltas)),
    ):
        model = _model()
        before = copy.deepcopy(model)
        _fit(model, (x, y), epochs=1, batch_size="full", lr=1.0, **option)
        deltas = [p - q for p, q in zip(model.parameters(), before.parameters())]
        # torch scales by max_norm / (norm + 1e-6): the update norm is the cap to ~1e-6 relative
        assert check(deltas) == pytest.approx(next(iter(option.values())), rel=1e-5)


def test_max_norm_bounds_every_units_incoming_weights():
    x, y = _data()
    model = _model()
    _fit(model, (x, y), epochs=3, batch_size=2, lr=2.0, max_norm=0.5)
    for layer in (model[0], model[2]):
        assert layer.weight.norm(dim=1).max().item() <= 0.5 + 1e-12


def test_input_noise_is_seeded_and_changes_training():
    x, y = _data()
    runs = [_model() for _ in range(3)]
    _fit(runs[0], (x, y), epochs=2, batch_size=5, input_noise=0.3)
    _fit(runs[1], (x, y), epochs=2, batch_size=5, input_noise=0.3)
    _fit(runs[2], (x, y), epochs=2, batch_size=5)
    _assert_same(runs[0], runs[1])
    assert not torch.equal(runs[0][0].weight, runs[2][0].weight)


def test_a_dataloader_is_trained_batch_by_batch_in_its_order():
    x, y = _data()
    model, reference = _model(), _model()
    _fit(model, DataLoader(TensorDataset(x, y), batch_size=3, shuffle=False), epochs=1)
    for start in range(0, len(x), 3):
        _hand_step(reference, x[start : start + 3], y[start : start + 3], 0.5)
    _assert_same(model, reference)


def test_a_float32_dataloader_trains_a_float64_model():
    # the loader's float32 batches (also the one that finds the classes) follow the model's dtype
    x, y = _data()
    x = x.float()
    model, reference = _model(), _model()  # float64
    _fit(model, DataLoader(TensorDataset(x, y), batch_size=5, shuffle=False), epochs=1, warn_gradients=False)
    for start in range(0, len(x), 5):
        _hand_step(reference, x[start : start + 5].double(), y[start : start + 5], 0.5)
    _assert_same(model, reference)


@pytest.mark.parametrize("option", [{"resample": "over"}, {"class_weights": "balanced"}, {"curriculum": "loss"}])
def test_options_that_need_in_memory_data_refuse_a_dataloader(option):
    x, y = _data()
    with pytest.raises(TrainingError, match="in-memory"):
        _fit(_model(), DataLoader(TensorDataset(x, y), batch_size=5), epochs=1, **option)


def test_momentum_is_torchs_heavy_ball():
    x, y = _data()
    model, reference = _model(), _model()
    _fit(model, (x, y), epochs=3, batch_size="full", optimizer="momentum", lr=0.1, momentum=0.8)
    velocity = [torch.zeros_like(p) for p in reference.parameters()]
    for _ in range(3):  # v <- nu v + g, theta <- theta - rho v (v(1) = g(1))
        reference.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        with torch.no_grad():
            for p, v in zip(reference.parameters(), velocity):
                v.mul_(0.8).add_(p.grad)
                p -= 0.1 * v
    _assert_same(model, reference)
