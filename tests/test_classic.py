"""Perceptron and Adaline: a hand-worked trace, Novikoff's bound, XOR, least squares."""

from __future__ import annotations

import pytest
import torch

from capas.errors import DataError, SpecError, TrainingError
from capas.models.classic import Adaline, Perceptron

AND_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_T = torch.tensor([-1.0, 1.0, 1.0, -1.0])


def test_perceptron_rule_hand_worked_on_and():
    """Trace of w += rho (t - y) x, rho = 1, zero start, sgn(0) = +1, samples in order:
    epoch mistakes 2, 3, 3, 2, 1, 0 ending at w = (4, 2), b = -6."""
    perceptron = Perceptron(2)
    mistakes = perceptron.fit(AND_X, torch.tensor([-1.0, -1.0, -1.0, 1.0]), lr=1.0, shuffle=False)
    assert mistakes == [2, 3, 3, 2, 1, 0]
    assert perceptron.weight.tolist() == [[4.0, 2.0]] and perceptron.bias.tolist() == [-6.0]
    assert perceptron(AND_X).flatten().tolist() == [-1.0, -1.0, -1.0, 1.0]


def separable_data(n=120, dim=4, margin=0.15, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w_true, b_true = torch.randn(dim, generator=gen, dtype=torch.float64), 0.3
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    score = (x @ w_true + b_true) / torch.cat([w_true, torch.tensor([b_true], dtype=torch.float64)]).norm()
    keep = score.abs() > margin
    return x[keep], torch.where(score[keep] > 0, 1.0, -1.0).double(), score[keep].abs().min()


@pytest.mark.parametrize("seed", [0, 1])
def test_perceptron_converges_within_novikoff_bound(seed):
    x, t, gamma = separable_data(seed=seed)
    perceptron = Perceptron(4).double()
    mistakes = perceptron.fit(x, t, epochs=500, lr=0.5, seed=seed)
    assert mistakes[-1] == 0 and len(mistakes) < 500
    radius = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1).norm(dim=1).max()
    assert sum(mistakes) <= (radius / gamma) ** 2  # total updates, for a zero start
    assert torch.equal(perceptron(x).flatten(), t)


def test_step_perceptron_learns_or_with_01_targets_and_several_outputs():
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])  # OR, AND
    perceptron = Perceptron(2, out_features=2, output="step")
    mistakes = perceptron.fit(AND_X, t, lr=0.1)
    assert mistakes[-1] == 0
    assert torch.equal(perceptron(AND_X), t)


def test_perceptron_cannot_learn_xor():
    perceptron = Perceptron(2)
    mistakes = perceptron.fit(AND_X, XOR_T, epochs=100)
    assert len(mistakes) == 100 and min(mistakes) >= 1
    assert (perceptron(AND_X).flatten() != XOR_T).sum() >= 1


def least_squares(x, t):
    augmented = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    return torch.linalg.lstsq(augmented, t.unsqueeze(1)).solution.flatten()  # (w..., b)


def parameters(adaline):
    return torch.cat([adaline.weight.detach().flatten(), adaline.bias.detach()])  # (w..., b)


def regression_data(noise, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 3, generator=gen, dtype=torch.float64)
    t = x @ torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64) + 0.7
    return x, t + noise * torch.randn(24, generator=gen, dtype=torch.float64)


def test_batch_adaline_reaches_least_squares_solution():
    x, t = regression_data(noise=0.3)
    adaline = Adaline(3).double()
    mse = adaline.fit(x, t, epochs=400, lr=0.5, mode="batch")
    solution = least_squares(x, t)
    torch.testing.assert_close(parameters(adaline), solution, atol=1e-8, rtol=0)
    assert all(a >= b - 1e-15 for a, b in zip(mse, mse[1:]))  # gradient descent on a convex MSE
    residual = t - torch.cat([x, torch.ones(24, 1, dtype=x.dtype)], dim=1) @ solution
    assert mse[-1] == pytest.approx(residual.square().mean().item(), rel=1e-9)


def test_online_adaline_lms():
    x, t = regression_data(noise=0.0)  # consistent data: LMS converges exactly
    adaline = Adaline(3).double()
    adaline.fit(x, t, epochs=150, lr=0.05, mode="online")
    torch.testing.assert_close(parameters(adaline), least_squares(x, t), atol=1e-6, rtol=0)

    x, t = regression_data(noise=0.3)  # noisy: a small constant step hovers near the solution
    adaline = Adaline(3).double()
    adaline.fit(x, t, epochs=60, lr=0.01, mode="online")
    torch.testing.assert_close(parameters(adaline), least_squares(x, t), atol=0.05, rtol=0)


def test_adaline_classifies_with_sign():
    x, t, _ = separable_data(margin=0.5)
    adaline = Adaline(4).double()
    adaline.fit(x, t, epochs=100, lr=0.2, mode="batch")
    assert (adaline.predict(x).flatten() == t).double().mean().item() >= 0.95


def test_errors():
    with pytest.raises(SpecError, match="'sgn'"):
        Perceptron(2, output="sigmoid")
    with pytest.raises(DataError, match="targets must be -1 or 1"):
        Perceptron(2).fit(AND_X, torch.tensor([0.0, 0.0, 0.0, 1.0]))
    with pytest.raises(DataError, match=r"got x \(4, 2\) and t \(3, 1\)"):
        Perceptron(2).fit(AND_X, torch.ones(3))
    with pytest.raises(SpecError, match="'online' or 'batch'"):
        Adaline(2).fit(AND_X, XOR_T, mode="minibatch")
    with pytest.raises(TrainingError, match="diverged"):
        Adaline(2).fit(AND_X * 100, torch.ones(4), lr=10.0, mode="batch", epochs=200)


def test_inputs_follow_the_weights_device_and_dtype():
    from capas.models.classic import _training_pair

    on_meta = Perceptron(2).to("meta")  # stands for a CUDA perceptron fed CPU data
    x, t = _training_pair(on_meta, AND_X, torch.tensor([-1, -1, -1, 1]))
    assert (x.device.type, t.device.type) == ("meta", "meta") and t.shape == (4, 1)
    adaline = Adaline(2).double()
    adaline.fit(AND_X.numpy(), [-1, -1, -1, 1], epochs=200, lr=0.1, mode="batch")
    decision = adaline.predict(AND_X.int())  # integer inputs on a float64 unit
    assert decision.dtype == torch.float64 and decision.flatten().tolist() == [-1.0, -1.0, -1.0, 1.0]
