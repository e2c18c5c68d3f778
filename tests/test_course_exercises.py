"""Course exercises (issue 19): partial weight sharing and its count, classic dropout,
activity sparsity with % active units, and the per-layer gradient bounds of file 000."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import capas
from capas.diagnostics.gradient_bounds import analytic_bounds, dense_parameter_count, gradient_bounds
from capas.errors import SpecError, TrainingError
from capas.layers import Dropout, SharedDense
from capas.models import build
from capas.models.autoencoder import Autoencoder
from capas.models.spec_input import spec_text
from capas.notation import parse
from capas.train.activity import ACTIVE_THRESHOLD, ActivitySparsity, penalty_gradient, penalty_value

EXERCISE = [1000, 300, 100, 50, 20, 5, 1]
HALF_SHARED = "1000-d300:share150-d100:share50-d50:share25-d20:share10-d5:share2-1"


# ---- partial weight sharing (file 000) ---------------------------------------------------


def test_the_exercise_net_counts_by_hand():
    # (n_in + 1) * units per layer: 1001*300 + 301*100 + 101*50 + 51*20 + 21*5 + 6*1
    assert dense_parameter_count(EXERCISE) == 300_300 + 30_100 + 5_050 + 1_020 + 105 + 6 == 336_581
    with torch.device("meta"):
        assert sum(p.numel() for p in build("-".join(map(str, EXERCISE))).parameters()) == 336_581


def test_half_the_units_sharing_weights_counts_by_hand():
    # a layer keeps (units - shared + 1) weight vectors of n_in + 1: 151*1001 + 51*301 + 26*101 + 11*51 + 4*21 + 1*6
    expected = 151_151 + 15_351 + 2_626 + 561 + 84 + 6
    assert expected == 169_779
    assert dense_parameter_count(EXERCISE, [150, 50, 25, 10, 2, 0]) == expected
    summary = capas.summarize(HALF_SHARED, act="tanh")
    assert summary.total_params == expected
    rows = {row.name: row for row in summary.layers}
    assert rows["dense1"].params == 151_151 and rows["dense1"].shared and rows["dense1"].kind == "SharedDense"
    assert not rows["dense6"].shared
    assert rows["dense1"].connections == 300 * 1001  # every unit is still wired to every input
    assert "(shared)" in str(summary)


def test_shared_units_compute_the_same_output_as_the_full_weight_matrix():
    torch.manual_seed(0)
    layer = SharedDense(6, 5, 3, "tanh").double()
    x = torch.randn(4, 6, dtype=torch.float64)
    weight, bias = layer.full_weight()  # (5, 6), (5,)
    assert torch.equal(weight[0], weight[2]) and not torch.equal(weight[2], weight[3])
    out = layer(x)
    assert torch.allclose(out, torch.tanh(F.linear(x, weight, bias)))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])  # the teaching point
    out.sum().backward()
    ref = SharedDense(6, 5, 3, "tanh").double()
    ref.load_state_dict(layer.state_dict())
    w = ref.shared_weight.detach().expand(3, -1).clone().requires_grad_()  # the three tied rows, separately
    full = torch.cat([w, ref.weight.detach()])
    torch.tanh(F.linear(x, full, torch.cat([ref.shared_bias.detach().expand(3), ref.bias.detach()]))).sum().backward()
    assert torch.allclose(layer.shared_weight.grad[0], w.grad.sum(0))  # a shared weight's gradient sums its uses


def test_share_option_round_trips_and_is_checked():
    spec = parse("784-d300:share150:tanh-10")
    assert spec.layers[0].share == 150 and spec.layers[0].activation == "tanh"
    assert parse("784 " + spec.layers[0].token() + " 10") == spec
    assert spec_text(["784", {"type": "dense", "units": 300, "share": 150}, "d10"])[0] == "784 d300:share150 d10"
    with pytest.raises(SpecError, match="at least 2 units"):
        parse("784-d300:share1-10")
    with pytest.raises(SpecError, match="between 2 and 30"):
        build("4-d30:share40-2")
    with pytest.raises(SpecError, match="does not apply"):
        parse("1x8x8 c3x3x4:share2 2")


def test_shared_layers_train_under_autograd_and_the_explicit_engine_declines():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    result = capas.fit(build("4-d8:share4-2", act="tanh", seed=0), (x, y), epochs=1, quiet=True)
    assert result.engine == "autograd"
    with pytest.raises(TrainingError, match="not a plain MLP"):
        capas.fit(build("4-d8:share4-2", act="tanh"), (x, y), epochs=1, engine="backprop", quiet=True)


# ---- classic dropout (file 004) ------------------------------------------------------------


@pytest.mark.parametrize("classic", [False, True])
def test_expected_training_output_equals_the_test_output(classic):
    layer = Dropout(0.3, classic=classic)
    layer.generator = torch.Generator().manual_seed(1)
    x = torch.linspace(0.5, 2.0, 8, dtype=torch.float64).expand(40_000, 8)
    train_mean = layer.train()(x).mean(0)  # (8,)
    test = layer.eval()(x[:1])[0]
    # mean of 40,000 Bernoulli(0.7) draws times x (x 1/0.7 when inverted): standard error below 0.5%
    assert torch.allclose(train_mean, test, rtol=0.02)
    assert torch.allclose(test, x[0] * (0.7 if classic else 1.0))


def test_classic_test_pass_is_the_inverted_net_with_weights_times_keep_probability():
    classic = build("5-d6:tanh-drop0.4:classic-3", act="tanh", seed=0).double().eval()
    inverted = build("5-d6:tanh-drop0.4-3", act="tanh", seed=0).double().eval()
    inverted.load_state_dict(classic.state_dict())
    x = torch.randn(7, 5, dtype=torch.float64)
    with torch.no_grad():
        inverted.layers[2].weight.mul_(0.6)  # "los pesos se multiplican por p" (p = keep probability)
    assert torch.allclose(classic(x), inverted(x))
    assert classic.options["spec"] == "5 d6:tanh drop0.4:classic d3"
    assert spec_text(["5", {"type": "dropout", "p": 0.4, "classic": True}, "d3"])[0] == "5 drop0.4:classic d3"


def test_classic_dropout_is_declined_by_the_explicit_engine():
    x, y = torch.randn(32, 5), torch.arange(32) % 3
    result = capas.fit(build("5-8-drop0.5:classic-3", seed=0), (x, y), epochs=1, quiet=True)
    assert result.engine == "autograd"
    with pytest.raises(TrainingError, match="classic"):
        capas.fit(build("5-8-drop0.5:classic-3"), (x, y), epochs=1, engine="backprop", quiet=True)


# ---- activity sparsity (file 000) ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["l1", "kl"])
def test_penalty_gradient_is_the_derivative_of_the_penalty(kind):
    s = torch.rand(6, 5, dtype=torch.float64).mul(0.9).add(0.05).requires_grad_()
    (auto,) = torch.autograd.grad(penalty_value(s, kind, 0.3, 0.1), s)
    assert torch.allclose(penalty_gradient(s.detach(), kind, 0.3, 0.1), auto)
    if kind == "kl":  # KL(rho || rho_hat) by hand for the first unit
        rho, r = 0.1, float(s[:, 0].detach().mean())
        by_hand = rho * torch.log(torch.tensor(rho / r)) + (1 - rho) * torch.log(torch.tensor((1 - rho) / (1 - r)))
        assert float(penalty_value(s[:, :1].detach(), kind, 1.0, rho)) == pytest.approx(float(by_hand))


@pytest.mark.parametrize("kind", ["l1", "kl"])
def test_hooked_forward_backpropagates_loss_plus_penalty(kind):
    net = build("4-6-5-3", act="sigmoid", seed=0).double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.arange(8) % 3
    sparsity = ActivitySparsity(net, kind, 0.2, 0.05)
    F.cross_entropy(sparsity.wrap(net.training_module(True))(x), y).backward()
    hooked = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    h1 = net.layers[0](x)
    h2 = net.layers[1](h1)
    loss = F.cross_entropy(net.layers[2].pre_activation(h2), y)
    (loss + penalty_value(h1, kind, 0.2, 0.05) + penalty_value(h2, kind, 0.2, 0.05)).backward()
    assert all(torch.allclose(a, p.grad) for a, p in zip(hooked, net.parameters()))
    counts = sparsity.epoch_metrics()
    active1 = (h1.abs() > ACTIVE_THRESHOLD).sum().item()
    active2 = (h2.abs() > ACTIVE_THRESHOLD).sum().item()
    assert counts["active_units/dense1"] == pytest.approx(100 * active1 / 48)
    assert counts["active_units"] == pytest.approx(100 * (active1 + active2) / (48 + 40))
    assert not net.layers[0]._forward_hooks  # no hook outlives the call


def test_an_l1_activity_penalty_silences_hidden_units_in_training():
    torch.manual_seed(0)
    x = torch.randn(400, 10)
    y = (x[:, :3].sum(1) > 0).long()
    runs = {
        weight: capas.fit(
            build("10-32-2", act="relu", seed=0), (x, y), epochs=15, sparsity="l1", sparsity_weight=weight, quiet=True
        )
        for weight in (0.0, 0.1)
    }
    plain, sparse = (runs[w].history[-1]["active_units"] for w in (0.0, 0.1))
    assert runs[0.1].engine == "autograd"
    assert sparse < 0.5 * plain
    assert runs[0.1].history[-1]["train_accuracy"] > 0.85


def test_activity_options_are_checked():
    x, y = torch.randn(16, 4), torch.arange(16) % 2
    with pytest.raises(TrainingError, match="sigmoid"):
        capas.fit(build("4-5-2", act="relu"), (x, y), epochs=1, sparsity="kl", sparsity_weight=1.0, quiet=True)
    with pytest.raises(TrainingError, match="sparsity"):
        capas.fit(build("4-5-2"), (x, y), epochs=1, sparsity="l1", engine="backprop", quiet=True)
    with pytest.raises(TrainingError, match="sparsity_target"):
        capas.fit(build("4-5-2"), (x, y), epochs=1, sparsity="kl", sparsity_target=1.5, quiet=True)


# ---- gradient bounds (file 000) ------------------------------------------------------------


def test_bounds_of_a_two_layer_net_by_hand():
    net = build("2-2-1", act="tanh", output_act="tanh", loss="mse")
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[0.5, -1.0], [2.0, 0.25]]))
        net.layers[1].weight.copy_(torch.tensor([[1.5, -0.5]]))
    # output layer: 2 |y - c| |1 - y^2| |y_j| <= 2 * 2 * 1 * 1 = 4; hidden: 4 * max column sum of |W2| = 4 * 1.5
    assert analytic_bounds(net) == [6.0, 4.0]
    assert analytic_bounds(net, input_scale=3.0) == [18.0, 4.0]  # inputs up to 3 instead of 1


@pytest.mark.parametrize("seed", range(4))
def test_measured_gradients_stay_below_the_bounds_on_five_hidden_layers(seed):
    torch.manual_seed(seed)
    net = build("10-8-8-6-6-4-3", act="tanh", output_act="tanh", loss="mse", init="normal", seed=seed).double()
    x = torch.rand(32, 10, dtype=torch.float64) * 2 - 1
    c = torch.randint(0, 2, (32, 3)).double() * 2 - 1
    rows = gradient_bounds(net, x, c)
    assert [row.name for row in rows] == [f"dense{i}" for i in range(1, 7)]
    assert all(0 < row.measured <= row.bound for row in rows)
    products = [4.0]
    for row in reversed(rows[1:]):
        products.append(products[-1] * row.column_norm)
    assert [row.bound for row in rows] == pytest.approx(products[::-1])


def test_gradient_bounds_refuse_other_nets_and_targets():
    with pytest.raises(SpecError, match="tanh"):
        gradient_bounds(build("2-3-1", act="relu"), torch.zeros(1, 2), torch.zeros(1, 1))
    with pytest.raises(SpecError, match=r"\[-1, 1\]"):
        net = build("2-3-1", act="tanh", output_act="tanh", loss="mse")
        gradient_bounds(net, torch.zeros(1, 2), torch.full((1, 1), 2.0))


# ---- a lower limit on the step (file 000: "limitar la magnitud máxima y mínima") ------------


def test_rprop_step_limits_move_a_weight_whose_gradient_is_tiny():
    """The documented route to a lower limit (docs/course-exercises.md): Rprop's steps depend
    on the gradient's sign only, growing by 1.2 while the sign holds, within step_sizes."""
    x, y = torch.full((8, 1), 1e-9), torch.ones(8, 1)  # dE/dw ~ -2e-9: a vanished gradient
    moves = {}
    for optimizer, options in (("rprop", {"step_sizes": [0.01, 0.05]}), ("sgd", {})):
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 1, bias=False)
        start = model.weight.item()
        capas.fit(
            model,
            (x, y),
            optimizer=optimizer,
            lr=0.01,
            optimizer_options=options,
            batch_size="full",
            epochs=5,
            loss="mse",
            warn_gradients=False,
            quiet=True,
        )
        moves[optimizer] = model.weight.item() - start
    assert moves["rprop"] == pytest.approx(0.01 * (1 + 1.2 + 1.2**2 + 1.2**3 + 1.2**4), rel=1e-5)  # 0.074416
    assert abs(moves["sgd"]) < 1e-9  # rho * 2e-9 per step: no learning


def test_unsupervised_tasks_refuse_the_activity_options():
    x = torch.rand(16, 6)
    with pytest.raises(TrainingError, match="sparsity do"):
        capas.fit(Autoencoder.from_spec("6-3"), x, epochs=1, sparsity="l1", quiet=True)
    with pytest.raises(TrainingError, match="sparsity_weight needs sparsity"):
        capas.fit(build("6-4-2"), (x, torch.arange(16) % 2), epochs=1, sparsity_weight=0.1, quiet=True)
