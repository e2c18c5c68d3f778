"""``capas train`` / ``evaluate`` / ``predict`` end to end on digits (one real training run)."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from capas.cli import _register, app, main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    _register()
    run_dir = tmp_path_factory.mktemp("cli") / "digits-run"
    result = CliRunner().invoke(app, ["train", "--json", "--quiet", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir, json.loads(result.output.strip().splitlines()[-1])


def test_default_train_reaches_95_percent_on_digits(trained):
    run_dir, summary = trained
    assert summary["test_accuracy"] >= 0.95
    assert summary["epochs"] == 30 and summary["run_dir"] == str(run_dir)
    assert {"test_loss", "seconds"} <= set(summary)
    for name in ("model.json", "weights.safetensors", "state.json", "history.csv", "metrics.json"):
        assert (run_dir / name).is_file()


def test_evaluate_reproduces_the_test_metrics(trained):
    run_dir, summary = trained
    result = CliRunner().invoke(app, ["evaluate", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output.strip().splitlines()[-1])
    assert metrics["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert np.array(metrics["confusion_matrix"]).sum() == 360


def test_predict_raw_samples_and_shape_errors(trained, tmp_path, capsys):
    run_dir, _ = trained
    digits = load_digits()
    np.save(tmp_path / "x.npy", digits.data[:20].astype(np.float32))  # raw 0..16 pixels, flattened
    result = CliRunner().invoke(
        app, ["predict", str(run_dir), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    predictions = np.loadtxt(tmp_path / "p.csv", delimiter=",")
    assert (predictions == digits.target[:20]).mean() >= 0.9
    np.save(tmp_path / "bad.npy", np.zeros((2, 5), np.float32))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run_dir), str(tmp_path / "bad.npy")])
    assert exit_info.value.code == 2
    assert "input has shape (2, 5) but the model expects (N, 64)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "inputs, out, message",
    [
        (np.array(["a", "b"]), None, "holds <U1 values, not numbers"),
        (np.zeros((2, 64), np.float32), "no/such/dir/p.npy", "--out must be a .npy or .csv file in an existing"),
        (np.zeros((2, 64), np.float32), "p.txt", "--out must be a .npy or .csv file"),
    ],
)
def test_predict_rejects_non_numeric_inputs_and_unwritable_outputs(trained, tmp_path, capsys, inputs, out, message):
    run_dir, _ = trained
    np.save(tmp_path / "x.npy", inputs)
    argv = ["predict", str(run_dir), str(tmp_path / "x.npy")] + ([] if out is None else ["--out", str(tmp_path / out)])
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_init_from_fine_tunes_a_saved_model(trained, tmp_path, capsys):
    run_dir, summary = trained
    args = [
        "train",
        "--init-from",
        str(run_dir),
        "--epochs",
        "1",
        "--lr",
        "1e-9",
        "--quiet",
        "--json",
        "--out",
        str(tmp_path / "tuned"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.output.strip().splitlines()[-1])
    # a learning rate of 1e-9 leaves the loaded weights as they were: same test accuracy
    assert tuned["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    with pytest.raises(SystemExit):
        main(["train", "--init-from", str(tmp_path / "nothing"), "--quiet", "--out", str(tmp_path / "x")])
    assert "no directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "nope"], "unknown dataset 'nope'"),
        (["train", "--batch-size", "zero"], "--batch-size must be a positive integer or 'full'"),
        (["train", "--optimizer", "adamm", "--epochs", "1"], "unknown optimizer 'adamm'"),
        (["evaluate", "no/such/run"], "no run directory"),
        (["train", "--engine", "turbo", "--epochs", "1"], "invalid training option(s): engine"),
        (["train", "--resume", "no/such/run"], "no run directory"),
        (
            ["train", "--resume", "no/such/run", "--lr", "0.5", "--data", "xor"],
            "--resume takes its options from the run's config.json; drop --data, --lr",
        ),
    ],
)
def test_user_mistakes_are_one_line_errors_with_exit_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [*argv, "--quiet", "--out", str(tmp_path / "r")] if argv[0] == "train" and "--resume" not in argv else argv
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_train_resumes_a_killed_cli_run(tmp_path):
    _register()
    run_dir = tmp_path / "run"
    args = ["train", "--data", "xor", "--model", "2-4-2", "--epochs", "4", "--quiet", "--out", str(run_dir), "--json"]
    full = CliRunner().invoke(app, args)
    assert full.exit_code == 0, full.output
    # pretend it died after epoch 2: roll the checkpoint back by re-training 2 epochs elsewhere
    short = tmp_path / "short"
    assert CliRunner().invoke(app, [*args[:6], "2", "--quiet", "--out", str(short)]).exit_code == 0
    config = json.loads((short / "config.json").read_text())
    config["train"]["epochs"] = 4
    (short / "config.json").write_text(json.dumps(config))
    state = json.loads((short / "state.json").read_text())
    (short / "state.json").write_text(json.dumps({**state, "finished": False}))
    resumed = CliRunner().invoke(app, ["train", "--resume", str(short), "--quiet", "--json"])
    assert resumed.exit_code == 0, resumed.output
    a, b = (json.loads(r.output.strip().splitlines()[-1]) for r in (full, resumed))
    assert b["epochs"] == 4 and b["test_loss"] == a["test_loss"]


def test_train_resume_takes_a_new_epochs(tmp_path):
    _register()
    run_dir = tmp_path / "run"
    args = ["train", "--data", "xor", "--model", "2-4-2", "--quiet", "--json"]
    assert CliRunner().invoke(app, [*args, "--epochs", "2", "--out", str(run_dir)]).exit_code == 0
    state = json.loads((run_dir / "state.json").read_text())
    (run_dir / "state.json").write_text(json.dumps({**state, "finished": False}))  # as if killed after epoch 2
    resumed = CliRunner().invoke(app, ["train", "--resume", str(run_dir), "--epochs", "3", "--quiet", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.output.strip().splitlines()[-1])["epochs"] == 3
