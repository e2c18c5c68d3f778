"""Class weights, resampling of the training split only, and curriculum pacing."""

import math

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from capas.data import Dataset
from capas.errors import TrainingError
from capas.tasks import SupervisedTask
from capas.train import Callback, TrainConfig, Trainer
from capas.train.curriculum import Curriculum, pacing_fraction
from capas.train.imbalance import class_weights, resample


def _imbalanced(n_major=40, n_minor=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randn(n_major, 3, generator=g), torch.randn(n_minor, 3, generator=g) + 2])
    y = torch.cat([torch.zeros(n_major, dtype=torch.long), torch.ones(n_minor, dtype=torch.long)])
    return x, y


def _dataset():
    x, y = _imbalanced()
    xv, yv = _imbalanced(10, 2, seed=1)
    xt, yt = _imbalanced(10, 3, seed=2)
    return Dataset("toy", x, y, xv, yv, xt, yt, (3,), 2, ["a", "b"], "classification")


def test_balanced_class_weights_match_scikit_learn():
    _, y = _imbalanced()
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=y.numpy())
    assert class_weights("balanced", y, 2).tolist() == pytest.approx(expected.tolist())
    with pytest.raises(TrainingError, match="needs 2 non-negative numbers"):
        class_weights([1.0], y, 2)


@pytest.mark.parametrize("method, counts", [("over", [40, 40]), ("under", [8, 8]), ("smote", [40, 40])])
def test_resampling_balances_the_classes(method, counts):
    x, y = _imbalanced()
    new_x, new_y = resample(x, y, method, seed=0)
    assert torch.bincount(new_y).tolist() == counts and new_x.shape == (sum(counts), 3)
    again = resample(x, y, method, seed=0)
    assert torch.equal(again[0], new_x)  # seeded


def test_smote_touches_only_the_training_split():
    data = _dataset()
    val_before, test_before = data.x_val.clone(), data.x_test.clone()
    config = TrainConfig(resample="smote", epochs=1, batch_size=8, engine="autograd", device="cpu")
    trainer = Trainer(SupervisedTask(nn.Linear(3, 2)), config, quiet=True).fit(data)
    assert torch.bincount(trainer.task.y_train).tolist() == [40, 40]
    synthetic = trainer.task.x_train[48:]  # SMOTE appends new minority samples between minority neighbours
    assert synthetic[:, 0].mean() > 1  # near the minority cluster at +2
    assert torch.equal(trainer.task.x_val, val_before) and torch.equal(data.x_test, test_before)
    assert trainer.test_metrics["per_class"]["support"] == [10, 3]


def test_pacing_functions():
    assert [pacing_fraction(e, "linear", 0.2, 4) for e in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1, 1])
    assert pacing_fraction(2, "root", 0.2, 4) == pytest.approx(math.sqrt(0.04 + 0.96 * 0.5))
    assert [pacing_fraction(e, "step", 0.3, 2) for e in range(3)] == [0.3, 0.3, 1.0]


def test_curriculum_uses_the_easiest_samples_first():
    scores = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0, 0.0, 9.0, 8.0, 7.0, 6.0])
    curriculum = Curriculum(scores, "linear", start=0.3, ramp=2)
    assert sorted(curriculum.available(0).tolist()) == [1, 3, 5]
    assert len(curriculum.available(1)) == math.ceil(0.65 * 10) and len(curriculum.available(2)) == 10

    class Seen(Callback):
        def __init__(self):
            self.rows = []

        def on_epoch_begin(self, trainer, epoch):
            self.rows.append(set())

    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    y = torch.zeros(10, dtype=torch.long)
    seen = Seen()
    model = nn.Linear(1, 2)

    def record(module, args):  # forwards before the first epoch (the trainer's shape check) are not training
        if seen.rows:
            seen.rows[-1].update(args[0][:, 0].long().tolist())

    model.register_forward_pre_hook(record)
    config = TrainConfig(
        curriculum="scores",
        curriculum_start=0.3,
        curriculum_epochs=2,
        epochs=3,
        batch_size=2,
        engine="autograd",
        device="cpu",
        grad_norms=False,
    )
    Trainer(SupervisedTask(model, curriculum_scores=scores), config, quiet=True, callbacks=[seen]).fit((x, y))
    assert seen.rows[0] == {1, 3, 5} and len(seen.rows[1]) == 7 and len(seen.rows[2]) == 10


def test_curriculum_by_loss_ranks_samples_by_the_initial_models_loss():
    x, y = _imbalanced()
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    with torch.no_grad():
        expected = torch.argsort(nn.functional.cross_entropy(model(x), y, reduction="none"), stable=True)
    config = TrainConfig(curriculum="loss", epochs=2, batch_size=8, engine="autograd", device="cpu")
    trainer = Trainer(SupervisedTask(model), config, quiet=True).fit((x, y))
    assert torch.equal(trainer.task.curriculum.order, expected)


def test_curriculum_by_a_reference_models_loss():
    x, y = _imbalanced()
    torch.manual_seed(1)
    reference = nn.Linear(3, 2)
    with torch.no_grad():
        expected = torch.argsort(nn.functional.cross_entropy(reference(x), y, reduction="none"), stable=True)
    config = TrainConfig(curriculum="loss", epochs=1, batch_size=8, engine="autograd", device="cpu")
    trainer = Trainer(SupervisedTask(nn.Linear(3, 2), curriculum_reference=reference), config, quiet=True).fit((x, y))
    assert torch.equal(trainer.task.curriculum.order, expected)


@pytest.mark.parametrize("method", ["over", "smote"])
def test_resampling_keeps_image_shapes_and_float64_values(method):
    # (N, 1, 2, 2) float64 images: resampled as flat vectors, returned as images, the
    # original samples unchanged to the last bit (no float32 round trip)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 1, 2, 2, dtype=torch.float64, generator=g)
    y = (torch.arange(30) < 6).long()
    new_x, new_y = resample(x, y, method, seed=0)
    assert new_x.shape == (48, 1, 2, 2) and new_x.dtype == torch.float64
    originals = {tuple(row.flatten().tolist()) for row in x}
    kept = sum(tuple(row.flatten().tolist()) in originals for row in new_x)
    assert kept == (48 if method == "over" else 30)


def test_one_cycle_spans_the_fewer_steps_of_a_curriculum():
    # 48 samples, batches of 4, start 0.25 over a 2-epoch ramp: 3 + 8 + 12 + 12 = 35 steps, not 48;
    # one_cycle must be sized to end its annealing on the last of them
    x, y = _imbalanced()
    config = TrainConfig(
        curriculum="loss",
        curriculum_epochs=2,
        epochs=4,
        batch_size=4,
        scheduler="one_cycle",
        lr=0.1,
        engine="autograd",
        device="cpu",
        grad_norms=False,
    )
    trainer = Trainer(SupervisedTask(nn.Linear(3, 2)), config, quiet=True).fit((x, y))
    assert trainer.task.schedule.scheduler.total_steps == 35 == trainer.task.schedule.scheduler.last_epoch
