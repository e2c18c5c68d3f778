"""A DataLoader of right-padded sequences: ``(x, y, mask)`` items reach the model's mask."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import capas
from capas.data.adapters import loader_batch
from capas.errors import TrainingError


def padded_signs(n: int = 768, steps: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (N, T, 1) of lengths 2..T padded with noise (not zeros: the padding cannot be told
    from the data), y the sign of each sequence's last real step, mask (N, T)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, 1, generator=g)
    lengths = torch.randint(2, steps + 1, (n,), generator=g)
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    y = (x[torch.arange(n), lengths - 1, 0] > 0).long()
    return x, y, mask


def final_accuracy(loader: DataLoader) -> float:
    result = capas.fit("Tx1 gru16 last d2", loader, epochs=12, lr=0.01, seed=1, quiet=True, warn_gradients=False)
    return result.history[-1]["train_accuracy"]


def test_a_loaders_masks_pick_each_sequences_last_real_step():
    x, y, mask = padded_signs()
    with_mask = DataLoader(TensorDataset(x, y, mask), batch_size=32, shuffle=True, generator=torch.Generator())
    without = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator())
    assert final_accuracy(with_mask) >= 0.95
    assert final_accuracy(without) < 0.8  # `last` then reads the noise after most sequences' end


def test_loader_items_are_read_whole_or_refused_in_one_line():
    x, y, mask = padded_signs(n=4)
    batch = loader_batch({"x": x, "y": y, "mask": mask.int()})
    assert batch.x is x and batch.y is y and batch.mask.dtype == torch.bool and torch.equal(batch.mask, mask)
    assert loader_batch([x]).targets == () and loader_batch(x).mask is None
    with pytest.raises(TrainingError, match=r"\(x, y, mask\).*this one holds 4 tensors"):
        loader_batch((x, y, mask, y))
    with pytest.raises(TrainingError, match=r"mask must be \(B, T\) = \(4, 8\).*got \(4, 7\)"):
        loader_batch((x, y, mask[:, :7]))
    with pytest.raises(TrainingError, match=r"keys \['inputs', 'y'\]"):
        loader_batch({"inputs": x, "y": y})


def test_a_validation_loader_gives_val_history_and_early_stopping():
    from capas.data.batch import Batch
    from capas.models.modes import eval_mode

    x, y, mask = padded_signs()
    xv, yv, mv = padded_signs(n=100, seed=9)
    train = DataLoader(TensorDataset(x, y, mask), batch_size=32, shuffle=True, generator=torch.Generator())
    val = DataLoader(TensorDataset(xv, yv, mv), batch_size=30)  # uneven last batch: means are weighted

    class WholeValidation(capas.Callback):
        """The validation metrics of the whole set in one batch, next to the loader's."""

        def __init__(self):
            self.pairs = []

        def on_epoch_end(self, trainer, epoch, record):
            with torch.no_grad(), eval_mode(trainer.task.model):
                whole = trainer.task.eval_step(Batch((xv,), (yv,), mv))
            self.pairs.append(
                ((record["val_loss"], record["val_accuracy"]), (float(whole["loss"]), float(whole["accuracy"])))
            )

    check = WholeValidation()
    result = capas.fit("Tx1 gru16 last d2", (train, val), epochs=12, lr=0.01, seed=1, quiet=True, callbacks=[check])
    for ours, whole in check.pairs:
        assert ours == pytest.approx(whole, abs=1e-5)
    assert result.history[-1]["val_accuracy"] >= 0.9
    stopped = capas.fit("Tx1 gru16 last d2", (train, val), epochs=50, lr=0.5, patience=2, seed=1, quiet=True)
    assert len(stopped.history) < 50 and "val_loss" in stopped.stop_reason
    with pytest.raises(TrainingError, match=r"\(train_loader, val_loader\); got DataLoader, Tensor"):
        capas.fit("Tx1 gru16 last d2", (train, xv), epochs=1, quiet=True)
