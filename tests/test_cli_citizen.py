"""The command line as a good citizen: progress lines off a terminal, the resolved run echoed,
``--version``/``-h``, help texts that show choices and keep their brackets, one JSON object
per ``--json``, the confusion matrix in ``evaluate``; and two silently wrong results fixed:
plots of a squared-error classifier (finding 8) and an output activation contradicting a
cross-entropy (finding 9a)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from capas import __version__, defaults
from capas.cli import _register, app, main
from capas.cli.train import MAX_TABLE_CLASSES, confusion_lines
from capas.errors import SpecError
from capas.models import Network, build
from capas.train.callbacks import ProgressBar, ProgressLines, progress_callback

COMMANDS = ["train", "evaluate", "predict", "datasets", "summary", "plot", "run", "pretrain"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``capas ARGS``."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list:
    """Every stdout line that parses as JSON."""
    found = []
    for line in out.splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    """A small xor run trained by the command line: (run dir, stdout, stderr); stderr is a
    StringIO, so not a terminal, as in a pipe or CI."""
    out = tmp_path_factory.mktemp("citizen") / "xor"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        main(["train", "--data", "xor", "--model", "2-4-2", "--epochs", "3", "--out", str(out), "--json"])
    return out, stdout.getvalue(), stderr.getvalue()


# ---- progress and the echoed run ---------------------------------------------------------------
def test_progress_is_one_line_per_epoch_after_the_resolved_run(xor_run):
    """Off a terminal the run printed nothing before; now the resolved defaults, then epochs."""
    _, out, err = xor_run
    lines = err.strip().splitlines()
    assert lines[0].startswith("training 2 d4 d2 (22 parameters): adam lr 0.003, batch 32, 3 epochs")
    assert "loss cross_entropy, engine fast, device cpu (1 thread)" in lines[0]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    for line in epochs:
        assert re.search(r"train_loss \S+ .*val_loss \S+ .*val_accuracy \S+ .*\d+\.\d\d s$", line), line
    assert isinstance(json.loads(out.strip().splitlines()[-1]), dict)  # --json's object stays last on stdout
    assert not any(line.startswith(("training ", "epoch ")) for line in out.splitlines())


def test_quiet_silences_progress(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "train", "--data", "xor", "--model", "2-4-2", "--epochs", "2", "--out", str(tmp_path / "r"), "--quiet"
    )
    assert code == 0 and err == ""
    assert "test accuracy" in out


def test_the_progress_output_is_chosen_in_one_place(monkeypatch):
    assert progress_callback(quiet=True) is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(progress_callback(quiet=False), ProgressLines)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert isinstance(progress_callback(quiet=False), ProgressBar)


def test_the_echo_says_why_the_explicit_engine_was_not_taken(capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "train",
        "--data",
        "xor",
        "--model",
        "2-4-2",
        "--epochs",
        "1",
        "--optimizer",
        "lbfgs",
        "--batch-size",
        "full",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0
    first = err.splitlines()[0]
    assert "lbfgs lr 1, batch full" in first and "engine autograd (not the explicit engine: LBFGS re-evaluates" in first


def test_pretrain_shows_each_stage_and_epoch(capsys, tmp_path):
    code, _, err = run_cli(capsys, "pretrain", "--model", "64-8-4-10", "--epochs", "2", "--out", str(tmp_path / "p"))
    assert code == 0
    lines = err.splitlines()
    stages = [line for line in lines if line.startswith("training RBM")]
    assert len(stages) == 2 and "n_visible=64, n_hidden=8" in stages[0] and "n_visible=8, n_hidden=4" in stages[1]
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2", "1/2", "2/2"]
    assert any("reconstruction_error" in line for line in lines if line.startswith("epoch "))


# ---- --version, -h, help texts --------------------------------------------------------------------
def test_version_and_short_help_import_no_torch():
    probe = (
        "import sys\nfrom capas.cli import main\n"
        "for argv in (['--version'], ['-h'], ['train', '-h'], ['summary', '-h']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert not e.code, (argv, e.code)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"capas {__version__} (torch ")
    assert lines[-1] == "False"
    assert "Usage: -c train [OPTIONS]" in result.stdout and "Usage: -c summary [OPTIONS] {SPEC}" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_short_help(capsys, command):
    code, out, _ = run_cli(capsys, command, "-h")
    assert code == 0 and f"{command} [OPTIONS]" in out and "-h, --help" in out


def rendered_help(capsys, *command: str) -> str:
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0
    return " ".join(out.split())


def test_no_help_text_loses_its_brackets(capsys):
    """rich markup ate '[model]': every bracketed part of every help text must be printed."""
    _register()
    import typer.main

    group = typer.main.get_command(app)
    assert "a TOML recipe with a [model] table" in rendered_help(capsys, "summary")
    checked = 0
    for name, command in group.commands.items():
        text = rendered_help(capsys, name)
        for param in command.params:
            for bracketed in re.findall(r"\[[^\]]*\]", getattr(param, "help", None) or ""):
                assert " ".join(bracketed.split()) in text, (name, bracketed)
                checked += 1
    assert checked >= 2  # [model] and [-v, v] at least


def test_help_texts_list_the_valid_choices(capsys):
    train = rendered_help(capsys, "train")
    for names in (defaults.OPTIMIZERS, defaults.ACTIVATIONS, defaults.SCHEDULES, defaults.LOSSES):
        assert ", ".join(names) in train, names
    assert "lbfgs" in defaults.OPTIMIZERS
    summary = rendered_help(capsys, "summary")
    assert summary.count(", ".join(defaults.ACTIVATIONS)) == 2  # --act and --output-act
    pretrain = rendered_help(capsys, "pretrain")
    assert ", ".join(defaults.ACTIVATIONS) in pretrain and ", ".join(defaults.LOSSES) in pretrain
    assert ", ".join(defaults.PLOTS) + ", or all" in rendered_help(capsys, "plot")


# ---- --json: one object ----------------------------------------------------------------------------
def test_every_json_output_is_exactly_one_object(capsys, xor_run):
    run_dir, train_out, _ = xor_run
    outputs = {"train": train_out}
    for name, args in {
        "datasets": ["datasets", "--json"],
        "plot": ["plot", str(run_dir), "--what", "curves", "--json"],
        "summary": ["summary", "2-4-2", "--json"],
        "evaluate": ["evaluate", str(run_dir), "--json"],
    }.items():
        code, outputs[name], _ = run_cli(capsys, *args)
        assert code == 0, name
    for name, out in outputs.items():
        found = json_lines(out)
        assert len(found) == 1 and isinstance(found[0], dict), name
        assert json.loads(out.strip().splitlines()[-1]) == found[0], name
    datasets = json_lines(outputs["datasets"])[0]["datasets"]
    assert datasets[0]["name"] == "digits" and {"xor", "moons"} <= {d["name"] for d in datasets}
    assert json_lines(outputs["plot"])[0]["plots"] == [str(run_dir / "plots" / "curves.png")]


# ---- evaluate's confusion matrix -------------------------------------------------------------------
def test_evaluate_prints_the_confusion_matrix(capsys, xor_run):
    run_dir, *_ = xor_run
    _, text, _ = run_cli(capsys, "evaluate", str(run_dir))
    _, as_json, _ = run_cli(capsys, "evaluate", str(run_dir), "--json")
    matrix = json.loads(as_json.strip().splitlines()[-1])["confusion_matrix"]
    lines = text.splitlines()
    start = lines.index("confusion matrix (rows: true class, columns: predicted class):")
    header, rows = lines[start + 1], lines[start + 2 : start + 4]
    assert header.split() == ["0", "1"]
    assert [[int(v) for v in row.split()[1:]] for row in rows] == matrix
    assert sum(map(sum, matrix)) == int(re.search(r"\((\d+) samples\)", text)[1])
    assert len({len(row) for row in [header, *rows]}) == 1  # aligned columns


def test_confusion_lines_stay_readable_for_many_classes():
    k = MAX_TABLE_CLASSES + 5
    matrix = np.eye(k, dtype=int) * 50
    matrix[3, 7], matrix[10, 2], matrix[0, 1] = 9, 4, 1
    lines = confusion_lines(matrix.tolist(), [f"class{i}" for i in range(k)])
    assert lines[0].startswith(f"confusion matrix: {k} x {k}")
    assert lines[1:] == ["  class3 -> class7: 9", "  class10 -> class2: 4", "  class0 -> class1: 1"]
    small = confusion_lines([[12, 0, 1], [0, 9, 0], [2, 0, 100]], ["cat", "dog", "bird"])
    assert small[1:] == ["           0   1   2", "  0 cat   12   0   1", "  1 dog    0   9   0", "  2 bird   2   0 100"]


# ---- finding 8: plots follow the decision rule ----------------------------------------------------
@pytest.mark.parametrize(
    ("data", "model", "encoding"),
    [("xor", "2-8:tanh-1:tanh", "tanh"), ("moons", "2-8:tanh-2:sigmoid", "sigmoid")],
)
def test_plots_of_a_squared_error_classifier(capsys, tmp_path, data, model, encoding):
    """`plot --what all` died on the float outputs, and `--what boundary` coloured one raw output."""
    from capas.api.evaluate import evaluate
    from capas.diagnostics import plots_model
    from capas.train.rundir import load_run

    run_dir = tmp_path / "run"
    args = ["train", "--data", data, "--model", model, "--loss", "mse_half_sum", "--target-encoding", encoding]
    code, _, err = run_cli(capsys, *args, "--epochs", "15", "--lr", "0.03", "--out", str(run_dir), "--quiet")
    assert code == 0, err
    code, out, err = run_cli(capsys, "plot", str(run_dir), "--what", "all", "--json")
    assert code == 0, err
    names = {p.rsplit("/", 1)[-1] for p in json.loads(out.strip().splitlines()[-1])["plots"]}
    assert {"confusion.png", "boundary.png"} <= names
    run = load_run(run_dir)
    network, evaluation = run.build_model(), evaluate(run_dir)
    from capas.data.subsets import reload_dataset

    dataset = reload_dataset(run.config["data"])
    loss = run.loss(2)
    matrix = plots_model.confusion(network, dataset.x_test, dataset.y_test, 2, loss)
    assert matrix.tolist() == evaluation.metrics["confusion_matrix"]  # the plot's classes are evaluate's
    gx, gy, grid = plots_model.boundary_grid(network, dataset.x_train, 30, loss)
    assert grid.dtype == np.int64 and set(np.unique(grid)) <= {0, 1}
    with torch.no_grad():
        outputs = network(torch.tensor(np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2), dtype=torch.float32))
    expected = (outputs[:, 0] > 0).long() if outputs.shape[1] == 1 else outputs.argmax(1)  # tanh codes: midpoint 0
    assert np.array_equal(grid.ravel(), expected.numpy())


# ---- finding 9a: an output activation that contradicts the loss -----------------------------------
def test_an_output_activation_contradicting_cross_entropy_is_refused(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--model", "64-30-10:tanh", "--epochs", "1", "--out", str(tmp_path / "r"))
    assert code == 2
    assert err.strip().splitlines() == [
        "error: loss cross_entropy is computed from the logits of a softmax output, but the last token's ':tanh' "
        "gives tanh outputs; drop it (the loss sets softmax) or use a squared-error loss (mse, mse_half_sum) for "
        "tanh outputs"
    ]
    with pytest.raises(SpecError, match="binary_cross_entropy is computed from the logits of a sigmoid output"):
        build("4-1", loss="binary_cross_entropy", output_act="tanh")
    with pytest.raises(SpecError, match="sets the output activation to tanh but output_act is sigmoid"):
        build("4-3:tanh", loss="mse", output_act="sigmoid")
    assert build("4-3:softmax").options["output_act"] == "softmax"


def test_a_squared_error_net_records_the_output_activation_it_has(capsys, tmp_path):
    run_dir = tmp_path / "r"
    code, _, err = run_cli(
        capsys, "train", "--model", "64-30-10:tanh", "--loss", "mse", "--epochs", "1", "--out", str(run_dir), "--quiet"
    )
    assert code == 0, err
    config = json.loads((run_dir / "model.json").read_text())
    assert config["output_act"] == "tanh"
    network = Network.from_config(config)
    assert network.layers[-1].activation.name == "tanh"
    older = {**config, "output_act": "linear"}  # what model.json said before: the token still decides
    assert Network.from_config(older).options["output_act"] == "tanh"
