"""Training with the delta-rule engine gives autograd's weights (float64), in every mode,
and reproduces the slides' 2-layer example (M0=5, M1=3, M2=3) by hand formulas."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from capas.backprop import BackpropStepper
from capas.models.network import build
from capas.objectives import Loss, penalized_parameters, penalty

N = 30


def data(loss_name: str):
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(N, 6, dtype=torch.float64, generator=generator)
    y = torch.randint(0, 3, (N,), generator=generator)
    return x, y


def autograd_run(model, optimizer, loss: Loss, x, y, batches, l1=0.0, l2=0.0, clip_norm=None):
    """The hand-written autograd loop over the given index batches."""
    for index in batches:
        optimizer.zero_grad()
        output = model.logits(x[index]) if loss.from_logits else model(x[index])
        objective = loss(output, y[index]) + penalty(penalized_parameters(model), l2=l2, l1=l1)
        objective.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(model.parameters()), clip_norm)
        optimizer.step()


def epoch_batches(epochs: int, batch_size: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(N, generator=generator)
        yield from order.split(batch_size)


CASES = {
    # name: (spec, act, loss, optimizer factory, batch size, stepper options)
    "batch": ("6-5-3", "sigmoid", "mse_half_sum", lambda p: torch.optim.SGD(p, lr=0.5), N, {}),
    "mini-batch": ("6-5-4-3", "tanh", "cross_entropy", lambda p: torch.optim.SGD(p, lr=0.2), 7, {}),
    "incremental": ("6-mx4x2-3", "relu", "mse", lambda p: torch.optim.SGD(p, lr=0.05), 1, {"l2": 0.01}),
    "fused mini-batch": ("6-5-4-3", "sigmoid", "mse", lambda p: torch.optim.SGD(p, lr=0.2), 4, {"grad_norms": False}),
    "fused incremental": (
        "6-mx4x2-3",
        "relu",
        "cross_entropy",
        lambda p: torch.optim.SGD(p, lr=0.05),
        1,
        {"grad_norms": False},
    ),
    "momentum": ("6-5-3", "elu", "cross_entropy", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 4, {}),
    "nesterov": (
        "6-5-3",
        "softsign",
        "binary_cross_entropy",
        lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.8, nesterov=True, weight_decay=1e-3, dampening=0),
        5,
        {"l1": 0.001},
    ),
    "binary": ("6-4-1", "tanh", "binary_cross_entropy", lambda p: torch.optim.SGD(p, lr=0.3), 5, {}),
    "regression": ("6-5-3", "tanh", "mse_half_sum", lambda p: torch.optim.RMSprop(p, lr=0.01), 4, {}),
    "adam": ("6-5-3", "leaky_relu", "cross_entropy", lambda p: torch.optim.Adam(p, lr=0.01), 6, {"clip_norm": 0.5}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_training_matches_autograd(case):
    spec, act, loss_name, make_optimizer, batch_size, options = CASES[case]
    built_loss = "mse" if loss_name == "mse_half_sum" else loss_name
    reference = build(spec, act=act, loss=built_loss, seed=1).double()
    model = copy.deepcopy(reference)
    x, y = data(loss_name)
    if case == "binary":  # one sigmoid unit for two classes
        y = y % 2
    if case == "regression":  # float targets (N, K)
        y = torch.randn(N, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    loss = Loss(loss_name, num_classes=None if case == "regression" else max(2, reference.output_shape[0]))
    penalties = {k: options[k] for k in ("l1", "l2") if k in options}
    autograd_run(
        reference,
        make_optimizer(reference.parameters()),
        loss,
        x,
        y,
        epoch_batches(3, batch_size, seed=11),
        clip_norm=options.get("clip_norm"),
        **penalties,
    )
    stepper = BackpropStepper(model, make_optimizer(model.parameters()), loss, **options)
    assert (stepper._fused_group() is not None) == case.startswith("fused")  # update inside the backward pass
    generator = torch.Generator().manual_seed(11)
    losses = [stepper.run_epoch(x, y, batch_size, generator) for _ in range(3)]
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-8)
    assert all(math.isfinite(value.item()) for value in losses)
    assert losses[-1].item() < losses[0].item()


def test_online_learn_one_equals_batch_size_one_steps():
    reference = build("6-4-3", act="tanh", loss="mse", seed=2).double()
    model = copy.deepcopy(reference)
    x, y = data("mse")
    targets = torch.nn.functional.one_hot(y, 3).double()
    loss = Loss("mse", num_classes=3)
    autograd_run(reference, torch.optim.SGD(reference.parameters(), lr=0.1), loss, x, targets, torch.arange(N).split(1))
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.1), "mse")
    for sample, label in zip(x, y.tolist()):
        stepper.learn_one(sample, label)  # a class index, coded one-hot like the targets above
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-8)


def test_momentum_is_the_slides_rule():
    """Delta theta(k) = -rho dE/dtheta + nu Delta theta(k-1), Delta theta(0) = 0, on a full batch."""
    model = build("6-4-3", act="sigmoid", loss="mse", seed=3).double()
    x, y = data("mse")
    rho, nu = 0.4, 0.7
    slides = copy.deepcopy(model)
    plain = BackpropStepper(slides, torch.optim.SGD(slides.parameters(), lr=0.0), "mse")  # gradients only
    previous = [torch.zeros_like(p) for p in slides.parameters()]
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=rho, momentum=nu), "mse")
    for _ in range(4):
        plain.step(x, y)
        with torch.no_grad():
            for p, grad, change in zip(slides.parameters(), [g for _, _, g in plain._pairs], previous):
                change.mul_(nu).add_(grad, alpha=-rho)
                p.add_(change)
        stepper.step(x, y)
    for mine, theirs in zip(model.parameters(), slides.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


def test_layer_grad_norms_average_over_steps():
    model = build("6-4-3", act="tanh", loss="cross_entropy", seed=4).double()
    x, y = data("cross_entropy")
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.3), "cross_entropy")
    seen = []
    for index in torch.arange(N).split(10):
        stepper.step(x[index], y[index])
        seen.append([grad_w.norm().item() for grad_w, _ in stepper.net.grads])
    means = stepper.layer_grad_norms()
    assert list(means) == ["dense1", "dense2"]
    expected = torch.tensor(seen).mean(dim=0)
    assert torch.allclose(torch.stack(list(means.values())), expected.double(), rtol=1e-12)
    assert stepper.layer_grad_norms() == {}  # reset after reading
    assert stepper.last_output.shape == (10, 3)


# ---- the slides' example (course file 001): M0 = 5 inputs, M1 = 3 hidden, M2 = 3 outputs ----


def g(phi: float) -> float:
    return 1.0 / (1.0 + math.exp(-phi))


def slides_update(theta1, theta2, x, t, rho):
    """Delta_n theta^1, Delta_n theta^2 of one sample by the slides' scalar formulas.

    theta^l[i][j], j = 0 is the bias (s_0 = x_0 = 1); lists of lists of floats."""
    xs = [1.0, *x]
    phi1 = [sum(theta1[i][j] * xs[j] for j in range(6)) for i in range(3)]
    s1 = [1.0, *(g(p) for p in phi1)]
    phi2 = [sum(theta2[i][j] * s1[j] for j in range(4)) for i in range(3)]
    s2 = [g(p) for p in phi2]
    delta2 = [(t[i] - s2[i]) * s2[i] * (1 - s2[i]) for i in range(3)]  # (t - s) g'(phi2)
    delta1 = [s1[i + 1] * (1 - s1[i + 1]) * sum(delta2[r] * theta2[r][i + 1] for r in range(3)) for i in range(3)]
    change2 = [[rho * delta2[i] * s1[j] for j in range(4)] for i in range(3)]
    change1 = [[rho * delta1[i] * xs[j] for j in range(6)] for i in range(3)]
    # the slides draw change2[0][3] = Delta theta^2_13 = rho delta^2_1 s^1_3 and
    # change1[2][4] = Delta theta^1_34 = rho delta^1_3 x_4 (their indices are 1-based)
    return change1, change2


def as_theta(layer) -> list[list[float]]:
    return torch.cat([layer.bias[:, None], layer.weight], dim=1).tolist()  # (M_l, 1 + M_(l-1))


def assert_theta(layer, expected: list[list[float]]) -> None:
    torch.testing.assert_close(torch.tensor(as_theta(layer)), torch.tensor(expected), rtol=0, atol=1e-14)


def test_slides_two_layer_example_online_incremental_and_batch():
    model = build("5-3-3", act="sigmoid", loss="mse", output_act="sigmoid").double()
    with torch.no_grad():
        for k, p in enumerate(model.parameters()):
            p.copy_(torch.linspace(-0.8, 0.9, p.numel(), dtype=torch.float64).view(p.shape) * (-1) ** k)
    rho = 0.5
    samples = [([1.0, 0.5, -1.0, 0.25, 2.0], [1.0, 0.0, 0.0]), ([-0.5, 1.5, 0.0, -2.0, 0.75], [0.0, 0.0, 1.0])]
    start1, start2 = as_theta(model.layers[0]), as_theta(model.layers[1])
    add = lambda a, b, c=1.0: [[u + c * v for u, v in zip(ra, rb)] for ra, rb in zip(a, b)]  # noqa: E731

    # batch BackProp: theta += (1/N) sum_n Delta_n theta, all from the same theta
    batch = copy.deepcopy(model)
    changes = [slides_update(start1, start2, x, t, rho) for x, t in samples]
    expected1 = add(add(start1, changes[0][0], 0.5), changes[1][0], 0.5)
    expected2 = add(add(start2, changes[0][1], 0.5), changes[1][1], 0.5)
    stepper = BackpropStepper(batch, torch.optim.SGD(batch.parameters(), lr=rho), "mse_half_sum")
    stepper.step(
        torch.tensor([x for x, _ in samples], dtype=torch.float64),
        torch.tensor([t for _, t in samples], dtype=torch.float64),
    )
    assert_theta(batch.layers[0], expected1)
    assert_theta(batch.layers[1], expected2)

    # on-line / incremental: theta += Delta_n theta after every sample, in turn
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=rho), "mse_half_sum")
    theta1, theta2 = start1, start2
    for x, t in samples:
        change1, change2 = slides_update(theta1, theta2, x, t, rho)
        theta1, theta2 = add(theta1, change1), add(theta2, change2)
        stepper.learn_one(torch.tensor(x, dtype=torch.float64), torch.tensor(t, dtype=torch.float64))
        assert_theta(model.layers[0], theta1)
        assert_theta(model.layers[1], theta2)
        assert theta1 != start1 and theta2 != start2


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        ("6-5:tanh-3", {"batch_size": 8, "momentum": 0.5, "lr": 0.3}),
        ("6-4:sigmoid-3", {"batch_size": "full", "loss": "sse", "lr": 2.0, "l2": 0.01}),
        ("6-mx4x2-3", {"batch_size": 1, "optimizer": "adam", "lr": 0.01, "clip_norm": 0.5}),
        ("6-5:relu-4:elu-3", {"batch_size": 7, "lr": 0.2, "grad_norms": False}),  # update fused in the backward
        (
            "6-5:tanh-3",
            {
                "batch_size": 6,
                "loss": "mse",
                "target_encoding": "tanh",
                "l2": 0.01,
                "regularize_bias": True,
                "scheduler": "step",
                "scheduler_options": {"step_size": 1},
            },
        ),
    ],
)
def test_fit_engines_agree(spec, options):
    """capas.fit with engine='backprop' and 'autograd': same weights and history (float64)."""
    from capas.api import fit

    x, y = data("fit")
    results = {}
    for engine in ("backprop", "autograd"):
        network_loss = "mse" if options.get("loss") == "sse" else "cross_entropy"
        model = build(spec, loss=network_loss, seed=5).double()
        # sgd unless a row names its optimizer (capas.fit's default is adam)
        result = fit(model, (x, y), engine=engine, epochs=3, quiet=True, **{"optimizer": "sgd", **options})
        assert result.engine == engine
        results[engine] = (list(model.parameters()), result.history)
    (mine, my_history), (theirs, their_history) = results["backprop"], results["autograd"]
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    for mine_record, their_record in zip(my_history, their_history, strict=True):
        assert set(mine_record) == set(their_record)
        for key in mine_record.keys() - {"seconds"}:
            assert mine_record[key] == pytest.approx(their_record[key], rel=1e-9, abs=1e-12), key


def test_run_epoch_gathers_in_chunks(monkeypatch):
    """Chunked gathering (several chunks, a short last batch) visits the same batches."""
    import capas.backprop.stepper as stepper_module

    monkeypatch.setattr(stepper_module, "_CHUNK_ROWS", 7)  # batch 4 -> chunks of 4 rows
    reference = build("6-5-3", act="tanh", loss="cross_entropy", seed=6).double()
    model = copy.deepcopy(reference)
    x, y = data("chunks")
    loss = Loss("cross_entropy", num_classes=3)
    autograd_run(reference, torch.optim.SGD(reference.parameters(), lr=0.2), loss, x, y, epoch_batches(2, 4, seed=9))
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.2), loss)
    generator = torch.Generator().manual_seed(9)
    for _ in range(2):
        stepper.run_epoch(x, y, 4, generator)
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)
