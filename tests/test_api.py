"""``capas.api``: one table of defaults, the loss chosen by the data, optimizer options,
evaluate and predict as the CLI does them, and the lazy top-level names."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import capas
from capas import defaults
from capas.api import evaluate, fit, predict
from capas.api.fit import train_config
from capas.cli import _register, app
from capas.data import load
from capas.diagnostics.gradients import GradientMonitor
from capas.errors import TrainingError
from capas.models import build
from capas.train import Callback


def saved_train_config(run_dir) -> dict:
    return json.loads((run_dir / "config.json").read_text())["train"]


def test_defaults_are_one_table():
    config = train_config()
    assert (config.optimizer, config.lr, config.epochs, config.batch_size) == ("adam", 0.003, 30, 32)
    assert train_config(optimizer="sgd").lr == 0.1
    assert train_config(optimizer="momentum").lr == 0.05
    assert train_config(optimizer="sgd", lr=0.7).lr == 0.7
    assert defaults.default_loss("regression") == "mse"


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.003), ("sgd", 0.1)])
def test_fit_takes_the_learning_rate_of_its_optimizer(tmp_path, optimizer, lr):
    """Finding 5: capas.fit(..., optimizer="adam") trained at 0.1 (capas train: 0.003)."""
    fit("2-4-2", "xor", optimizer=optimizer, epochs=1, out=tmp_path, quiet=True)
    saved = saved_train_config(tmp_path)
    assert (saved["optimizer"], saved["lr"], saved["batch_size"]) == (optimizer, lr, 32)


@pytest.mark.parametrize("options", [[], ["--optimizer", "sgd", "--epochs", "2"]])
def test_capas_train_and_capas_fit_record_the_same_config(tmp_path, options):
    _register()
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    args = ["train", "--data", "xor", "--model", "2-4-2", "--epochs", "1", *options, "--quiet", "--out", str(cli_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    given = dict(zip(options[::2], options[1::2]))
    kwargs = {"optimizer": given["--optimizer"]} if "--optimizer" in given else {}
    fit(
        "2-4-2",
        load("xor", seed=0, validation=0.1),
        epochs=int(given.get("--epochs", 1)),
        out=api_dir,
        quiet=True,
        **kwargs,
    )
    assert saved_train_config(cli_dir) == saved_train_config(api_dir)


def test_a_spec_string_on_regression_data_gets_mse():
    """Finding 2: fit built the spec before loading the data, with cross_entropy."""
    result = fit("1x20-16-1", "sine", epochs=2, quiet=True)
    assert result.model.loss == "mse"
    assert math.isfinite(result.test_metrics["test_mse"]) and result.test_metrics["test_mse"] < 1.0
    assert "test_accuracy" not in result.test_metrics


def test_tuple_regression_data_gets_mse_and_labels_cross_entropy():
    x = np.linspace(-1, 1, 40, dtype=np.float32).reshape(40, 1)
    assert fit("1-4-1", (x, np.sin(3 * x)), epochs=1, quiet=True).model.loss == "mse"
    labels = (x[:, 0] > 0).astype(np.int64)
    assert fit("1-4-2", (x, labels), epochs=1, quiet=True).model.loss == "cross_entropy"


def test_optimizer_options_may_set_lr_and_momentum(tmp_path):
    """Finding 3: {"lr": ...} or {"momentum": ...} in optimizer_options ended in a raw TypeError."""
    fit("2-4-2", "xor", epochs=1, optimizer_options={"lr": 0.5, "weight_decay": 0.01}, out=tmp_path / "a", quiet=True)
    saved = saved_train_config(tmp_path / "a")
    assert saved["lr"] == 0.5 and saved["optimizer_options"] == {"weight_decay": 0.01}
    fit("2-4-2", "xor", optimizer="sgd", epochs=1, optimizer_options={"momentum": 0.9}, out=tmp_path / "b", quiet=True)
    saved = saved_train_config(tmp_path / "b")
    assert (saved["lr"], saved["momentum"], saved["optimizer_options"]) == (0.1, 0.9, {})
    with pytest.raises(TrainingError, match=r"lr is given twice \(lr=0.2 and optimizer_options lr=0.5\)"):
        fit("2-4-2", "xor", lr=0.2, optimizer_options={"lr": 0.5}, quiet=True)
    with pytest.raises(TrainingError, match="optimizer 'adam' has no momentum option"):
        fit("2-4-2", "xor", epochs=1, optimizer_options={"momentum": 0.9}, quiet=True)


class Spy(Callback):
    def on_fit_begin(self, trainer) -> None:
        self.kinds = [type(c).__name__ for c in trainer.callbacks]


@pytest.mark.parametrize("warn, expected", [(True, 1), (False, 0)])
def test_fit_adds_the_gradient_monitor_when_asked(warn, expected):
    spy = Spy()
    fit(build("2-3-2", seed=0), "xor", epochs=1, warn_gradients=warn, callbacks=[spy], quiet=True)
    assert spy.kinds.count(GradientMonitor.__name__) == expected


def test_evaluate_and_predict_a_run_and_a_model(tmp_path):
    data = load("digits", seed=0)
    result = fit("64-32-10", data, epochs=3, out=tmp_path, quiet=True)
    evaluation = evaluate(tmp_path)
    assert evaluation.data == "digits" and evaluation.n_samples == len(data.x_test)
    assert evaluation.metrics["test_accuracy"] == pytest.approx(result.test_metrics["test_accuracy"])
    assert evaluation.class_names == list(data.class_names)
    assert evaluate(result.model, data).metrics["test_accuracy"] == pytest.approx(evaluation.metrics["test_accuracy"])
    images = data.x_test[:5]  # (5, 1, 8, 8), already preprocessed: a bare model applies nothing
    assert predict(result.model, images).tolist() == result.model.predict(images.reshape(5, 64)).tolist()
    from sklearn.datasets import load_digits

    raw = load_digits().data[:50].astype(np.float32)  # 0..16 pixels, as a user has them
    labels = predict(tmp_path, raw)
    assert labels.shape == (50,)
    assert (labels.numpy() == load_digits().target[:50]).mean() >= 0.8


def test_every_public_name_resolves():
    for name in capas.__all__:
        assert getattr(capas, name) is not None, name
    assert capas.fit is fit and capas.evaluate is evaluate
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        capas.fitt  # noqa: B018
