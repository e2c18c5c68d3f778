"""The command line on your own files: ``capas train --data table.csv`` and an image folder
learn, the run keeps the fitted preprocessing, and ``capas predict RUN new.csv`` applies it
to new raw rows (ids kept, ``--proba``, ``--out``); ``capas evaluate`` reloads the file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from capas.cli import main
from capas.train.rundir import load_run


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def patients(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """A diagnosis table: two measurements, a categorical sex, an id; class sick/healthy."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 80, n)
    pressure = rng.normal(120, 15, n)
    sex = rng.choice(["f", "m"], n)
    sick = (age - 50) / 15 + (pressure - 120) / 15 + 0.8 * (sex == "m") > 0.4
    rows = [
        [f"p{seed}-{i}", f"{age[i]:.1f}", f"{pressure[i]:.1f}", sex[i], "sick" if sick[i] else "healthy"]
        for i in range(n)
    ]
    return ["id", "age", "pressure", "sex", "diagnosis"], rows


def write_csv(path, header, rows):
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    header, rows = patients(300, seed=0)
    rows[7][2] = ""  # a missing pressure, imputed
    data = write_csv(folder / "patients.csv", header, rows)
    out = folder / "run"
    main(
        ["train", "--data", str(data), "--impute", "mean", "--model", "4-16-2", "--epochs", "40", "--lr", "0.01"]
        + ["--quiet", "--out", str(out), "--json"]
    )
    return folder, out


def test_train_learns_the_csv_and_keeps_its_preprocessing(table_run, capsys):
    folder, out = table_run
    config = json.loads((out / "config.json").read_text())
    table = config["data"]["preprocessing"]["table"]
    assert table["target"] == "diagnosis" and table["classes"] == ["healthy", "sick"] and table["id_column"] == "id"
    assert table["columns"][1]["fill"] == pytest.approx(120, abs=5)  # the training rows' mean pressure
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] >= 0.9
    code, stdout, _ = run_cli(capsys, "evaluate", out, "--json")  # reloads the file by its path
    assert code == 0 and json.loads(stdout)["test_accuracy"] >= 0.9


def test_predict_applies_the_stored_preprocessing_to_new_raw_rows(table_run, capsys):
    folder, out = table_run
    header, rows = patients(40, seed=1)
    new = write_csv(folder / "new.csv", header[:-1], [row[:-1] for row in rows])  # no diagnosis column
    code, stdout, err = run_cli(capsys, "predict", out, new)
    assert code == 0, err
    lines = [line.split() for line in stdout.splitlines()]
    assert [line[0] for line in lines] == [row[0] for row in rows]  # the ids, in order
    # the same rows encoded by hand from config.json: standardised numbers, one-hot sex
    pre = json.loads((out / "config.json").read_text())["data"]["preprocessing"]
    raw = np.array([[float(r[1]), float(r[2]), r[3] == "f", r[3] == "m"] for r in rows], dtype=np.float64)
    x = (raw - np.array(pre["standardize"]["mean"])) / np.array(pre["standardize"]["std"])
    network = load_run(out).build_model()
    expected = network.predict(torch.tensor(x, dtype=torch.float32)).numpy()
    assert [line[1] for line in lines] == [["healthy", "sick"][k] for k in expected]
    truth = [row[-1] for row in rows]
    assert np.mean([line[1] == t for line, t in zip(lines, truth)]) >= 0.85
    labelled = write_csv(folder / "labelled.csv", header, rows)  # evaluate: every row, stored encoding
    code, stdout, err = run_cli(capsys, "evaluate", out, "--data", labelled, "--json")
    assert code == 0, err
    record = json.loads(stdout)
    assert record["data"] == str(labelled) and sum(record["per_class"]["support"]) == 40
    assert record["test_accuracy"] == pytest.approx(np.mean([line[1] == t for line, t in zip(lines, truth)]))


def test_predict_proba_and_out_csv_with_an_id_column(table_run, capsys):
    folder, out = table_run
    header, rows = patients(12, seed=2)
    new = write_csv(folder / "proba.csv", header, rows)  # with the target column: checked, ignored
    target = folder / "predictions.csv"
    code, stdout, err = run_cli(capsys, "predict", out, new, "--proba", "--out", target)
    assert code == 0 and "wrote 12 predictions" in stdout, err
    with target.open() as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["id", "prediction", "proba_healthy", "proba_sick"]
    assert [row[0] for row in table[1:]] == [row[0] for row in rows]
    proba = np.array([[float(v) for v in row[2:]] for row in table[1:]])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert [row[1] for row in table[1:]] == [["healthy", "sick"][k] for k in proba.argmax(axis=1)]
    code, stdout, _ = run_cli(capsys, "predict", out, new, "--proba", "--json")
    record = json.loads(stdout)
    assert record["ids"] == [row[0] for row in rows] and np.array(record["proba"]).shape == (12, 2)


def test_predict_refuses_unseen_labels_and_missing_columns(table_run, capsys):
    folder, out = table_run
    header, rows = patients(3, seed=3)
    rows[1][-1] = "unknown"
    bad = write_csv(folder / "unseen.csv", header, rows)
    code, _, err = run_cli(capsys, "predict", out, bad)
    assert code == 2 and "unseen.csv line 3, column 'diagnosis': label 'unknown' was not seen" in err
    assert len(err.strip().splitlines()) == 1
    short = write_csv(folder / "short.csv", ["id", "age"], [["a", "30"]])
    code, _, err = run_cli(capsys, "predict", out, short)
    assert code == 2 and "has no column 'pressure'" in err


def make_images(folder, n: int, seed: int, size=(10, 10)) -> None:
    """Two classes of grey images: a bright left half or a bright right half, with noise."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(["left", "right"]):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 80, size=size)
            half = size[1] // 2
            if k == 0:
                pixels[:, :half] += 150
            else:
                pixels[:, half:] += 150
            Image.fromarray(pixels.astype(np.uint8), "L").save(folder / name / f"{i}.png")


def test_image_folder_trains_and_new_images_are_resized_like_it(tmp_path, capsys):
    make_images(tmp_path / "train", 30, seed=0)
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys,
        "train",
        "--data",
        tmp_path / "train",
        "--image-size",
        "8",
        "--model",
        "64-16-2",
        "--epochs",
        "15",
        "--lr",
        "0.01",
        "--quiet",
        "--out",
        out,
        "--json",
    )
    assert code == 0, err
    assert json.loads(stdout.splitlines()[-1])["test_accuracy"] >= 0.9
    images = json.loads((out / "config.json").read_text())["data"]["preprocessing"]["images"]
    assert images == {"size": [8, 8], "mode": "L", "classes": ["left", "right"]}
    make_images(tmp_path / "new", 5, seed=1, size=(12, 16))  # other raw size: resized to 8x8
    code, stdout, err = run_cli(capsys, "predict", out, tmp_path / "new", "--proba")
    assert code == 0, err
    lines = [line.split() for line in stdout.splitlines()]
    assert [line[0] for line in lines][:2] == ["left/0.png", "left/1.png"]
    correct = [line[1] == line[0].split("/")[0] for line in lines]
    assert np.mean(correct) >= 0.9
    code, stdout, err = run_cli(capsys, "evaluate", out, "--data", tmp_path / "new", "--json")
    assert code == 0, err
    assert json.loads(stdout)["test_accuracy"] == pytest.approx(np.mean(correct))
    Image.new("RGB", (8, 8)).save(tmp_path / "colour.png")
    code, _, err = run_cli(capsys, "predict", out, tmp_path / "colour.png")
    assert code == 2 and "colour.png has image mode RGB but the model was trained on L images" in err
