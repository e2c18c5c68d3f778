"""The teaching plots draw numbers that independent computations reproduce."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import capas
from capas.api.experiments import lr_sweep, seed_spread
from capas.diagnostics.teaching import (
    activation_curves,
    hidden_lines,
    loss_along_line,
    plot_activations,
    plot_hidden_lines,
    plot_loss_line,
    plot_lr_sweep,
    plot_params_accuracy,
    plot_seed_spread,
)
from capas.errors import CapasError


def test_every_derivative_drawn_matches_finite_differences(tmp_path):
    curves = plot_activations(tmp_path / "act.png")
    z, _ = activation_curves()
    assert "sigmoid" in curves and "relu" in curves and "softmax" not in curves
    h = z[1] - z[0]
    for name in ("sigmoid", "tanh", "softsign", "elu", "linear"):
        f, df = curves[name]
        central = (f[2:] - f[:-2]) / (2 * h)  # an independent estimate of f'
        smooth = np.abs(z[1:-1]) > 2 * h  # softsign's and ELU's f' have a kink at 0
        assert np.allclose(df[1:-1][smooth], central[smooth], atol=2e-3), name
    s, ds = curves["sigmoid"]
    assert np.allclose(ds, s * (1 - s))  # the slide's sigma' = sigma (1 - sigma)
    assert ds.max() == pytest.approx(0.25, abs=1e-6)
    assert (tmp_path / "act.png").is_file()


def test_hidden_lines_are_the_first_layer_weights_and_separate_their_sides(tmp_path):
    net = capas.build("2-3-2", seed=1)
    with torch.no_grad():
        net.layers[0].bias.copy_(torch.tensor([0.5, -0.25, 1.0]))
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    lines = plot_hidden_lines(net, x, torch.tensor([0, 1, 1, 0]), tmp_path / "lines.png")
    w, b = net.layers[0].weight.detach().double(), net.layers[0].bias.detach().double()
    for line in lines:
        expected = (w[line.unit, 0].item(), w[line.unit, 1].item(), b[line.unit].item())
        assert (line.w1, line.w2, line.w0) == pytest.approx(expected)
        x1 = np.array([-1.0, 2.0])
        on_line = np.stack([x1, line.x2_at(x1)], axis=1)
        assert np.allclose(on_line @ w[line.unit].numpy() + b[line.unit].item(), 0.0, atol=1e-9)
    with pytest.raises(CapasError, match="2 inputs"):
        hidden_lines(capas.build("3-2-1"))


def test_lr_sweep_finds_divergence_at_a_huge_rate_and_slow_progress_at_a_tiny_one(tmp_path):
    points = lr_sweep("2-8-2", "xor", [1e-5, 0.5, 1e6], epochs=8, optimizer="sgd", batch_size=16)
    tiny, good, huge = points
    assert not tiny.diverged and not good.diverged
    assert good.final < tiny.final  # a reasonable rate goes further in the same epochs
    assert abs(tiny.losses[0] - tiny.final) < 0.01  # too small: barely moves
    assert huge.diverged or huge.final > good.final * 5
    plot_lr_sweep(points, tmp_path / "lr.png")
    assert (tmp_path / "lr.png").is_file()


def test_loss_along_line_ends_at_each_minimum(tmp_path):
    data = capas.data.load("xor")
    a = capas.fit("2-8-2", data, epochs=3, seed=0, quiet=True).model
    b = capas.fit("2-8-2", data, epochs=3, seed=1, quiet=True).model
    x, y = data.x_test, data.y_test
    alphas, losses = loss_along_line(a, b, x, y, "cross_entropy", steps=5)
    assert alphas.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    expected_a = torch.nn.functional.nll_loss(torch.log(a(x)), y).item()
    expected_b = torch.nn.functional.nll_loss(torch.log(b(x)), y).item()
    assert losses[0] == pytest.approx(expected_a, rel=1e-5)
    assert losses[-1] == pytest.approx(expected_b, rel=1e-5)
    plot_loss_line(alphas, losses, tmp_path / "line.png")
    with pytest.raises(CapasError, match="architecture"):
        loss_along_line(a, capas.build("2-4-2"), x, y, "cross_entropy")


def test_seed_spread_statistics_are_mean_and_sample_std(tmp_path):
    spread = seed_spread(["2-2-2", "2-16-2"], "xor", seeds=[0, 1, 2], epochs=2)
    assert {k: len(v) for k, v in spread.items()} == {"2-2-2": 3, "2-16-2": 3}
    stats = plot_seed_spread(spread, tmp_path / "spread.png")
    for spec, values in spread.items():
        mean = sum(values) / 3
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
        assert stats[spec] == pytest.approx((mean, std))
    plot_params_accuracy({"wider": [(100, 0.8), (400, 0.9)], "deeper": [(120, 0.85)]}, tmp_path / "pa.png")
    assert (tmp_path / "pa.png").is_file()


def test_cli_teach_draws_from_runs_and_prints_the_numbers(tmp_path):
    import json

    from typer.testing import CliRunner

    from capas.cli import _register, app

    _register()
    runs, data = [], capas.data.load("xor", seed=0)  # one split: both minima are measured on the same test set
    for seed in (0, 1):
        runs.append(tmp_path / f"run{seed}")
        capas.fit("2-4-2", data, epochs=2, seed=seed, out=runs[-1], quiet=True)
    result = CliRunner().invoke(
        app, ["teach", "minima-line", *map(str, runs), "--steps", "3", "--out", str(tmp_path / "m.png"), "--json"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    evaluated = [capas.evaluate(run).metrics["test_loss"] for run in runs]
    assert record["losses"][0] == pytest.approx(evaluated[0], rel=1e-5)
    assert record["losses"][-1] == pytest.approx(evaluated[1], rel=1e-5)
    result = CliRunner().invoke(app, ["teach", "hidden-lines", str(runs[0]), "--out", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "h.png").is_file()
