"""The history's per-layer gradient norms measure the data loss alone, under both engines.

A penalty's gradient lambda*w would otherwise dominate the norms of a deep sigmoid net and
hide the vanishing gradient the diagnostics exist to show (Nielsen's chapter 5 protocol).
"""

import pytest
import torch

from capas import build, fit
from capas.objectives import Loss


def _data(n: int = 40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


@pytest.mark.parametrize("engine", ["autograd", "backprop"])
def test_first_step_norms_do_not_include_the_penalty(engine):
    x, y = _data()
    records = {}
    for l2 in (0.0, 5.0):
        model = build("8-6-5-3", act="sigmoid", seed=1).double()
        result = fit(
            model,
            (x, y),
            optimizer="sgd",
            lr=0.1,
            epochs=1,
            batch_size="full",
            l2=l2,
            engine=engine,
            quiet=True,
            warn_gradients=False,
        )
        records[l2] = result.history[0]
    for layer in ("dense1", "dense2", "dense3"):
        assert records[5.0][f"grad_norm/{layer}"] == pytest.approx(records[0.0][f"grad_norm/{layer}"], rel=1e-12)

    # ... and they equal the data loss's gradient norm computed independently
    model = build("8-6-5-3", act="sigmoid", seed=1).double()
    loss = Loss("cross_entropy")(model.logits(x), y)
    grads = torch.autograd.grad(loss, [layer.weight for layer in model.layers])
    for name, grad in zip(("dense1", "dense2", "dense3"), grads):
        assert records[5.0][f"grad_norm/{name}"] == pytest.approx(
            grad.norm().item(), rel=1e-6
        )  # the history keeps float32


def test_the_penalty_still_shapes_the_update():
    x, y = _data()
    start = build("8-6-3", act="sigmoid", seed=1).double()
    plain = fit(
        build("8-6-3", act="sigmoid", seed=1).double(),
        (x, y),
        optimizer="sgd",
        lr=0.1,
        epochs=1,
        batch_size="full",
        engine="autograd",
        quiet=True,
    ).model
    penalised = fit(
        build("8-6-3", act="sigmoid", seed=1).double(),
        (x, y),
        optimizer="sgd",
        lr=0.1,
        epochs=1,
        batch_size="full",
        l2=5.0,
        engine="autograd",
        quiet=True,
    ).model
    w0 = start.layers[0].weight
    # w' = w - rho (g + lambda w): the penalised step differs by exactly rho * lambda * w0
    diff = plain.layers[0].weight - penalised.layers[0].weight
    torch.testing.assert_close(diff, 0.1 * 5.0 * w0, rtol=1e-10, atol=1e-12)


def test_long_epochs_sample_evenly_spaced_steps_and_engines_still_agree():
    from capas.tasks.supervised import GRAD_NORM_SAMPLES, grad_norm_stride

    x, y = _data(n=10 * 2 * GRAD_NORM_SAMPLES + 30)  # 131 steps of 10: every 16th step is measured
    stride = grad_norm_stride(131)
    assert stride == 16 and 131 // stride + 1 <= GRAD_NORM_SAMPLES
    results = {}
    for engine in ("autograd", "backprop"):
        model = build("8-6-3", act="tanh", seed=2).double()
        results[engine] = fit(
            model,
            (x, y),
            optimizer="sgd",
            lr=0.05,
            epochs=2,
            batch_size=10,
            engine=engine,
            quiet=True,
            warn_gradients=False,
        )
    # the explicit engine fuses the update into backward on the unmeasured steps: same weights
    for a, b in zip(results["autograd"].model.parameters(), results["backprop"].model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for ra, rb in zip(results["autograd"].history, results["backprop"].history):
        assert ra["grad_norm/dense1"] == pytest.approx(rb["grad_norm/dense1"], rel=1e-6)

    # the recorded mean is over steps 0, 16, 32, ...: recompute it by hand for epoch 1
    model = build("8-6-3", act="tanh", seed=2).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    norms = []
    for step, start in enumerate(range(0, len(x), 10)):
        index = order[start : start + 10]
        optimizer.zero_grad()
        Loss("cross_entropy")(model.logits(x[index]), y[index]).backward()
        if step % stride == 0:
            norms.append(model.layers[0].weight.grad.norm().item())
        optimizer.step()
    expected = sum(norms) / len(norms)
    assert results["autograd"].history[0]["grad_norm/dense1"] == pytest.approx(expected, rel=1e-6)


def test_the_sampling_stride_bounds_the_measured_share_of_an_epoch():
    from capas.tasks.supervised import GRAD_NORM_EVERY, GRAD_NORM_SAMPLES, grad_norm_stride

    assert [grad_norm_stride(s) for s in (1, 7, 45, 131, 469, 6000)] == [1, 1, 5, 16, 32, 94]
    for steps in range(1, 20000, 37):
        measured = len(range(0, steps, grad_norm_stride(steps)))
        assert measured <= GRAD_NORM_SAMPLES
        assert measured >= min(steps, 8)  # enough steps for a mean
        if steps >= 8 * GRAD_NORM_EVERY:
            assert measured <= steps / GRAD_NORM_EVERY + 1
