"""GradientMonitor: vanishing/exploding gradients, saturated units and dead ReLUs, warned once each."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import pytest
import torch

from capas.diagnostics.gradients import (
    CapasWarning,
    GradientMonitor,
    SpeedOfLearning,
    Thresholds,
    activation_findings,
    gradient_findings,
    hidden_activations,
    loss_gradient_norms,
)
from capas.models import build


def kinds(findings) -> list[str]:
    return [f.kind for f in findings]


@pytest.mark.parametrize(
    ("norms", "expected"),
    [
        ({"dense1": 0.1, "dense2": 0.2, "dense3": 0.3}, []),
        ({"dense1": 0.003, "dense2": 0.017, "dense3": 0.07, "dense4": 0.285, "dense5": 0.9}, ["vanishing"]),
        ({"dense1": 50.0, "dense2": 0.1}, ["exploding"]),
        ({"dense1": 1e-9, "dense2": 1e-8}, ["tiny"]),
        ({"dense1": 1e-9, "dense2": 1e-3}, ["vanishing", "tiny"]),
        ({"dense1": 2e3, "dense2": 1e3 + 1}, ["huge"]),
        ({"dense1": math.nan, "dense2": 1.0}, ["exploding"]),
        ({"dense1": 1.0}, []),
    ],
)
def test_gradient_findings_by_ratio_and_absolute_size(norms, expected):
    assert kinds(gradient_findings(norms)) == expected


def test_vanishing_message_gives_the_ratio_and_a_hint():
    (finding,) = gradient_findings({"dense1": 0.002, "dense2": 0.4}, epoch=4)
    text = str(finding)
    assert text.startswith("epoch 4: vanishing gradient") and "= 0.005" in text
    assert "ReLU" in text and "init" in text


def test_thresholds_are_configurable():
    assert kinds(gradient_findings({"a": 0.05, "b": 1.0}, Thresholds(vanishing_ratio=0.1))) == ["vanishing"]


def test_hidden_activations_skip_the_output_layer():
    model = build("4-5-3-2", act="tanh", seed=0)
    caught = hidden_activations(model, torch.randn(7, 4))
    assert [(layer, act, tuple(s.shape)) for layer, act, s in caught] == [
        ("dense1", "tanh", (7, 5)),
        ("dense2", "tanh", (7, 3)),
    ]


def test_hidden_activation_values_equal_the_layer_outputs():
    model = build("4-5-3-2", act="sigmoid", seed=0)
    x = torch.randn(7, 4)
    caught = hidden_activations(model, x)
    torch.testing.assert_close(caught[0][2], model.hidden(x, "dense1"))
    torch.testing.assert_close(caught[1][2], model.hidden(x, "dense2"))


def test_saturated_sigmoid_layer_is_found_and_a_healthy_one_is_not():
    torch.manual_seed(0)
    x = torch.randn(64, 20)
    model = build("20-30-2", act="sigmoid", seed=0)
    assert activation_findings(model, x) == []
    with torch.no_grad():
        model.layers[0].weight.mul_(100.0)  # |z| ~ 100: s is 0 or 1, s' ~ 0
    (finding,) = activation_findings(model, x, epoch=3)
    assert finding.kind == "saturated" and "dense1" in finding.message and "sigmoid" in finding.message
    s = model.hidden(x, "dense1")
    fraction = ((s <= 0.01) | (s >= 0.99)).float().mean().item()
    assert f"{fraction:.0%}" in finding.message and fraction > 0.9


def test_saturated_tanh_uses_its_own_bounds():
    x = torch.randn(64, 20)
    model = build("20-30-2", act="tanh", seed=0)
    with torch.no_grad():
        model.layers[0].weight.mul_(100.0)
    assert kinds(activation_findings(model, x)) == ["saturated"]


def test_dead_relus_are_counted_per_unit():
    x = torch.randn(64, 10)
    model = build("10-8-8-2", act="relu", seed=0)
    assert activation_findings(model, x) == []
    with torch.no_grad():
        model.layers[1].bias[:5] = -1e3  # five of dense2's eight units can never fire
    (finding,) = activation_findings(model, x)
    assert finding.kind == "dead_relu" and finding.message.startswith("5 of 8 ReLU units of dense2")


def test_dead_conv_channels_are_units():
    x = torch.randn(16, 1, 6, 6)
    model = build("1x6x6 c3x3x4 d2", act="relu", seed=0)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        conv.bias[:2] = -1e3
    (finding,) = activation_findings(model, x)
    assert finding.message.startswith("2 of 4 ReLU units of conv1")


def fake_trainer(model, x):
    """What the monitor reads of a trainer: the model and its task's probe (the first n training samples)."""
    return SimpleNamespace(model=model, task=SimpleNamespace(probe=lambda n: SimpleNamespace(x=x[:n], y=None)))


def test_monitor_warns_once_per_kind_and_keeps_every_finding():
    model = build("10-6-6-2", act="sigmoid", seed=0)
    monitor = GradientMonitor()
    trainer = fake_trainer(model, torch.randn(300, 10))
    record = {
        "epoch": 1,
        "train_loss": 1.0,
        "grad_norm/dense1": 1e-4,
        "grad_norm/dense2": 1e-3,
        "grad_norm/dense3": 0.1,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.on_fit_begin(trainer)
        assert monitor.probe.shape == (256, 10)  # the first 256 training inputs
        monitor.on_epoch_end(trainer, 1, record)
        monitor.on_epoch_end(trainer, 2, {**record, "epoch": 2})
    assert [w.category for w in caught] == [CapasWarning]
    assert "vanishing gradient" in str(caught[0].message) and "hint:" in str(caught[0].message)
    assert [f.epoch for f in monitor.findings] == [1, 2]


def test_monitor_checks_activations_before_training():
    model = build("10-6-2", act="tanh", seed=0)
    with torch.no_grad():
        model.layers[0].weight.mul_(100.0)
    monitor = GradientMonitor(probe=torch.randn(32, 10))
    with pytest.warns(CapasWarning, match="saturated"):
        monitor.on_fit_begin(fake_trainer(model, None))
    assert kinds(monitor.findings) == ["saturated"]


def test_loss_gradient_norms_match_the_delta_rule_by_hand():
    """2-layer sigmoid/softmax net, cross-entropy: delta2 = (s2 - t)/N, delta1 = (delta2 W2) * s1 (1 - s1)."""
    torch.manual_seed(0)
    model = build("3-4-2", act="sigmoid", seed=0).double()
    x, y = torch.randn(9, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1])
    w1, b1 = model.layers[0].weight.detach(), model.layers[0].bias.detach()
    w2, b2 = model.layers[1].weight.detach(), model.layers[1].bias.detach()
    s1 = torch.sigmoid(x @ w1.T + b1)  # (9, 4)
    s2 = torch.softmax(s1 @ w2.T + b2, dim=1)  # (9, 2)
    delta2 = (s2 - torch.nn.functional.one_hot(y, 2)) / len(x)  # (9, 2)
    delta1 = (delta2 @ w2) * s1 * (1 - s1)  # (9, 4)
    norms = loss_gradient_norms(model, x, y)
    assert list(norms) == ["dense1", "dense2"]
    assert norms["dense2"] == pytest.approx(((delta2.T @ s1).norm().item(), delta2.sum(0).norm().item()), rel=1e-12)
    assert norms["dense1"] == pytest.approx(((delta1.T @ x).norm().item(), delta1.sum(0).norm().item()), rel=1e-12)


def test_loss_gradient_norms_ignore_parameterless_layers_and_collect_conv_weights():
    model = build("1x6x6 c3x3x2 mp2 d3", seed=0)
    norms = loss_gradient_norms(model, torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 2, 0]))
    assert list(norms) == ["conv1", "dense1"] and all(w > 0 and b > 0 for w, b in norms.values())


def test_loss_gradient_norms_of_a_frozen_layer_are_measured_and_it_stays_frozen():
    """A frozen layer (frozen_layers) still has a gradient; the speed-of-learning probe must not crash on it."""
    from capas.models.freezing import freeze

    model = build("3-4-2", act="sigmoid", seed=0)
    x, y = torch.randn(9, 3), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1])
    expected = loss_gradient_norms(model, x, y)
    freeze(model, [0])
    measured = loss_gradient_norms(model, x, y)
    assert list(measured) == ["dense1", "dense2"]
    assert all(measured[name] == pytest.approx(expected[name], rel=1e-6) for name in expected)
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]


def test_late_saturation_of_a_trained_net_is_not_warned_but_dead_relus_are():
    saturated = build("10-6-2", act="tanh", seed=0)
    with torch.no_grad():
        saturated.layers[0].weight.mul_(100.0)
    monitor = GradientMonitor(probe=torch.randn(32, 10), early_epochs=4)
    monitor.on_epoch_end(fake_trainer(saturated, None), 8, {"epoch": 8})
    assert monitor.findings == []
    with pytest.warns(CapasWarning, match="saturated"):
        monitor.on_epoch_end(fake_trainer(saturated, None), 4, {"epoch": 4})
    assert kinds(monitor.findings) == ["saturated"]
    dead = build("10-4-2", act="relu", seed=0)
    with torch.no_grad():
        dead.layers[0].bias.fill_(-1e3)
    with pytest.warns(CapasWarning, match="4 of 4 ReLU units of dense1"):
        monitor.on_epoch_end(fake_trainer(dead, None), 64, {"epoch": 64})


def test_speed_of_learning_records_the_data_loss_bias_gradient_each_epoch(tmp_path):
    from capas.api import fit
    from capas.data import load
    from capas.train import load_run

    data = load("xor", n=60)
    result = fit(
        build("2-4-3-2", act="sigmoid", seed=0),
        data,
        epochs=3,
        l2=0.5,
        out=tmp_path,
        quiet=True,
        callbacks=[SpeedOfLearning(probe_size=20)],
    )
    final = loss_gradient_norms(result.model, data.x_train[:20], data.y_train[:20])
    last = result.history[-1]
    assert [k for k in last if k.startswith("speed/")] == ["speed/dense1", "speed/dense2", "speed/dense3"]
    for layer, (_, bias_norm) in final.items():
        assert last[f"speed/{layer}"] == pytest.approx(bias_norm, rel=1e-6)
    assert load_run(tmp_path).history[0]["speed/dense1"] == result.history[0]["speed/dense1"]  # saved


def test_late_in_training_only_non_finite_and_huge_gradients_count():
    converged = {"dense1": 1e-9, "dense2": 1e-3}  # ratio and tiny norm: normal near a minimum
    assert gradient_findings(converged, early=False) == []
    assert kinds(gradient_findings({"dense1": math.inf, "dense2": 1.0}, early=False)) == ["exploding"]
    assert kinds(gradient_findings({"dense1": 5e3, "dense2": 1.0}, early=False)) == ["huge"]
    monitor = GradientMonitor(early_epochs=3)
    monitor.on_epoch_end(fake_trainer(build("2-2", seed=0), None), 5, {"grad_norm/dense1": 1e-9, "grad_norm/d2": 1.0})
    assert monitor.findings == []


def test_monitor_probes_a_loader_batch_in_the_models_dtype():
    from torch.utils.data import DataLoader, TensorDataset

    from capas import build, fit

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 2, (40,), generator=g)  # float32 batches
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    model = build("4-3-2", act="sigmoid", seed=0).double()
    result = fit(model, loader, epochs=1, quiet=True)  # the GradientMonitor is on by default
    assert result.history[0]["train_loss"] > 0


def test_monitor_work_over_a_fit_is_a_few_chunked_probes_and_no_hook_stays():
    """Issue 10, finding 8: the default diagnostics must cost little. Over an 8-epoch fit the
    monitor makes 5 activation checks (before training, after epochs 1, 2, 4, 8), each one
    no-grad pass over the 256-sample probe in forwards of at most PROBE_CHUNK samples; no
    hook is installed during any training step and none is left after the fit."""
    from capas import fit
    from capas.diagnostics.gradients import PROBE_CHUNK
    from capas.layers.activations import Activation

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(320, 1, 8, 8, generator=g), torch.randint(0, 3, (320,), generator=g)
    model = build("1x8x8 c3x3x4 mp2 d8 d3", act="relu", seed=0)
    activations = [m for m in model.modules() if isinstance(m, Activation)]
    calls = []  # (grad enabled, training mode, batch size, Activation hooks installed) of every forward

    def spy(module, args):
        hooks = sum(len(m._forward_hooks) for m in activations)
        calls.append((torch.is_grad_enabled(), module.training, len(args[0]), hooks))

    spy_handle = model.layers[0].register_forward_pre_hook(spy)
    fit(model, (x, y), epochs=8, batch_size=32, quiet=True)
    spy_handle.remove()
    steps = [c for c in calls if c[0]]
    probes = [c for c in calls if c[3]]
    assert steps and all(hooks == 0 for *_, hooks in steps)  # no hook during any training step
    assert all(not grad and not training for grad, training, _, _ in probes)
    assert max(size for _, _, size, _ in probes) == PROBE_CHUNK < 256
    assert sum(size for _, _, size, _ in probes) == 5 * 256  # 5 checks of the 256-sample probe
    assert all(not m._forward_hooks for m in model.modules())  # nothing left behind


def test_activation_checks_with_nothing_to_check_run_no_forward_pass():
    """Past ``early_epochs`` a sigmoid net's saturation is not checked, so its probe is not run at all."""
    model = build("10-6-6-2", act="sigmoid", seed=0)
    forwards = []
    model.layers[0].register_forward_pre_hook(lambda module, args: forwards.append(len(args[0])))
    monitor = GradientMonitor(probe=torch.randn(256, 10), early_epochs=2)
    monitor.on_epoch_end(fake_trainer(model, None), 2, {"epoch": 2})
    assert forwards == [64, 64, 64, 64]  # early: the probe in four chunks
    forwards.clear()
    monitor.on_epoch_end(fake_trainer(model, None), 4, {"epoch": 4})
    assert forwards == [] and monitor.findings == []


def test_chunked_probe_findings_equal_those_of_one_pass():
    """Counting per chunk gives the same saturated fraction and dead units as the whole probe at once."""
    x = torch.randn(200, 10, generator=torch.Generator().manual_seed(1))
    model = build("10-8-8-2", act="relu", seed=0)
    with torch.no_grad():
        model.layers[1].bias[:3] = -1e3
    whole = activation_findings(model, x, chunk=200)
    assert [str(f) for f in activation_findings(model, x, chunk=7)] == [str(f) for f in whole]
    assert whole[0].message == "3 of 8 ReLU units of dense2 are never active on a probe batch of 200"
    tanh = build("10-30-2", act="tanh", seed=0)
    with torch.no_grad():
        tanh.layers[0].weight.mul_(3.0)
    s = tanh.hidden(x, "dense1")
    fraction = ((s <= -0.98) | (s >= 0.98)).float().mean().item()
    (finding,) = activation_findings(tanh, x, Thresholds(saturated_fraction=0.05), chunk=64)
    assert finding.message.startswith(f"{fraction:.0%} of dense1's tanh outputs") and fraction > 0.05
