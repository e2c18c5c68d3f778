"""The history's per-layer gradient norms measure the data loss alone, under both engines.

A penalty's gradient lambda*w would otherwise dominate the norms of a deep sigmoid net and
hide the vanishing gradient the diagnostics exist to show (Nielsen's chapter 5 protocol).
"""

import pytest
import torch

from capas import build, fit
from capas.train.losses import Loss


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
        result = fit(model, (x, y), optimizer="sgd", lr=0.1, epochs=1, batch_size="full", l2=l2,
                     engine=engine, quiet=True, warn_gradients=False)
        records[l2] = result.history[0]
    for layer in ("dense1", "dense2", "dense3"):
        assert records[5.0][f"grad_norm/{layer}"] == pytest.approx(records[0.0][f"grad_norm/{layer}"], rel=1e-12)

    # ... and they equal the data loss's gradient norm computed independently
    model = build("8-6-5-3", act="sigmoid", seed=1).double()
    loss = Loss("cross_entropy")(model.logits(x), y)
    grads = torch.autograd.grad(loss, [layer.weight for layer in model.layers])
    for name, grad in zip(("dense1", "dense2", "dense3"), grads):
        assert records[5.0][f"grad_norm/{name}"] == pytest.approx(grad.norm().item(), rel=1e-6)  # the history keeps float32


def test_the_penalty_still_shapes_the_update():
    x, y = _data()
    start = build("8-6-3", act="sigmoid", seed=1).double()
    plain = fit(build("8-6-3", act="sigmoid", seed=1).double(), (x, y), optimizer="sgd", lr=0.1, epochs=1,
                batch_size="full", engine="autograd", quiet=True).model
    penalised = fit(build("8-6-3", act="sigmoid", seed=1).double(), (x, y), optimizer="sgd", lr=0.1, epochs=1,
                    batch_size="full", l2=5.0, engine="autograd", quiet=True).model
    w0 = start.layers[0].weight
    # w' = w - rho (g + lambda w): the penalised step differs by exactly rho * lambda * w0
    diff = plain.layers[0].weight - penalised.layers[0].weight
    torch.testing.assert_close(diff, 0.1 * 5.0 * w0, rtol=1e-10, atol=1e-12)
