"""BoundarySnapshots and the decision-boundary GIF, driven by a stand-in trainer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from capas.diagnostics import snapshots
from capas.diagnostics.plots_model import predict_grid
from capas.errors import RunDirError
from capas.models import build


def test_snapshots_record_predictions_per_epoch_and_write_a_gif(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(40, 2)  # (N, 2)
    y = (x[:, 0] > 0).long()
    model = build("2-4-2", act="tanh", seed=0)
    trainer = SimpleNamespace(model=model, run_dir=tmp_path)
    callback = snapshots.BoundarySnapshots(x, resolution=12)
    expected = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.layers[0].weight.mul_(-1.5)  # a different boundary each "epoch"
        expected.append(predict_grid(model, callback.gx, callback.gy))
        callback.on_epoch_end(trainer, epoch, {})
    callback.on_fit_end(trainer)

    saved = snapshots.load_snapshots(tmp_path / snapshots.SNAPSHOT_FILE)
    assert saved["classes"].shape == (3, 12, 12) and saved["epochs"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(saved["classes"], np.stack(expected))
    np.testing.assert_allclose(saved["gx"], callback.gx, rtol=1e-6)

    shown = snapshots.animate_boundary(saved, x, y, 2, tmp_path / "boundary.gif")
    assert shown == [1, 2, 3]
    with Image.open(tmp_path / "boundary.gif") as gif:
        assert gif.n_frames == 3 and gif.size[0] > 100


def test_long_runs_are_subsampled_evenly(tmp_path):
    grid = np.zeros((200, 4, 4), dtype=np.int64)
    saved = {"gx": np.linspace(-1, 1, 4), "gy": np.linspace(-1, 1, 4), "epochs": np.arange(1, 201), "classes": grid}
    x, y = torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)
    shown = snapshots.animate_boundary(saved, x, y, 2, tmp_path / "b.gif", max_frames=5)
    assert shown == [1, 51, 101, 150, 200]


def test_missing_snapshots_say_how_to_record_them(tmp_path):
    with pytest.raises(RunDirError, match="BoundarySnapshots"):
        snapshots.load_snapshots(tmp_path / snapshots.SNAPSHOT_FILE)
