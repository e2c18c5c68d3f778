"""``capas summary``: the table, the JSON line, recipes, run directories and errors."""

from __future__ import annotations

import json

import pytest

from capas.cli import main
from capas.models import build


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(["summary", *args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_table_lists_layers_and_totals(capsys):
    code, out, _ = run(capsys, "1x32x32 c5x5x6 ap2 c5x5x16 ap2 c5x5x120 d84 d10", "--act", "tanh")
    assert code == 0
    for text in ("conv1", "6x28x28", "pool2", "48,120", "dense2", "61,706 parameters", "833,040 FLOPs"):
        assert text in out


def test_json_is_the_last_line(capsys):
    code, out, _ = run(capsys, "784-30-rep3(30)-10", "--json")
    data = json.loads(out.strip().splitlines()[-1])
    assert code == 0
    assert (data["total_params"], data["trainable_params"]) == (24_790, 24_790)
    assert [(row["name"], row["output_shape"], row["params"], row["shared"]) for row in data["layers"]] == [
        ("dense1", [30], 23_550, False),
        ("rep1", [30], 930, True),
        ("rep1.dense2", [30], 930, True),
        ("dense3", [10], 310, False),
    ]
    assert data["flops"] == 2 * (784 * 30 + 3 * 30 * 30 + 30 * 10)


def test_loss_sets_output_activation(capsys):
    _, out, _ = run(capsys, "4 d3 mx2x2", "--loss", "mse", "--json")
    assert [row["name"] for row in json.loads(out.splitlines()[-1])["layers"]] == ["dense1", "maxout1"]
    _, out, _ = run(capsys, "4 d3 mx2x2", "--json")  # cross-entropy: a softmax follows the maxout layer
    assert [row["name"] for row in json.loads(out.splitlines()[-1])["layers"]] == ["dense1", "maxout1", "act1"]


def test_recipe_and_run_directory(capsys, tmp_path):
    recipe = tmp_path / "lenet.toml"
    recipe.write_text('[model]\nspec = "1x28x28 c5x5x6:same mp2 c5x5x16 mp2 d120 d84 d10"\nact = "tanh"\n')
    code, out, _ = run(capsys, str(recipe), "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["total_params"] == 61_706
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.json").write_text(json.dumps(build("64-32-10").config()))
    code, out, _ = run(capsys, str(run_dir), "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["total_params"] == 64 * 32 + 32 + 330


@pytest.mark.parametrize(
    "args, message",
    [
        (["784-30-(10"], "unexpected '('"),
        (["784 c3x3x8"], "needs a signal (CxL) or image (CxHxW) input"),
        (["784-10", "--loss", "kl"], "unknown loss 'kl'"),
    ],
)
def test_errors_exit_2_with_the_message(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_run_directory(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and "without model.json" in err
    (tmp_path / "model.json").write_text("{not json")
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and "not valid JSON" in err


def test_run_directory_that_is_not_a_config_and_missing_recipe(capsys, tmp_path):
    (tmp_path / "model.json").write_text("[1, 2]")
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and "holds a list, not a model config" in err and "Traceback" not in err
    code, _, err = run(capsys, str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read the recipe" in err and "No such file" in err


def test_loss_given_for_a_run_directory_sets_its_output_activation(capsys, tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(build("4 d3 mx2x2").config()))  # cross-entropy: + softmax
    _, out, _ = run(capsys, str(tmp_path), "--json")
    assert [row["name"] for row in json.loads(out.splitlines()[-1])["layers"]] == ["dense1", "maxout1", "act1"]
    _, out, _ = run(capsys, str(tmp_path), "--loss", "mse", "--json")  # linear output: no activation layer
    assert [row["name"] for row in json.loads(out.splitlines()[-1])["layers"]] == ["dense1", "maxout1"]
