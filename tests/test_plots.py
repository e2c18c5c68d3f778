"""Plot functions on small models and synthetic histories: the numbers they plot, and real PNGs."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from capas.diagnostics import plots_model, plots_training, projection
from capas.errors import CapasError
from capas.models import build


def assert_png(path) -> None:
    """The file is a real picture: a reasonable size and more than one colour."""
    image = mpimg.imread(path)  # (H, W, 4) floats
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10


def synthetic_history(epochs: int = 12) -> list[dict]:
    """Losses with a validation minimum at epoch 5 and gradient norms decaying per layer."""
    rows = []
    for e in range(1, epochs + 1):
        rows.append(
            {
                "epoch": e,
                "train_loss": 2.0 / e,
                "val_loss": (e - 5) ** 2 / 10 + 0.3,
                "train_accuracy": 1 - 1 / (e + 1),
                "val_accuracy": 0.8,
                "lr": 0.1 * 0.9**e,
                "seconds": 0.01,
                "grad_norm/dense1": 1e-3 / e,
                "grad_norm/dense2": 2e-2 / e,
                "grad_norm/dense3": 0.3 / e,
            }
        )
    return rows


def test_curves_series_and_best_epoch(tmp_path):
    history = synthetic_history()
    series = plots_training.plot_curves(history, tmp_path / "curves.png")
    assert float(series["best_epoch"]) == 5.0  # argmin of (e-5)^2
    np.testing.assert_allclose(series["lr"], [0.1 * 0.9**e for e in range(1, 13)])
    np.testing.assert_allclose(series["train_loss"], [2.0 / e for e in range(1, 13)])
    assert "seconds" not in series and not any(k.startswith("grad_norm") for k in series)
    assert_png(tmp_path / "curves.png")


def test_curves_best_epoch_falls_back_to_train_loss_without_validation(tmp_path):
    history = [{"epoch": e, "train_loss": [3, 1, 2][e - 1], "val_loss": None} for e in (1, 2, 3)]
    series = plots_training.curve_series(history)
    assert float(series["best_epoch"]) == 2.0 and "val_loss" not in series


def test_gradient_norm_series_one_line_per_layer_in_order(tmp_path):
    history = synthetic_history()
    panels = plots_training.plot_gradient_norms(history, tmp_path / "gradients.png")
    assert panels["speed"] == {}
    series = panels["grad_norm"]
    assert list(series) == ["dense1", "dense2", "dense3"]
    np.testing.assert_allclose(series["dense2"], [2e-2 / e for e in range(1, 13)])
    assert_png(tmp_path / "gradients.png")


@pytest.fixture
def spiral_like():
    torch.manual_seed(0)
    x = torch.randn(60, 2)  # (N, 2)
    y = (x[:, 0] * x[:, 1] > 0).long()  # XOR-like labels
    return x, y


def test_boundary_grid_equals_predict_on_grid_points(tmp_path, spiral_like):
    x, y = spiral_like
    model = build("2-8-2", act="tanh", seed=1)
    gx, gy, grid = plots_model.plot_boundary(model, x, y, 2, tmp_path / "boundary.png", resolution=40)
    assert grid.shape == (40, 40)
    assert gx[0] < x[:, 0].min() and gx[-1] > x[:, 0].max() and gy[0] < x[:, 1].min()
    rows, cols = np.meshgrid(np.arange(0, 40, 7), np.arange(0, 40, 5), indexing="ij")
    points = torch.tensor(np.stack([gx[cols.ravel()], gy[rows.ravel()]], axis=1), dtype=torch.float32)
    np.testing.assert_array_equal(grid[rows.ravel(), cols.ravel()], model.predict(points).numpy())
    assert len(np.unique(grid)) == 2  # both classes appear for this seed
    assert_png(tmp_path / "boundary.png")


def test_boundary_refuses_inputs_that_are_not_2d():
    with pytest.raises(CapasError, match="2-D inputs"):
        plots_model.boundary_axes(torch.zeros(5, 3))


def test_confusion_matrix_matches_hand_count(tmp_path):
    torch.manual_seed(2)
    model = build("1x4x4-6-3", act="relu", seed=3)
    x, y = torch.rand(90, 1, 4, 4), torch.randint(0, 3, (90,))
    matrix = plots_model.confusion(model, x, y, 3)
    expected = np.zeros((3, 3), dtype=int)
    np.add.at(expected, (y.numpy(), model.predict(x).numpy()), 1)
    np.testing.assert_array_equal(matrix, expected)
    assert plots_model.plot_confusion(matrix, ["a", "b", "c"], tmp_path / "c.png") is matrix
    assert_png(tmp_path / "c.png")


def test_hidden_two_units_are_plotted_directly(tmp_path):
    model = build("1x8x8-16-2-10", act="tanh", seed=0)
    x = torch.rand(30, 1, 8, 8)
    points, how = projection.hidden_projection(model, x)  # default: last hidden layer, 2 units
    assert how == "units" and points.shape == (30, 2)
    np.testing.assert_allclose(points, model.hidden(x, "dense2").double().numpy(), rtol=1e-6)
    projection.plot_hidden(points, torch.arange(30) % 10, [str(i) for i in range(10)], tmp_path / "h.png", "t")
    assert_png(tmp_path / "h.png")


def test_hidden_wide_layer_is_projected_on_its_principal_plane():
    model = build("1x8x8-16-2-10", act="tanh", seed=0)
    x = torch.rand(40, 1, 8, 8)
    points, how = projection.hidden_projection(model, x, "dense1")
    assert how.startswith("pca") and points.shape == (40, 2)
    h = model.hidden(x, "dense1").double().numpy()  # (40, 16)
    centred = h - h.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reference = centred @ vt[:2].T  # (40, 2), principal components up to sign
    np.testing.assert_allclose(np.abs(points), np.abs(reference), atol=1e-6)


def test_hidden_plot_axes_say_what_they_are():
    assert projection.axis_labels("dense1", "pca (58% + 28% of variance)", 16) == (
        "principal component 1",
        "principal component 2",
    )
    assert projection.axis_labels("dense2", "units", 2) == ("dense2 unit 1", "dense2 unit 2")
    assert projection.axis_labels("dense2", "units", 1) == ("dense2 unit 1", "(one unit)")


def test_hidden_unknown_layer_names_the_layers():
    model = build("2-4-2", seed=0)
    with pytest.raises(CapasError, match="dense1, dense2"):
        projection.hidden_projection(model, torch.zeros(3, 2), "dense9")


def test_mlp_receptive_fields_are_weight_rows_reshaped(tmp_path):
    model = build("1x8x8-12-10", seed=0)
    fields = plots_model.first_layer_weights(model, (1, 8, 8))
    assert fields.shape == (12, 8, 8)
    np.testing.assert_array_equal(fields[5], model.layers[0].weight.detach()[5].reshape(8, 8).numpy())
    plots_model.plot_weights(fields, tmp_path / "w.png")
    assert_png(tmp_path / "w.png")


def test_conv_filters_are_shown_per_filter():
    model = build("1x8x8 c3x3x4 mp2 d10", seed=0)
    filters = plots_model.first_layer_weights(model, (1, 8, 8))
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    np.testing.assert_array_equal(filters, conv.weight.detach()[:, 0].numpy())  # (4, 3, 3)


def test_non_image_inputs_give_square_or_strip_images():
    assert plots_model.image_shape((784,), 784) == (28, 28)
    assert plots_model.image_shape((3, 4, 4), 48) == (4, 4, 3)
    assert plots_model.image_shape((5,), 5) == (1, 5)


def test_activation_histograms_use_every_layer(tmp_path):
    model = build("1x4x4-8-5-3", act="sigmoid", seed=0)
    x = torch.rand(20, 1, 4, 4)
    acts = plots_model.plot_activation_histograms(plots_model.layer_activations(model, x), tmp_path / "a.png")
    assert list(acts) == ["dense1", "dense2", "dense3"]
    np.testing.assert_allclose(acts["dense2"], model.hidden(x, "dense2").flatten().numpy())
    assert acts["dense1"].min() > 0 and acts["dense1"].max() < 1  # sigmoid outputs
    assert_png(tmp_path / "a.png")


def test_gradients_plot_adds_nielsens_speed_panel_when_recorded(tmp_path):
    history = [{**row, "speed/dense1": 1e-4 * row["epoch"], "speed/dense2": 1e-2} for row in synthetic_history(4)]
    panels = plots_training.plot_gradient_norms(history, tmp_path / "g.png")
    np.testing.assert_allclose(panels["speed"]["dense1"], [1e-4, 2e-4, 3e-4, 4e-4])
    assert list(panels["grad_norm"]) == ["dense1", "dense2", "dense3"]
    assert not any(k.startswith("speed/") for k in plots_training.curve_series(history))
    assert mpimg.imread(tmp_path / "g.png").shape[1] > 1000  # two panels side by side
