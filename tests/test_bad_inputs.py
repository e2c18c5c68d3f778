"""Bad inputs end in one-line errors, never a traceback or a silently wrong answer (issue 20,
findings 7, 9b, 11-14): predict's inputs and stored preprocessing, specs too long or too
deep to parse, mistyped or too deep run-directory JSON, memory estimates, frozen models and
float labels."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import run_cli

import capas
from capas import limits
from capas.api.predict import predict, prepare
from capas.data import load
from capas.data.formats import check_npy_size, read_npz
from capas.errors import CapasWarning, DataError, RunDirError, SpecError, TrainingError
from capas.models import build
from capas.models.spec_input import existing_path, spec_text
from capas.notation import MAX_DEPTH, parse
from capas.train.rundir import load_run, read_json


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 1-epoch digits run (64-16-10, scaled by 1/16)."""
    out = tmp_path_factory.mktemp("bad") / "run"
    capas.fit("64-16-10", "digits", epochs=1, out=out, quiet=True, warn_gradients=False)
    return out


@pytest.fixture()
def run_copy(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def digits_rows(n: int = 6) -> np.ndarray:
    return load("digits", scale=False).x_test[:n].reshape(n, 64).numpy()


# --- finding 7: predict refuses NaN/inf rows, complex input and zero divisors -------------


def test_nan_and_inf_rows_are_refused_by_index(trained):
    x = digits_rows(8)
    x[2, 5], x[6, 0] = np.nan, np.inf
    with pytest.raises(DataError, match=r"2 input row\(s\).*rows 2, 6"):
        predict(trained, x)
    huge = digits_rows(2).astype(np.float64)
    huge[1, 3] = 1e300  # finite in float64, inf in the model's float32
    with pytest.raises(DataError, match="rows 1"):
        predict(trained, huge)


def test_complex_input_is_refused_in_memory_and_from_a_file(trained, tmp_path):
    x = digits_rows(3).astype(np.complex64)
    with pytest.raises(DataError, match="complex"):
        predict(trained, x)
    with pytest.raises(DataError, match="complex"):
        predict(trained, torch.from_numpy(x))
    np.save(tmp_path / "c.npy", x)
    code, _, err = run_cli(["predict", str(trained), str(tmp_path / "c.npy")])
    assert code == 2 and "complex128" not in err and "complex64" in err and err.count("\n") == 1


@pytest.mark.parametrize("value", [0, 0.0, None, "16", float("inf")])
def test_a_zero_or_broken_divisor_is_refused_naming_the_file(run_copy, value):
    edit_json(run_copy / "config.json", lambda c: c["data"]["preprocessing"]["scale"].update(divide_by=value))
    with pytest.raises(DataError, match=r"config.json data.preprocessing.scale.divide_by is"):
        predict(run_copy, digits_rows())


def test_a_zero_std_is_refused_and_a_valid_one_applied(run_copy):
    x = digits_rows()
    mean, std = [[1.0] * 8] * 8, [[2.0] * 8] * 8
    edit_json(
        run_copy / "config.json", lambda c: c["data"]["preprocessing"].update(standardize={"mean": mean, "std": std})
    )
    prepared = prepare(x, (64,), {"scale": {"divide_by": 16}, "standardize": {"mean": mean, "std": std}})
    assert torch.allclose(prepared, (torch.from_numpy(x).float() / 16 - 1) / 2)
    assert predict(run_copy, x).shape == (6,)
    std[3] = [2.0] * 7 + [0.0]
    edit_json(
        run_copy / "config.json", lambda c: c["data"]["preprocessing"].update(standardize={"mean": mean, "std": std})
    )
    with pytest.raises(DataError, match=r"standardize.std is 0 for 1 feature\(s\) \(31\)"):
        predict(run_copy, x)


# --- predict accepts the shapes the model was trained on; zero rows are refused -----------


def test_images_single_samples_and_flat_rows_predict_alike(trained):
    x = digits_rows(5)
    flat = predict(trained, x)
    assert torch.equal(predict(trained, x.reshape(5, 8, 8)), flat)
    assert torch.equal(predict(trained, x.reshape(5, 1, 8, 8)), flat)
    assert predict(trained, x[3]).tolist() == [flat[3].item()]  # (64,): one sample
    assert predict(trained, x[3].reshape(8, 8)).tolist() == [flat[3].item()]


def test_zero_rows_are_refused(trained):
    with pytest.raises(DataError, match="no samples"):
        predict(trained, np.zeros((0, 64)))
    with pytest.raises(DataError, match="no samples"):
        predict(trained, np.zeros((0, 8, 8)))


def test_a_csv_header_is_skipped_and_json_is_one_object(trained, tmp_path):
    x = digits_rows(4)
    plain, headed = tmp_path / "plain.csv", tmp_path / "headed.csv"
    np.savetxt(plain, x, delimiter=",", fmt="%g")
    headed.write_text(",".join(f"pixel{i}" for i in range(64)) + "\n" + plain.read_text())
    assert torch.equal(predict(trained, headed), predict(trained, plain))
    code, out, err = run_cli(["predict", str(trained), str(headed), "--json"])
    assert code == 0 and err == ""
    record = json.loads(out)
    assert record == {
        "predictions": predict(trained, x).tolist(),
        "shape": [4],
        "run_dir": str(trained),
    }
    (tmp_path / "empty.csv").write_text("a,b\n")
    code, _, err = run_cli(["predict", str(trained), str(tmp_path / "empty.csv")])
    assert code == 2 and "no samples" in err


# --- finding 11: long and deep specs, deep JSON -------------------------------------------


def test_a_spec_longer_than_a_file_name_is_a_spec(capsys):
    spec = "784-" + "-".join(["30"] * 100) + "-10"
    assert len(spec) > 255 and existing_path(spec) is None
    code, out, err = run_cli(["summary", spec, "--json"])
    assert code == 0, err
    assert json.loads(out)["total_params"] == 784 * 30 + 30 + 99 * (30 * 30 + 30) + 30 * 10 + 10
    assert existing_path("a\0b") is None and existing_path("x/" + "y" * 300) is None


def test_specs_nested_deeper_than_the_limit_are_one_line_errors():
    deep = "64 " + "res(" * MAX_DEPTH + "d8" + ")" * MAX_DEPTH + " d10"
    assert len(parse(deep).layers) == 2
    too_deep = "64 " + "res(" * 300 + "d8" + ")" * 300 + " d10"
    with pytest.raises(SpecError, match=f"nested more than {MAX_DEPTH} deep") as caught:
        parse(too_deep)
    assert "^" in str(caught.value)
    code, _, err = run_cli(["summary", too_deep])
    assert code == 2 and "Traceback" not in err
    table: dict = {"type": "dense", "units": 4}
    for _ in range(200):
        table = {"type": "residual", "layers": [table]}
    with pytest.raises(SpecError, match="nested more than"):
        spec_text(["64", table, {"type": "dense", "units": 10}])


def test_deeply_nested_json_in_a_run_is_a_run_dir_error(run_copy):
    (run_copy / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunDirError, match="nested more than"):
        load_run(run_copy)
    (run_copy / "model.json").write_text('{"a":' * 40 + "1" + "}" * 40)
    with pytest.raises(RunDirError, match="model.json is nested more than"):
        read_json(run_copy / "model.json")


# --- finding 12 and 9b: mistyped run files ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "change", "key"),
    [
        ("config.json", lambda c: c.update(train=[1]), "train must be an object"),
        ("config.json", lambda c: c["train"].update(target_encoding=[]), "train: invalid training option"),
        ("config.json", lambda c: c["train"].update(epochs="many"), "train: invalid training option"),
        ("config.json", lambda c: c["data"].update(options=3), "data.options must be an object"),
        ("config.json", lambda c: c["data"].update(num_classes="10"), "data.num_classes must be"),
        ("config.json", lambda c: c.update(task=["supervised"]), "task must be an object"),
        ("state.json", lambda s: s.update(epoch="1"), "epoch must be a non-negative integer"),
        ("state.json", lambda s: s["optimizers"]["main"].update(scalars=None), "optimizers.main.scalars"),
        (
            "state.json",
            lambda s: s["optimizers"]["main"]["param_groups"][0].update(lr="fast"),
            r"optimizers.main.param_groups\[0\].lr",
        ),
        ("state.json", lambda s: s.update(history={"epoch": 1}), "history must be a list"),
    ],
)
def test_wrong_json_types_are_run_dir_errors_naming_file_and_key(run_copy, name, change, key):
    edit_json(run_copy / name, change)
    with pytest.raises(RunDirError, match=f"{name}: {key}"):
        load_run(run_copy).checkpoint()
    code, _, err = run_cli(["train", "--resume", str(run_copy), "--epochs", "3", "--quiet"])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("history.json", '{"epoch": 1}', "history.json: the file must be a list"),
        ("history.json", '[{"epoch": "1"}]', "entry 0: epoch must be an integer"),
        ("history.json", "[3]", "entry 0 must be an object"),
        ("history.json", '[{"epoch": 1, "train_loss": [0.5]}]', "entry 0: train_loss must be a number or null"),
        ("model.json", "[]", "model.json: the file must be an object"),
        ("metrics.json", '"good"', "metrics.json: the file must be an object"),
    ],
)
def test_mistyped_history_model_and_metrics_files(run_copy, name, text, message):
    (run_copy / name).write_text(text)
    with pytest.raises(RunDirError, match=message):
        load_run(run_copy)
    for command in (["evaluate", str(run_copy)], ["plot", str(run_copy), "--what", "curves"]):
        code, _, err = run_cli(command)
        assert code == 2 and "Traceback" not in err and err.count("\n") == 1


def test_an_emptied_history_is_replaced_by_the_checkpoints_with_a_warning(run_copy):
    (run_copy / "history.json").write_text("[]")
    with pytest.warns(CapasWarning, match="holds 0 epoch.*state.json holds 1"):
        run = load_run(run_copy)
    assert [r["epoch"] for r in run.history] == [1]


def test_a_file_where_the_plots_folder_goes_is_a_one_line_error(run_copy):
    (run_copy / "plots").write_text("not a folder")
    code, _, err = run_cli(["plot", str(run_copy), "--what", "curves"])
    assert code == 2 and "plots is a file, not a folder" in err and "Traceback" not in err


# --- finding 13: memory estimates refuse before allocating --------------------------------


def test_training_that_cannot_fit_is_refused_with_the_estimate(monkeypatch):
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    monkeypatch.setattr(limits, "available_memory", lambda: 10_000)
    with pytest.raises(TrainingError, match=r"optimizer state .*batches of 32.* needs about .* only 9\.8 KiB"):
        capas.fit(build("4-200-3"), (x, y), epochs=1, quiet=True)
    monkeypatch.setattr(limits, "available_memory", lambda: 10**9)
    assert len(capas.fit(build("4-200-3"), (x, y), epochs=1, quiet=True).history) == 1


def _fake_npy_header(shape: tuple[int, ...]) -> bytes:
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def test_npy_and_npz_headers_claiming_terabytes_are_refused_before_loading(tmp_path, trained):
    big = tmp_path / "big.npy"
    big.write_bytes(_fake_npy_header((10**11, 64)))  # 51 TB claimed, no data
    with pytest.raises(DataError, match=r"shape \(100000000000, 64\).*needs about 46\.6 TiB"):
        check_npy_size(big)
    code, _, err = run_cli(["predict", str(trained), str(big)])
    assert code == 2 and "TiB" in err
    small = tmp_path / "short.npy"
    small.write_bytes(_fake_npy_header((100, 64)) + b"\0" * 80)
    with pytest.raises(DataError, match="truncated"):
        check_npy_size(small)
    archive = tmp_path / "big.npz"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("x.npy", _fake_npy_header((10**12, 64)))
        handle.writestr("y.npy", _fake_npy_header((10**12,)))
    with pytest.raises(DataError, match=r"big.npz:x.npy .*needs about"):
        read_npz(archive, (64,), 10)


@pytest.mark.parametrize("name", ["xor", "circles", "moons", "spirals", "gaussians", "sine"])
def test_huge_generated_datasets_are_refused(name):
    with pytest.raises(DataError, match=r"generating 1,000,000,000,000 samples needs about [0-9.]+ [TP]iB but only"):
        load(name, n=10**12)


# --- finding 14: nothing left to train, float labels --------------------------------------


@pytest.mark.parametrize("engine", ["autograd", "auto"])
def test_freezing_every_layer_is_a_training_error(engine):
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    with pytest.raises(TrainingError, match=r"every parameter .* frozen \(frozen layers 0, 1\)"):
        capas.fit("4-8-3", (x, y), epochs=1, quiet=True, frozen_layers=[0, 1], engine=engine)
    model = build("4-8-3")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    with pytest.raises(TrainingError, match="nothing to train"):
        capas.fit(model, (x, y), epochs=1, quiet=True)


def test_float_labels_for_a_classifier_suggest_long():
    x, y = torch.randn(30, 4), torch.tensor([0.0, 1.0, 2.0] * 10)
    with pytest.raises(TrainingError, match=r"cross_entropy needs integer class labels.*y\.long\(\)"):
        capas.fit(build("4-8-3", loss="cross_entropy"), (x, y), epochs=1, quiet=True)
    with pytest.raises(TrainingError, match=r"1 column\(s\).*3 outputs; .*y\.long\(\)"):
        capas.fit("4-8-3", (x, y), epochs=1, quiet=True)
    assert capas.fit("4-8-3", (x, y.long()), epochs=1, quiet=True).model.options["loss"] == "cross_entropy"
    regression = capas.fit("4-8-1", (x, y), epochs=1, quiet=True)  # one float column: regression
    assert regression.model.options["loss"] == "mse"
