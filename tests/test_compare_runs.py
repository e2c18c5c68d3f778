"""Comparing runs: overlaid curves from the CLI and Python, ``capas.plot``, ``print(summarize)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import capas
from capas.cli import _register, app
from capas.diagnostics.plots_training import plot_compare_curves
from capas.errors import CapasError


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for lr in (0.01, 0.1):
        runs.append(root / f"lr{lr}")
        capas.fit("2-4-2", "xor", optimizer="sgd", lr=lr, epochs=3, out=runs[-1], quiet=True)
    return runs


def test_overlay_draws_each_runs_own_history(two_runs, tmp_path):
    histories = {run.name: list(capas.load_run(run).history) for run in two_runs}
    series = plot_compare_curves(histories, tmp_path / "c.png")
    for name, history in histories.items():
        assert np.allclose(series[name]["train_loss"], [row["train_loss"] for row in history])
        assert np.allclose(series[name]["val_accuracy"], [row["val_accuracy"] for row in history])
    assert not np.allclose(series["lr0.01"]["train_loss"], series["lr0.1"]["train_loss"])


def test_cli_plot_takes_several_runs(two_runs, tmp_path):
    _register()
    out = tmp_path / "both.png"
    result = CliRunner().invoke(app, ["plot", *map(str, two_runs), "--what", "curves", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["plots"] == [str(out)]
    assert out.stat().st_size > 10_000
    result = CliRunner().invoke(app, ["plot", *map(str, two_runs), "--what", "confusion", "--out", str(out)])
    assert result.exit_code != 0 and "learning curves only" in str(result.exception or result.output)
    again = CliRunner().invoke(app, ["plot", *map(str, two_runs), "--out", str(out)])
    assert again.exit_code != 0 and "already exists" in str(again.exception) and "--force" in str(again.exception)
    forced = CliRunner().invoke(app, ["plot", *map(str, two_runs), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    alone = CliRunner().invoke(app, ["plot", str(two_runs[0]), "--out", str(tmp_path / "one.png")])
    assert alone.exit_code != 0 and "overlay of several runs" in str(alone.exception)


def test_capas_plot_draws_a_result_without_run_dir(tmp_path):
    result = capas.fit("2-4-2", "xor", epochs=2, quiet=True)
    written = capas.plot(result, ["curves", "boundary"], data="xor", out=tmp_path)
    assert [p.name for p in written] == ["curves.png", "boundary.png"]
    with pytest.raises(CapasError, match="out="):
        capas.plot(result, "curves")


def test_print_summarize_prints_the_table():
    text = str(capas.summarize("784-30-10"))
    assert "dense1" in text and "23,550" in text and "23,860 parameters" in text
    assert "LayerRow(" not in text
