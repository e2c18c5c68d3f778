"""The registry: names, toys, digits, splits, standardisation, determinism, the CLI."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import capas.data as data
from capas.data.pairs import load_pairs
from capas.errors import DataError

TOYS = ["xor", "circles", "moons", "spirals", "gaussians"]


def test_unknown_dataset_suggests_the_closest_and_lists_all():
    with pytest.raises(DataError) as info:
        data.load("mnsit")
    message = str(info.value)
    assert "unknown dataset 'mnsit'; did you mean 'mnist'?" in message
    assert "digits, xor, circles, moons, spirals, gaussians, sine, mnist" in message


def test_unknown_option_and_bad_common_arguments_are_data_errors():
    with pytest.raises(DataError, match="'moons' has no option widht; its options are: n, noise"):
        data.load("moons", widht=3)
    with pytest.raises(DataError, match="validation must be a fraction"):
        data.load("moons", validation=1.0)
    with pytest.raises(DataError, match="seed must be"):
        data.load("moons", seed=-1)
    with pytest.raises(DataError, match="option noise must be a number >= 0"):
        data.load("moons", noise=-0.5)
    with pytest.raises(DataError, match="has no option scale"):
        data.load("xor", scale=True)


def test_available_lists_every_dataset_with_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    infos = {info.name: info for info in data.available()}
    pairs = ["addition", "reverse", "sort", "dates", "pairs-file"]  # issue 12: an encoder-decoder's data
    assert list(infos) == [*data.names(), *pairs]
    dates = load_pairs("dates", validation=0.0)
    assert (infos["dates"].n_train, infos["dates"].n_test) == (len(dates.pairs["train"]), len(dates.pairs["test"]))
    assert infos["dates"].task == "sequence pairs" and infos["pairs-file"].n_train is None
    infos = {name: info for name, info in infos.items() if name not in pairs}
    sequences = {"adding", "copy-memory", "embedded-reber", "tomita", "temporal-xor", "parity"}
    sequences |= {"sine-forecast", "mackey-glass", "sequential-mnist", "text"}  # issue 11
    assert {"digits", *TOYS, "sine", "mnist", "fashion-mnist", "semeion", "usps", "optdigits", "letter"} | {
        "playground",
        "playground-regression",
        "ring",
        "grid",
    } | sequences == set(infos)
    assert (infos["digits"].n_train, infos["digits"].n_test) == (1437, 360)
    assert (infos["mnist"].n_train, infos["mnist"].n_test, infos["mnist"].input_shape) == (60000, 10000, (1, 28, 28))
    assert infos["digits"].local and not infos["mnist"].local and not infos["letter"].local
    assert infos["sine"].num_classes is None and infos["letter"].num_classes == 26


def test_digits_default_sizes_shapes_and_scaling():
    ds = data.load()
    assert ds.name == "digits" and ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 1797
    assert (len(ds.x_test), len(ds.x_val), len(ds.x_train)) == (360, 144, 1293)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.min().item() == 0.0 and ds.x_train.max().item() == 1.0
    assert ds.class_names == [str(i) for i in range(10)]
    assert repr(ds) == "Dataset('digits', train=1293, val=144, test=360, input_shape=(1, 8, 8), classes=10)"
    assert "train class counts" in ds.summary()


def test_test_and_validation_splits_are_stratified():
    ds = data.load("digits", validation=0.2, seed=5)
    overall = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=10) / 1797
    for split in ("train", "val", "test"):
        share = np.array(ds.class_counts(split)) / len(ds.splits()[split][1])
        np.testing.assert_allclose(share, overall, atol=0.01)


def test_same_seed_same_tensors_different_seed_different_split():
    a, b, c = data.load("digits", seed=1), data.load("digits", seed=1), data.load("digits", seed=2)
    for split in ("x_train", "y_train", "x_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert not torch.equal(a.y_test, c.y_test)


def test_options_reproduce_the_dataset_exactly():
    ds = data.load("spirals", seed=3, validation=0.25, standardize=True, n=200)
    assert ds.options == {"seed": 3, "validation": 0.25, "standardize": True, "n": 200, "noise": 0.05, "turns": 1.5}
    again = data.load(ds.name, **ds.options)
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(ds, split), getattr(again, split))
    json.dumps(ds.preprocessing)
    json.dumps(ds.options)


def test_standardisation_is_fitted_on_train_only_with_n_minus_1():
    ds = data.load("gaussians", standardize=True, n=300, centers=4, noise=2.0)
    assert ds.x_train.mean(0).abs().max().item() < 1e-5
    torch.testing.assert_close(ds.x_train.std(0, correction=1), torch.ones(2), atol=1e-5, rtol=0)
    raw = data.load("gaussians", standardize=False, n=300, centers=4, noise=2.0)
    mean = raw.x_train.double().mean(0)
    std = raw.x_train.double().std(0, correction=1)
    torch.testing.assert_close(ds.x_test, ((raw.x_test.double() - mean) / std).float())
    torch.testing.assert_close(ds.x_val, ((raw.x_val.double() - mean) / std).float())
    np.testing.assert_allclose(ds.preprocessing["standardize"]["mean"], mean.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", TOYS)
def test_toys_shapes_classes_noise_and_determinism(name):
    ds = data.load(name, n=100, validation=0.1)
    classes = 3 if name == "gaussians" else 2
    assert ds.input_shape == (2,) and ds.task == "classification" and ds.num_classes == classes
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (72, 8, 20)
    assert sorted(set(torch.cat([ds.y_train, ds.y_val, ds.y_test]).tolist())) == list(range(classes))
    again, other = data.load(name, n=100), data.load(name, n=100, seed=1)
    assert torch.equal(ds.x_train, again.x_train) and not torch.equal(ds.x_train, other.x_train)
    assert not torch.equal(ds.x_train, data.load(name, n=100, noise=0.3).x_train)


def test_xor_labels_are_the_xor_of_the_quadrant_signs():
    ds = data.load("xor", n=200, noise=0.05, validation=0)
    x, y = torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test])
    assert torch.equal(y, ((x[:, 0] > 0) != (x[:, 1] > 0)).long())
    assert torch.bincount(y).tolist() == [100, 100]


def test_circles_and_spirals_geometry():
    circles = data.load("circles", n=200, noise=0.0, validation=0)
    radius = circles.x_train.norm(dim=1)
    torch.testing.assert_close(radius[circles.y_train == 0], torch.ones(int((circles.y_train == 0).sum())))
    torch.testing.assert_close(radius[circles.y_train == 1], torch.full((int(circles.y_train.sum()),), 0.5))
    spirals = data.load("spirals", n=200, noise=0.0, turns=1.0, validation=0)
    x, y = spirals.x_train.double(), spirals.y_train
    r = x.norm(dim=1)
    # class 0 lies at angle 2*pi*r, class 1 at angle 2*pi*r + pi
    angle = torch.atan2(x[:, 1], x[:, 0]) - 2 * torch.pi * r - torch.pi * y
    torch.testing.assert_close(torch.cos(angle), torch.ones_like(angle), atol=1e-5, rtol=0)


def test_gaussians_number_of_centers_sets_the_classes():
    ds = data.load("gaussians", centers=5, n=250)
    assert ds.num_classes == 5 and ds.class_names == ["0", "1", "2", "3", "4"]
    assert ds.class_counts("test") == [10] * 5


def test_sine_windows_predict_the_next_value_and_split_in_time_order():
    ds = data.load("sine", n=100, window=8, noise=0.0, validation=0.1)
    assert ds.task == "regression" and ds.num_classes is None and ds.class_names == []
    assert ds.input_shape == (1, 8) and ds.y_train.shape == (72, 1) and ds.y_train.dtype == torch.float32
    series = torch.cat([ds.x_train[:, 0, 0], ds.x_train[-1, 0, 1:], ds.y_train[-1]])  # the first 80 values
    torch.testing.assert_close(ds.y_train[:, 0], series[8:80])
    # validation follows train and test follows validation in time: window i+1 starts one step later
    torch.testing.assert_close(ds.x_val[0, 0, :-1], ds.x_train[-1, 0, 1:])
    torch.testing.assert_close(ds.x_test[0, 0, :-1], ds.x_val[-1, 0, 1:])
    # a noiseless sine of period 25 obeys s[t+1] + s[t-1] = 2 cos(2 pi / 25) s[t]
    s = series.double()
    torch.testing.assert_close(s[2:] + s[:-2], 2 * np.cos(2 * np.pi / 25) * s[1:-1], atol=1e-6, rtol=0)
    assert ds.preprocessing["split"]["stratified"] is False


def test_validation_zero_gives_empty_tensors_of_the_right_shape():
    ds = data.load("digits", validation=0)
    assert ds.x_val.shape == (0, 1, 8, 8) and ds.y_val.shape == (0,) and len(ds.x_train) == 1437


def test_cli_lists_the_registry_as_a_table_and_as_json(tmp_path, monkeypatch):
    from capas.cli import _register, app, main

    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    _register()
    runner = CliRunner()
    table = runner.invoke(app, ["datasets"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "fashion-mnist" in table.output and "1x28x28" in table.output and str(tmp_path) in table.output
    result = runner.invoke(app, ["datasets", "--json"])
    assert result.exit_code == 0
    listing = json.loads(result.output.strip().splitlines()[-1])["datasets"]
    assert listing[0] == {
        "name": "digits", "task": "classification", "input_shape": [1, 8, 8], "num_classes": 10, "n_train": 1437,
        "n_test": 360, "local": True, "source": "bundled",
        "description": "8x8 handwritten digits bundled with scikit-learn (the default)",
    }  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["datasets", "--no-such-option"])
    assert exit_info.value.code == 2
