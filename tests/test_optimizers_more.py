"""Every torch.optim optimizer for dense gradients trains through capas (the README's claim):
Rprop, ASGD, Adafactor and L-BFGS included, L-BFGS through ``optimizer.step(closure)``."""

from __future__ import annotations

import pytest
import torch

import capas
from capas import defaults
from capas.errors import TrainingError
from capas.models import build
from capas.objectives import Loss
from capas.train.callbacks import Callback
from capas.train.config import TrainConfig
from capas.train.engines import make_stepper
from capas.train.optim import NOT_REGISTERED, OPTIMIZERS, make_optimizer
from capas.train.rundir import load_model
from capas.train.steppers import AutogradStepper


def least_squares(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, 3), y (n, 1) = x w + b + noise, in float64."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, dtype=torch.float64, generator=generator)
    w = torch.tensor([[1.5], [-2.0], [0.5]], dtype=torch.float64)
    return x, x @ w + 0.3 + 0.1 * torch.randn(n, 1, dtype=torch.float64, generator=generator)


def closed_form(x: torch.Tensor, y: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
    """argmin of mean (x w + b - y)^2 + l2/2 ||w||^2 (bias not penalised): [w (3,), b]."""
    a = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)  # (n, 4)
    penalty = torch.diag(torch.tensor([l2, l2, l2, 0.0], dtype=x.dtype))
    return torch.linalg.solve(2 / len(x) * a.T @ a + penalty, 2 / len(x) * a.T @ y).flatten()


def test_every_dense_torch_optimizer_is_registered():
    classes = {entry.cls.__name__ for entry in OPTIMIZERS.values()}
    in_torch = {
        name
        for name in dir(torch.optim)
        if isinstance(getattr(torch.optim, name), type)
        and issubclass(getattr(torch.optim, name), torch.optim.Optimizer)
        and name != "Optimizer"
    }
    assert in_torch - classes == set(NOT_REGISTERED) & in_torch
    assert {"lbfgs", "rprop", "asgd"} <= set(defaults.OPTIMIZERS)


@pytest.mark.parametrize("name", ["rprop", "asgd", "lbfgs", "adafactor"])
def test_the_new_optimizers_lower_the_loss(name):
    if name not in OPTIMIZERS:
        pytest.skip(f"torch {torch.__version__} has no {name}")
    x, y = least_squares()
    model = build("3-4:tanh-1", loss="mse", seed=0).double()
    batch = "full" if name == "lbfgs" else 16  # L-BFGS is a full-batch method
    result = capas.fit(model, (x, y), optimizer=name, epochs=8, batch_size=batch, quiet=True)
    losses = [record["train_loss"] for record in result.history]
    assert losses[-1] < 0.7 * losses[0], losses


def test_lbfgs_reaches_the_least_squares_solution():
    """A linear net trained by L-BFGS on the whole batch lands on the normal equations' solution."""
    x, y = least_squares()
    model = build("3-1", loss="mse", seed=0).double()
    result = capas.fit(
        model,
        (x, y),
        optimizer="lbfgs",
        epochs=3,
        batch_size="full",
        optimizer_options={"tolerance_grad": 1e-12, "tolerance_change": 1e-14},
        warn_gradients=False,
        quiet=True,
    )
    layer = result.model.layers[0]
    found = torch.cat([layer.weight.detach().flatten(), layer.bias.detach()])
    torch.testing.assert_close(found, closed_form(x, y), atol=1e-6, rtol=0)


def test_lbfgs_closure_includes_the_l2_penalty():
    """The closure's gradient and value carry the penalty: L-BFGS finds the ridge solution."""
    x, y = least_squares(seed=1)
    model = build("3-1", loss="mse", seed=0).double()
    optimizer = make_optimizer(
        "lbfgs", model.parameters(), 1.0, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-14
    )
    stepper = AutogradStepper(model, optimizer, Loss("mse"), l2=0.5)
    before = model(x).detach()
    first = stepper.step(x, y)  # the data loss before the update, not the penalised objective
    assert first.item() == pytest.approx(torch.mean((before - y) ** 2).item())
    torch.testing.assert_close(stepper.last_output, before)
    for _ in range(3):
        stepper.step(x, y)
    layer = model.layers[0]
    found = torch.cat([layer.weight.detach().flatten(), layer.bias.detach()])
    torch.testing.assert_close(found, closed_form(x, y, l2=0.5), atol=1e-6, rtol=0)


def test_lbfgs_takes_the_autograd_engine_and_says_why():
    model = build("3-4:tanh-2", loss="cross_entropy", seed=0)
    optimizer = make_optimizer("lbfgs", model.parameters(), 1.0)
    stepper, engine = make_stepper(model, optimizer, Loss("cross_entropy"), TrainConfig(optimizer="lbfgs"))
    assert engine == "autograd" and "closure" in stepper.declined
    with pytest.raises(TrainingError, match="engine='backprop' cannot train this run: LBFGS re-evaluates"):
        make_stepper(model, optimizer, Loss("cross_entropy"), TrainConfig(optimizer="lbfgs", engine="backprop"))
    adam = make_optimizer("adam", model.parameters(), 0.01)
    assert make_stepper(model, adam, Loss("cross_entropy"), TrainConfig())[1] == "backprop"


def test_lbfgs_refuses_mixed_precision():
    model = build("3-2", seed=0)
    optimizer = make_optimizer("lbfgs", model.parameters(), 1.0)
    with pytest.raises(TrainingError, match="drop --amp"):
        AutogradStepper(model, optimizer, Loss("cross_entropy"), amp=True)


class StopAt(Callback):
    """Interrupts the fit when epoch ``epoch`` begins (the previous epoch is checkpointed)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_lbfgs_history_survives_a_checkpoint(tmp_path):
    """L-BFGS keeps lists of tensors in its state: a run interrupted and resumed ends on the
    weights of an uninterrupted one."""
    x, y = least_squares(seed=2)
    options = {"optimizer": "lbfgs", "epochs": 4, "batch_size": 16, "seed": 3, "quiet": True}
    straight = capas.fit(build("3-4:tanh-1", loss="mse", seed=0).double(), (x, y), **options)
    with pytest.raises(KeyboardInterrupt):
        capas.fit(
            build("3-4:tanh-1", loss="mse", seed=0).double(),
            (x, y),
            out=tmp_path / "run",
            callbacks=[StopAt(3)],
            **options,
        )
    resumed = capas.fit(load_model(tmp_path / "run").double(), (x, y), resume=tmp_path / "run", quiet=True)
    assert len(resumed.history) == 4
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
