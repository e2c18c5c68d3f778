"""Plots of real run directories (trained by capas.fit), through plot_run and `capas plot`."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import capas.cli
from capas.api.fit import fit
from capas.data import load
from capas.data.subsets import adjust_training_split
from capas.diagnostics.gradients import loss_gradient_norms
from capas.diagnostics.plots import plot_run
from capas.diagnostics.plots_model import confusion
from capas.diagnostics.plots_training import gradient_norm_series
from capas.errors import CapasError, RunDirError
from capas.models import build
from capas.train import load_run


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    """A 2-epoch full-batch run on a small XOR set, and the model's initial gradient norms."""
    out = tmp_path_factory.mktemp("runs") / "xor"
    data = load("xor", n=80)
    model = build("2-5-3-2", act="tanh", seed=0)
    initial = loss_gradient_norms(copy.deepcopy(model), data.x_train, data.y_train)
    result = fit(model, data, lr=0.3, epochs=2, batch_size="full", out=out, quiet=True)
    return out, data, result, initial


def test_all_plots_of_a_2d_run(xor_run):
    out, *_ = xor_run
    paths = plot_run(out)
    assert [p.name for p in paths] == [
        "curves.png",
        "gradients.png",
        "confusion.png",
        "boundary.png",
        "hidden-dense2.png",
        "weights.png",
        "activations.png",
    ]
    assert all(p.parent == out / "plots" and p.stat().st_size > 1000 for p in paths)


def test_gradient_series_equal_the_full_batch_gradient_at_initialisation(xor_run):
    """Epoch 1 of a full-batch run is one step at the initial weights: its recorded norms are
    the data-loss gradient norms computed independently with autograd."""
    out, _, result, initial = xor_run
    series = gradient_norm_series(list(load_run(out).history))
    assert list(series) == ["dense1", "dense2", "dense3"]
    for layer, (weight_norm, _) in initial.items():
        assert series[layer][0] == pytest.approx(weight_norm, rel=1e-5)
        assert series[layer][1] == pytest.approx(result.history[1][f"grad_norm/{layer}"])


def test_run_confusion_matches_the_trainers_test_metrics(xor_run):
    out, data, result, _ = xor_run
    reloaded = load_run(out)
    matrix = confusion(reloaded.build_model(), data.x_test, data.y_test, 2)
    np.testing.assert_array_equal(matrix, np.array(result.test_metrics["confusion_matrix"]))


def test_boundary_needs_2d_inputs_and_animation_needs_snapshots(tmp_path, xor_run):
    out, *_ = xor_run
    with pytest.raises(RunDirError, match="BoundarySnapshots"):
        plot_run(out, "boundary", animate=True)
    with pytest.raises(CapasError, match="--animate"):
        plot_run(out, "curves", animate=True)
    small = adjust_training_split(load("digits", validation=0.0), 100)  # reloadable: train_size in options
    fit(build("1x8x8-4-10", seed=0), small, epochs=1, out=tmp_path / "d", quiet=True)
    with pytest.raises(CapasError, match=r"cannot plot boundary: .*shape \(1, 8, 8\)"):
        plot_run(tmp_path / "d", "boundary")
    (weights,) = plot_run(tmp_path / "d", "weights")
    assert weights.is_file()
    with pytest.raises(CapasError, match=r"--animate .*shape \(1, 8, 8\)"):  # not silently dropped
        plot_run(tmp_path / "d", "all", animate=True)


def test_runs_on_in_memory_arrays_still_get_curves_and_gradients(tmp_path):
    x, y = torch.randn(40, 2), torch.arange(40) % 2
    fit(build("2-3-2", seed=0), (x, y), epochs=2, out=tmp_path / "raw", quiet=True)
    assert [p.name for p in plot_run(tmp_path / "raw")] == ["curves.png", "gradients.png"]
    with pytest.raises(CapasError, match="cannot plot confusion: the run's data cannot be reloaded"):
        plot_run(tmp_path / "raw", "confusion")


def test_unknown_kind_and_missing_run_are_errors(tmp_path, xor_run):
    out, *_ = xor_run
    with pytest.raises(CapasError, match="unknown plot 'curve'"):
        plot_run(out, "curve")
    with pytest.raises(RunDirError):
        plot_run(tmp_path / "nothing")


def test_cli_plot_prints_paths_and_json(xor_run):
    out, *_ = xor_run
    capas.cli._register()
    runner = CliRunner()
    result = runner.invoke(capas.cli.app, ["plot", str(out), "--what", "hidden", "--layer", "dense1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / "plots" / "hidden-dense1.png")
    result = runner.invoke(capas.cli.app, ["plot", str(out), "--what", "curves", "--json"])
    assert json.loads(result.output.strip().splitlines()[-1])["plots"] == [str(out / "plots" / "curves.png")]


def test_cli_plot_error_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        capas.cli.main(["plot", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_hidden_plot_uses_the_chosen_layer(xor_run):
    out, data, result, _ = xor_run
    (path,) = plot_run(out, "hidden", layer="dense1")
    assert path.name == "hidden-dense1.png"
    with pytest.raises(CapasError, match="unknown layer 'dense7'"):
        plot_run(out, "hidden", layer="dense7")
    assert torch.equal(load_run(out).build_model().predict(data.x_test), result.model.predict(data.x_test))


def test_cli_plot_refuses_training_plot_options_on_a_pretraining_directory(tmp_path, capsys):
    (tmp_path / "pretrain.json").write_text("{}")  # a `capas pretrain` dir has no training history
    with pytest.raises(SystemExit) as exit_info:
        capas.cli.main(["plot", str(tmp_path), "--what", "boundary"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "pre-training" in err and err.count("\n") == 1
