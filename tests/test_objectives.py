"""capas.objectives: the loss registry, target codes and the decision rule every reader shares.

Findings 1 and 4 of issue 10: mae/huber were unknown to ``capas.fit`` and ``capas train``,
and a squared-error classifier's ``predict`` returned raw outputs while ``evaluate``
reported accuracy.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import capas
from capas.backprop import BackpropStepper
from capas.cli import main
from capas.data.preprocess import encode_targets
from capas.errors import SpecError, TrainingError
from capas.models import OUTPUT_FOR_LOSS, Network, build
from capas.objectives import LOSSES, TARGET_CODES, Loss, TargetCoder, canonical_loss, output_activation
from capas.train.evaluation import evaluate_model


def _batch(name: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (6, 4) float64 and targets for ``name``: labels for cross-entropy, 0..1 rows
    for binary cross-entropy, real values otherwise."""
    output = torch.randn(6, 4, generator=generator, dtype=torch.float64) * 2
    if name == "cross_entropy":
        return output, torch.randint(0, 4, (6,), generator=generator)
    if name == "binary_cross_entropy":
        return output, torch.rand(6, 4, generator=generator, dtype=torch.float64)
    return output, torch.randn(6, 4, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_is_the_weighted_mean_of_its_per_sample_form(name):
    info = LOSSES[name]
    generator = torch.Generator().manual_seed(3)
    output, target = _batch(name, generator)
    q = info.per_sample(output, target)
    assert q.shape == (6,)
    torch.testing.assert_close(info.function(output, target), q.mean(), rtol=1e-12, atol=1e-12)
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0, 0.0, 1.5], dtype=torch.float64)
    torch.testing.assert_close(info.function(output, target, weight), (weight * q).sum() / 8.0, rtol=1e-12, atol=1e-12)


def test_per_sample_forms_are_the_formulas():
    s = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    # errors e = s - t: [1, -2], [-1.5, 2]
    expected = {
        "mse_half_sum": [0.5 * (1 + 4), 0.5 * (2.25 + 4)],
        "mse": [(1 + 4) / 2, (2.25 + 4) / 2],
        "mae": [(1 + 2) / 2, (1.5 + 2) / 2],
        "huber": [(0.5 + 1.5) / 2, (1.0 + 1.5) / 2],  # 0.5 e^2 for |e| <= 1, |e| - 0.5 above
    }
    for name, values in expected.items():
        assert LOSSES[name].per_sample(s, t).tolist() == pytest.approx(values, abs=1e-12), name


def test_logit_losses_equal_their_formulas_on_softmax_and_sigmoid_outputs():
    generator = torch.Generator().manual_seed(5)
    z = torch.randn(7, 3, generator=generator, dtype=torch.float64) * 3
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    t = F.one_hot(labels, 3).double()
    softmax = torch.softmax(z, dim=1)
    by_formula = -(t * softmax.log()).sum(dim=1).mean()  # -1/N sum_n sum_i t_ni log s_ni
    torch.testing.assert_close(LOSSES["cross_entropy"].function(z, labels), by_formula, rtol=1e-12, atol=1e-12)
    sigmoid = torch.sigmoid(z)
    by_formula = -(t * sigmoid.log() + (1 - t) * (1 - sigmoid).log()).mean(dim=1).mean()
    torch.testing.assert_close(LOSSES["binary_cross_entropy"].function(z, t), by_formula, rtol=1e-12, atol=1e-12)
    assert {name for name, info in LOSSES.items() if info.from_logits} == {"cross_entropy", "binary_cross_entropy"}


def test_class_weights_weigh_every_loss_like_torchs_cross_entropy():
    generator = torch.Generator().manual_seed(8)
    z = torch.randn(8, 3, generator=generator, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0, 0, 2])
    w = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64)
    reference = torch.nn.CrossEntropyLoss(weight=w)(z, y)
    torch.testing.assert_close(Loss("ce", num_classes=3, class_weights=w)(z, y), reference, rtol=1e-12, atol=1e-12)
    q = (z - F.one_hot(y, 3)).abs().mean(dim=1)
    expected = (q * w[y]).sum() / w[y].sum()
    torch.testing.assert_close(Loss("mae", num_classes=3, class_weights=w)(z, y), expected, rtol=1e-12, atol=1e-12)


def test_registry_names_aliases_and_output_activations():
    assert list(LOSSES) == ["mse_half_sum", "mse", "mae", "huber", "cross_entropy", "binary_cross_entropy"]
    assert [canonical_loss(n) for n in ("SSE", "ce", "bce", "Binary-Cross-Entropy")] == [
        "mse_half_sum",
        "cross_entropy",
        "binary_cross_entropy",
        "binary_cross_entropy",
    ]
    assert {n: output_activation(n) for n in LOSSES} == {
        "mse_half_sum": "linear",
        "mse": "linear",
        "mae": "linear",
        "huber": "linear",
        "cross_entropy": "softmax",
        "binary_cross_entropy": "sigmoid",
    }
    assert OUTPUT_FOR_LOSS == {n: output_activation(n) for n in LOSSES}
    assert {n: info.decision for n, info in LOSSES.items()} == {
        "mse_half_sum": "identity",
        "mse": "identity",
        "mae": "identity",
        "huber": "identity",
        "cross_entropy": "argmax",
        "binary_cross_entropy": "threshold",
    }
    with pytest.raises(
        TrainingError, match=r"unknown loss 'hubber'; did you mean 'huber'\? valid losses: mse_half_sum"
    ):
        canonical_loss("hubber")


def test_target_codes_are_the_slides():
    assert TARGET_CODES == {"onehot": (0.0, 1.0), "tanh": (-0.9, 0.9), "sigmoid": (0.1, 0.9)}
    y = torch.tensor([2, 0])
    tanh, sigmoid = TargetCoder(3, "tanh", dtype=torch.float64), TargetCoder(3, "sigmoid", dtype=torch.float64)
    assert tanh.encode(y).tolist() == [[-0.9, -0.9, 0.9], [0.9, -0.9, -0.9]]
    assert sigmoid.encode(y).tolist() == [[0.1, 0.1, 0.9], [0.9, 0.1, 0.1]]
    assert TargetCoder(3).encode(y).tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    one = TargetCoder(1, "tanh", dtype=torch.float64)  # one unit for two classes
    assert one.encode(torch.tensor([1, 0, 1])).tolist() == [[0.9], [-0.9], [0.9]]
    assert (one.threshold, TargetCoder(1, "sigmoid").threshold) == pytest.approx((0.0, 0.5))
    for encoding in TARGET_CODES:  # the data package's codes are the same table
        torch.testing.assert_close(encode_targets(y, 3, encoding), TargetCoder(3, encoding).encode(y))
    with pytest.raises(TrainingError, match="unknown target encoding 'tanh9'; valid: onehot, tanh, sigmoid"):
        Loss("mse", num_classes=3, target_encoding="tanh9")


@pytest.mark.parametrize(
    "spec, loss_name, encoding",
    [
        ("4-5:tanh-3:tanh", "mse", "tanh"),
        ("4-5-3:sigmoid", "mse_half_sum", "sigmoid"),
        ("4-5-1:tanh", "mse_half_sum", "tanh"),
        ("4-5-3", "cross_entropy", "tanh"),
        ("4-5-1", "binary_cross_entropy", "onehot"),
    ],
)
def test_the_backprop_engine_and_the_loss_encode_labels_alike(spec, loss_name, encoding):
    model = build(spec, loss="mse" if loss_name.startswith("mse") else loss_name, seed=0).double()
    loss = Loss(
        loss_name, num_classes=2 if spec.endswith("1") or spec.endswith("1:tanh") else 3, target_encoding=encoding
    ).to(torch.device("cpu"), torch.float64)
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.1), loss)
    rule = stepper.net.rule
    width = model.output_shape[0]
    y = torch.tensor([1, 0, 1, 1, 0])
    assert rule.coder is loss.coder(width)
    expected = loss.coder(width).encode(y)
    torch.testing.assert_close(rule.encode(y), expected)
    torch.testing.assert_close(rule.target(y, torch.empty(5, width, dtype=torch.float64)), expected)
    if loss_name != "cross_entropy":  # cross-entropy takes the labels themselves
        torch.testing.assert_close(loss.targets(torch.zeros(5, width, dtype=torch.float64), y), expected)
    low, high = TARGET_CODES["onehot" if loss_name == "cross_entropy" else encoding]
    assert sorted(set(expected.flatten().tolist())) == pytest.approx(sorted({low, high}))


def test_a_network_built_for_huber_or_mae_has_a_linear_output():
    for name in ("huber", "mae", "sse"):
        model = build("4-6-3", loss=name, seed=0)
        assert model.loss == canonical_loss(name) and model.options["output_act"] == "linear"
        assert model.layers[-1].activation.name == "linear"
    with pytest.raises(SpecError, match="unknown loss 'kl'"):
        build("4-3", loss="kl")


def test_the_task_option_chooses_what_predict_returns():
    x = torch.randn(5, 4)
    squared = build("4-6-3", loss="mse", seed=0, task="classification")
    torch.testing.assert_close(squared.predict(x), squared(x).argmax(dim=1))
    sigmoid = build("4-6-3", loss="binary_cross_entropy", seed=0, task="classification")  # one-hot rows
    torch.testing.assert_close(sigmoid.predict(x), sigmoid(x).argmax(dim=1))
    multi_label = build("4-6-3", loss="binary_cross_entropy", seed=0)
    torch.testing.assert_close(multi_label.predict(x), (multi_label(x) > 0.5).long())
    regression = build("4-6-3", loss="huber", seed=0, task="regression")
    torch.testing.assert_close(regression.predict(x), regression(x).detach())
    config = squared.config()
    assert config["task"] == "classification"
    assert Network.from_config(config).task == "classification"
    old = {k: v for k, v in config.items() if k != "task"}  # model.json written before the option
    assert Network.from_config(old).task is None
    with pytest.raises(SpecError, match="'task' must be one of classification, regression"):
        build("4-3", task="classes")
    with pytest.raises(SpecError, match="loss cross_entropy needs class labels.*use mse, mae or huber"):
        build("4-3", loss="ce", task="regression")


def test_predict_proba_is_s_L_in_eval_mode_on_the_weights_dtype():
    model = build("4-8 drop0.5 d3", seed=0).double()
    x = torch.randn(6, 4)  # float32 data for a float64 model
    model.train()
    proba = model.predict_proba(x)
    assert proba.dtype == torch.float64 and not proba.requires_grad and model.training
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(proba, model(x.double()))
    assert proba.sum(dim=1).tolist() == pytest.approx([1.0] * 6)
    torch.testing.assert_close(model.predict(x), proba.argmax(dim=1))


def test_a_squared_error_classifier_predicts_classes_as_evaluate_decides(tmp_path):
    """Finding 4: predict returned (N, 10) outputs for an mse_half_sum classifier."""
    data = capas.data.load("digits")
    result = capas.fit(
        "64-30-10", data, loss="mse_half_sum", optimizer="sgd", lr=0.1, epochs=3, quiet=True, out=tmp_path / "run"
    )
    model = result.model
    predicted = model.predict(data.x_test)
    assert predicted.shape == (len(data.x_test),) and predicted.dtype == torch.int64
    assert torch.equal(predicted, model.predict_proba(data.x_test).argmax(dim=1))
    accuracy = (predicted == data.y_test).double().mean().item()
    assert 0.5 < accuracy  # it learned something, so the rule matters
    assert result.test_metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    bound = Loss("mse_half_sum", num_classes=10)
    assert evaluate_model(model, data.x_test, data.y_test, bound)["test_accuracy"] == pytest.approx(accuracy)
    # the run directory: `capas predict` writes one class per sample, as `capas evaluate` counts them
    raw = data.x_test.reshape(len(data.x_test), -1) * data.preprocessing["scale"]["divide_by"]  # 0..16 pixels
    np.save(tmp_path / "x.npy", raw.numpy())
    main(["predict", str(tmp_path / "run"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.npy")])
    from_cli = np.load(tmp_path / "p.npy")
    assert from_cli.shape == (len(data.x_test),)
    np.testing.assert_array_equal(from_cli, predicted.numpy())
    evaluated = capas.evaluate(tmp_path / "run").metrics["test_accuracy"]
    assert evaluated == pytest.approx(float((from_cli == data.y_test.numpy()).mean()))


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_fit_trains_with_mae_and_huber(loss):
    """Finding 1: capas.fit(..., loss="mae") failed with "unknown loss"."""
    result = capas.fit("64-30-10", "digits", loss=loss, epochs=2, quiet=True)
    losses = result.history.column("train_loss")
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert result.model.loss == loss and result.model.options["output_act"] == "linear"


def test_capas_train_takes_loss_mae(tmp_path, capsys):
    """Finding 1 on the command line: `capas train --loss mae`."""
    main(
        [
            "train",
            "--data",
            "digits",
            "--model",
            "64-16-10",
            "--loss",
            "mae",
            "--epochs",
            "1",
            "--quiet",
            "--json",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert math.isfinite(summary["train_loss"]) and 0.0 <= summary["test_accuracy"] <= 1.0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["loss"] == "mae"
    assert json.loads((tmp_path / "run" / "model.json").read_text())["loss"] == "mae"
