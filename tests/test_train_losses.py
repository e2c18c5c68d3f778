"""Losses, metrics and optimizer/schedule registries pinned to hand-worked and torch values."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from capas.api.fit import fit
from capas.errors import TrainingError
from capas.objectives.losses import Loss, mse_half_sum
from capas.train.metrics import classification_metrics, confusion_matrix, regression_metrics
from capas.train.optim import OPTIMIZERS, make_optimizer, make_schedule


def test_mse_half_sum_is_the_slides_q_S_by_hand():
    output = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    # q_1 = 1/2 (1 + 0) = 0.5, q_2 = 1/2 (4 + 9) = 6.5, q_S = (0.5 + 6.5) / 2 = 3.5
    assert mse_half_sum(output, target).item() == pytest.approx(3.5)
    assert Loss("mse")(output, target).item() == pytest.approx(F.mse_loss(output, target).item())


def test_mae_and_huber_match_torch():
    torch.manual_seed(2)
    out, target = torch.randn(4, 3) * 2, torch.randn(4, 3)
    assert Loss("mae")(out, target).item() == pytest.approx(F.l1_loss(out, target).item())
    assert Loss("huber")(out, target).item() == pytest.approx(F.huber_loss(out, target).item())


def test_class_targets_are_one_hot_or_the_slides_codes():
    y = torch.tensor([0, 2])
    out = torch.zeros(2, 3)
    assert torch.equal(Loss("mse", num_classes=3).targets(out, y), torch.tensor([[1.0, 0, 0], [0, 0, 1]]))
    tanh = Loss("mse_half_sum", num_classes=3, target_encoding="tanh").targets(out, y)
    assert torch.equal(tanh, torch.tensor([[0.9, -0.9, -0.9], [-0.9, -0.9, 0.9]]))
    # 1/2 sum of squares against the codes: sample 1: 0.81 + 2*0.81 -> 1.215
    assert Loss("sse", num_classes=3, target_encoding="tanh")(out, y).item() == pytest.approx(1.215)


def test_cross_entropy_from_logits_and_class_weights_match_torch():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 3, 3, 2, 1])
    by_hand = -torch.log_softmax(logits, dim=1)[torch.arange(6), y].mean()
    assert Loss("cross_entropy", num_classes=4)(logits, y).item() == pytest.approx(by_hand.item(), abs=1e-12)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    reference = nn.CrossEntropyLoss(weight=w)(logits, y)
    assert Loss("ce", num_classes=4, class_weights=w)(logits, y).item() == pytest.approx(reference.item(), abs=1e-12)
    # the same weighting rule for the squared error: sum_n w_yn q_n / sum_n w_yn
    out = torch.softmax(logits, dim=1)
    q = 0.5 * (out - F.one_hot(y, 4)).pow(2).sum(dim=1)
    expected = (q * w[y]).sum() / w[y].sum()
    got = Loss("mse_half_sum", num_classes=4, class_weights=w)(out, y)
    assert got.item() == pytest.approx(expected.item(), abs=1e-12)


def test_binary_cross_entropy_from_logits_matches_torch_on_probabilities():
    torch.manual_seed(1)
    logits = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 1, 0])
    reference = F.binary_cross_entropy(torch.sigmoid(logits), F.one_hot(y, 3).double())
    assert Loss("bce", num_classes=3)(logits, y).item() == pytest.approx(reference.item(), abs=1e-12)
    single = Loss("binary_cross_entropy", num_classes=2)
    z = torch.tensor([[0.3], [-1.2]], dtype=torch.float64)
    expected = F.binary_cross_entropy_with_logits(z[:, 0], torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert single(z, torch.tensor([1, 0])).item() == pytest.approx(expected.item())
    assert single.predictions(z).tolist() == [1, 0]


def test_unknown_loss_lists_the_valid_names():
    with pytest.raises(TrainingError, match="valid losses: mse_half_sum, mse, mae, huber, cross_entropy"):
        Loss("hinge")


def test_metrics_by_hand():
    y_true, y_pred = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2, 0])
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    m = classification_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["precision"] == pytest.approx([0.5, 0.5, 1.0])
    assert m["per_class"]["recall"] == pytest.approx([0.5, 1.0, 2 / 3])
    r = regression_metrics(torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [4.0]]))
    assert (r["mse"], r["rmse"], r["mae"]) == pytest.approx((2.5, math.sqrt(2.5), 1.5))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_name_builds_its_torch_class(name):
    p = [nn.Parameter(torch.zeros(2))]
    opt = make_optimizer(name, p, lr=0.01)
    assert isinstance(opt, OPTIMIZERS[name].cls) and opt.param_groups[0]["lr"] == 0.01
    if name == "nesterov":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9


def test_optimizer_errors_are_clear():
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(TrainingError, match="unknown optimizer 'adamm'; did you mean 'adam'.*valid names: sgd"):
        make_optimizer("adamm", p, 0.1)
    with pytest.raises(TrainingError, match="bad options for optimizer 'adam'"):
        make_optimizer("adam", p, 0.1, betaz=(0.9, 0.99))
    with pytest.raises(TrainingError, match="no momentum option"):
        make_optimizer("adam", p, 0.1, momentum=0.5)
    with pytest.raises(TrainingError, match="unknown LR schedule 'cosin'"):
        make_schedule("cosin", make_optimizer("sgd", p, 0.1), 0.1, 5, 3)


def _lrs_from_torch(make, epochs, steps, per_batch):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        for _ in range(steps):
            opt.step()
            if per_batch:
                sched.step()
        if not per_batch:
            sched.step()
    return lrs


@pytest.mark.parametrize(
    "name, options, make, per_batch",
    [
        ("step", {"step_size": 2, "gamma": 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5), False),
        ("exponential", {"gamma": 0.8}, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8), False),
        ("cosine", {}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 5), False),
        ("warmup", {"total_iters": 3}, lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, total_iters=3), False),
        (
            "triangular2",
            {"step_size_up": 3},
            lambda o: torch.optim.lr_scheduler.CyclicLR(
                o, 0.01, 0.1, step_size_up=3, mode="triangular2", cycle_momentum=False
            ),
            True,
        ),
        ("one_cycle", {}, lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=10), True),
    ],
)
def test_schedule_lrs_in_the_history_equal_torchs(name, options, make, per_batch):
    x, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    model = nn.Linear(3, 2)
    result = fit(
        model,
        (x, y),
        optimizer="sgd",
        lr=0.1,
        epochs=5,
        batch_size=4,
        scheduler=name,
        scheduler_options=options,
        quiet=True,
        device="cpu",
        engine="autograd",
    )
    expected = _lrs_from_torch(make, epochs=5, steps=2, per_batch=per_batch)
    assert result.history.column("lr") == pytest.approx(expected, rel=1e-12)
