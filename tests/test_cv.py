"""``capas cv``: k-fold cross-validation gives the mean and spread of every metric, folds are
stratified and cover every sample once, and no held-out fold's statistics reach training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from capas.api.cv import CVResult, cross_validate, parse_grid, settings
from capas.cli import main
from capas.errors import TrainingError


def run_cli(capsys, *args):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_mean_and_spread_are_the_folds_mean_and_n_minus_1_std():
    result = CVResult({}, [{"accuracy": 0.9, "loss": 0.3}, {"accuracy": 0.8, "loss": 0.5}, {"accuracy": 1.0}])
    metrics = result.metrics()
    assert set(metrics) == {"accuracy"}  # a metric missing from one fold is not averaged
    assert metrics["accuracy"]["mean"] == pytest.approx(0.9)
    assert metrics["accuracy"]["std"] == pytest.approx(0.1)  # sqrt((0.01 + 0.01 + 0) / 2)


def test_grid_parsing_and_settings():
    grid = parse_grid(["lr=0.01,0.003", "model=2-4-2|2-8-2", "batch_size=16,full"])
    assert grid == {"lr": [0.01, 0.003], "model": ["2-4-2", "2-8-2"], "batch_size": [16, "full"]}
    assert len(settings(grid)) == 8 and settings({}) == [{}]
    with pytest.raises(TrainingError, match="unknown --grid key 'speed'"):
        parse_grid(["speed=1,2"])


def test_folds_are_stratified_and_standardised_on_their_training_part(tmp_path, monkeypatch):
    """Every training sample is held out exactly once; each held-out fold keeps the class
    proportions; each fold's standardiser is fitted on its training part alone (mean 0, N-1
    std 1 there), not on the whole split with the held-out fold in it."""
    import capas.api.cv as cv

    seen = []

    def record(dataset, x_train, y_train, x_held, y_held, model, act, seed, options):
        seen.append((x_train, y_train, x_held, y_held))
        return {"accuracy": float(len(y_held)), "loss": 0.0}

    rng = np.random.default_rng(5)
    x = rng.normal(10.0, 3.0, size=(200, 2))
    lines = ["u,v,label"] + [f"{x[i, 0]:.5f},{x[i, 1]:.5f},{'ab'[i % 4 == 0]}" for i in range(200)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(cv, "_fold", record)
    results = cross_validate(str(tmp_path / "s.csv"), folds=4, seed=1)
    sizes = results[0].metrics()["accuracy"]["folds"]
    assert sum(sizes) == 160 and max(sizes) - min(sizes) <= 1  # the 80% training part, each sample once
    for x_train, y_train, x_held, y_held in seen:
        assert abs(y_held.float().mean() - y_train.float().mean()) < 0.02  # stratified: 1 in 4 of class b
        np.testing.assert_allclose(x_train.double().mean(0).numpy(), 0.0, atol=1e-5)
        np.testing.assert_allclose(x_train.double().std(0).numpy(), 1.0, atol=1e-5)
        assert abs(float(x_held.double().mean())) > 1e-4  # the held-out fold was not in the fit
    held = np.concatenate([h.numpy() for _, _, h, _ in seen])
    assert len(np.unique(held.round(4), axis=0)) == len(held)


def test_capas_cv_on_a_csv_with_a_grid(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    label = np.where(x[:, 0] - x[:, 1] > 0, "a", "b")
    lines = ["u,v,label"] + [f"{x[i, 0]:.4f},{x[i, 1]:.4f},{label[i]}" for i in range(120)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(
        capsys,
        "cv",
        "--data",
        tmp_path / "d.csv",
        "--model",
        "2-8-2",
        "--folds",
        "3",
        "--epochs",
        "15",
        "--grid",
        "lr=0.03,0.0001",
        "--json",
    )
    assert code == 0, err
    assert err.count("fold ") == 6  # progress: one line per fold and setting
    record = json.loads(out.strip().splitlines()[-1])
    assert [r["options"] for r in record["results"]] == [{"lr": 0.03}, {"lr": 0.0001}]
    good, slow = (r["metrics"] for r in record["results"])
    assert len(good["accuracy"]["folds"]) == 3 and good["accuracy"]["mean"] > 0.9
    assert good["accuracy"]["mean"] > slow["accuracy"]["mean"] and record["best"] == 0
    assert {"accuracy", "loss", "macro_f1"} <= set(good)
    code, out, _ = run_cli(
        capsys, "cv", "--data", tmp_path / "d.csv", "--model", "2-8-2", "--folds", "3", "--epochs", "2", "--quiet"
    )
    assert code == 0 and "accuracy" in out and "±" in out


def test_too_many_folds_is_one_line():
    with pytest.raises(TrainingError, match="fewer than --folds 50"):
        cross_validate("xor", folds=50, data_options={"n": 40})
