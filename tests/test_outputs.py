"""Outputs are claimed before any work: nothing overwritten, nothing written where it cannot be.

Issue 20, findings 3 (silent overwrites), 4 (recipe names escaping the output folder),
5 (a refused resume that had already rewritten config.json) and 10 (unwritable outputs and
data folders: a traceback, after the data had loaded). Tests run as root in CI, where
chmod does not stop a write, so read-only and forbidden places are simulated by making the
OS calls fail with the errno a read-only mount or a permission gives; /proc, /sys and a
file in the way are real.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import capas
import capas.data
from capas.api import outputs
from capas.api.evaluate import evaluate
from capas.api.fit import FitResult
from capas.api.fit import resume as resume_run
from capas.api.outputs import check_output_file, claim_output_dir
from capas.api.pretrain import pretrain
from capas.api.recipes import load_recipe, run_recipe
from capas.cli import main
from capas.data import downloads
from capas.errors import CapasError, DataError, RunDirError, TrainingError, TrainingInterrupted
from capas.train import rundir
from capas.train.callbacks import Callback

TINY = {"epochs": 2, "batch_size": 50, "quiet": True}


def fit_xor(out: Path, **options) -> FitResult:
    return capas.fit("2-4-2", "xor", out=out, **{**TINY, **options})


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit 2 and one ``error:`` line; return that line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "xor"
    fit_xor(out)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- finding 3: every writer refuses an existing non-empty output ------------------------------


def test_fit_refuses_an_existing_run_and_leaves_it_as_it_was(xor_run):
    before = snapshot(xor_run)
    with pytest.raises(RunDirError, match=r"already exists and is not empty \(it holds .*config.json"):
        fit_xor(xor_run, seed=1)
    assert snapshot(xor_run) == before


def test_pretrain_refuses_an_existing_output_before_loading_data(tmp_path, monkeypatch):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    monkeypatch.setattr(capas.data, "load", lambda *a, **k: pytest.fail("data loaded before the output was checked"))
    with pytest.raises(RunDirError, match="already exists and is not empty"):
        pretrain("digits", "64-8-10", epochs=1, out=taken, quiet=True)
    assert (taken / "notes.txt").read_text() == "mine" and len(list(taken.iterdir())) == 1


def test_capas_run_refuses_an_existing_folder_and_a_rerun_names_resume(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "tiny"\n[data]\nname = "xor"\n[model]\nspec = "{input}-3-{classes}"\n[train]\nepochs = 1\n'
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    err = one_line_error(capsys, ["run", str(recipe), "--out", str(other), "--quiet"])
    assert "already exists and is not empty (it holds keep.txt); choose another --out" in err
    run_recipe(recipe, out=tmp_path / "o", quiet=True)
    before = snapshot(tmp_path / "o")
    err = one_line_error(capsys, ["run", str(recipe), "--out", str(tmp_path / "o"), "--quiet"])
    assert f"continue it with: capas run --resume {tmp_path / 'o'}" in err
    assert snapshot(tmp_path / "o") == before


def test_predict_never_writes_onto_its_input_a_run_or_an_existing_file(xor_run, tmp_path, capsys):
    x = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    inputs = tmp_path / "x.npy"
    np.save(inputs, x)
    saved = inputs.read_bytes()
    err = one_line_error(capsys, ["predict", str(xor_run), str(inputs), "--out", str(inputs)])
    assert "is the input file itself" in err and inputs.read_bytes() == saved
    history = (xor_run / "history.csv").read_bytes()
    err = one_line_error(capsys, ["predict", str(xor_run), str(inputs), "--out", str(xor_run / "history.csv")])
    assert "inside the capas run directory" in err and (xor_run / "history.csv").read_bytes() == history
    out = tmp_path / "p.csv"
    out.write_text("mine\n")
    err = one_line_error(capsys, ["predict", str(xor_run), str(inputs), "--out", str(out)])
    assert "already exists; choose another --out file, or add --force" in err and out.read_text() == "mine\n"
    main_ok(["predict", str(xor_run), str(inputs), "--out", str(out), "--force"])
    assert np.loadtxt(out, delimiter=",").shape == (2,)


def main_ok(argv: list[str]) -> None:
    try:
        main(argv)
    except SystemExit as exit_info:
        assert exit_info.code in (0, None)


def test_evaluate_out_does_not_replace_a_run_file_or_an_existing_report(xor_run, tmp_path, capsys):
    metrics = (xor_run / "metrics.json").read_bytes()
    err = one_line_error(capsys, ["evaluate", str(xor_run), "--out", str(xor_run / "metrics.json")])
    assert "inside the capas run directory" in err and (xor_run / "metrics.json").read_bytes() == metrics
    report = tmp_path / "e.json"
    report.write_text("{}")
    one_line_error(capsys, ["evaluate", str(xor_run), "--out", str(report)])
    assert report.read_text() == "{}"
    main_ok(["evaluate", str(xor_run), "--out", str(report), "--force", "--json"])
    assert "test_accuracy" in json.loads(report.read_text())


def test_evaluate_refuses_a_directory_mixing_two_runs(xor_run, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in xor_run.iterdir():  # a finished 2-epoch run...
        if path.is_file():
            (mixed / path.name).write_bytes(path.read_bytes())
    other = fit_xor(tmp_path / "other", epochs=1, seed=3).run_dir  # ...then another run's weights and history
    for name in ("weights.safetensors", "history.json"):
        (mixed / name).write_bytes((other / name).read_bytes())
    with pytest.raises(RunDirError, match="mixes files of different runs: metrics.json reports 2 epochs, history.json"):
        evaluate(mixed)
    wider = capas.fit("2-5-2", "xor", out=tmp_path / "wider", **TINY).run_dir  # weights that do not fit model.json
    (mixed / "weights.safetensors").write_bytes((wider / "weights.safetensors").read_bytes())
    with pytest.raises(RunDirError, match="do not fit this model"):
        evaluate(mixed)
    intact = evaluate(xor_run).metrics  # the run itself still evaluates to what fit reported
    assert intact["test_accuracy"] == pytest.approx(json.loads((xor_run / "metrics.json").read_text())["test_accuracy"])


# ---- finding 4: recipe names are plain folder names ---------------------------------------------


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/b", "", ".", "..", ".hidden", "a\\b", "x" * 101])
def test_a_recipe_name_that_is_not_a_plain_folder_name_is_refused(tmp_path, name):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = {json.dumps(name)}\n[data]\nname = "xor"\n[model]\nspec = "2-3-2"\n')
    with pytest.raises(CapasError, match=rf"^{recipe}: name: .* is not a plain folder name"):
        load_recipe(recipe)
    recipe.write_text('name = "fine"\n[data]\nname = "xor"\n[model]\nspec = "2-3-2"\n')
    assert load_recipe(recipe).name == "fine"
    with pytest.raises(CapasError, match=rf"^{recipe}: name: .* is not a plain folder name"):
        load_recipe(recipe, {"name": name})  # --set name=...


def test_a_bad_name_in_capas_run_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "ok"\n[data]\nname = "xor"\n[model]\nspec = "2-3-2"\n[train]\nepochs = 1\n')
    err = one_line_error(capsys, ["run", str(recipe), "--set", "name=../../escape", "--quiet"])
    assert "name: '../../escape' is not a plain folder name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]


# ---- finding 5: a resume checks first and writes config.json only when it trains -----------------


class _StopAt(Callback):
    """Ctrl-C at the end of an epoch (the loop turns it into TrainingInterrupted)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def assert_same_results(run: Path, reference: Path) -> None:
    """Same history (but seconds), metrics and weights: ``run`` ended as ``reference``."""
    history = [
        [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((d / "history.json").read_text())]
        for d in (run, reference)
    ]
    assert history[0] == history[1]
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    ours, theirs = rundir.load_model(run), rundir.load_model(reference)
    for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_finished_run_trains_on_with_more_epochs_exactly_as_a_longer_run(tmp_path):
    fit_xor(tmp_path / "longer", epochs=6)
    out = tmp_path / "run"
    fit_xor(out, epochs=3)
    result = resume_run(out, epochs=6, quiet=True)
    assert len(result.history) == 6 and json.loads((out / "config.json").read_text())["train"]["epochs"] == 6
    assert_same_results(out, tmp_path / "longer")
    config = (out / "config.json").read_bytes()
    with pytest.raises(RunDirError, match=r"already finished \(6 epochs\); nothing to resume. .*epochs above 6"):
        resume_run(out, quiet=True)
    assert (out / "config.json").read_bytes() == config


def test_an_extension_interrupted_before_its_first_checkpoint_resumes_to_its_new_length(tmp_path):
    fit_xor(tmp_path / "longer", epochs=6)
    out = tmp_path / "run"
    fit_xor(out, epochs=3, checkpoint_every=10)
    with pytest.raises(TrainingInterrupted):  # Ctrl-C in epoch 4: state.json still says finished at 3
        capas.fit("2-4-2", "xor", resume=out, epochs=6, quiet=True, callbacks=[_StopAt(4)])
    state = json.loads((out / "state.json").read_text())
    assert state["finished"] is True and state["epoch"] == 3
    resume_run(out, quiet=True)  # config.json already says 6
    assert_same_results(out, tmp_path / "longer")


def test_an_extension_interrupted_after_a_new_checkpoint_still_evaluates(tmp_path):
    out = tmp_path / "run"
    fit_xor(out, epochs=3)
    with pytest.raises(TrainingInterrupted):  # Ctrl-C in epoch 5: epoch 4 checkpointed, metrics.json is epoch 3's
        capas.fit("2-4-2", "xor", resume=out, epochs=6, quiet=True, callbacks=[_StopAt(5)])
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3
    assert len(json.loads((out / "history.json").read_text())) == 4
    assert evaluate(out).metrics["test_loss"] > 0  # its last checkpoint, not "files of two runs"


def test_finished_runs_that_cannot_train_on_are_refused_and_left_alone(xor_run, tmp_path):
    stopped = tmp_path / "stopped"
    fit_xor(stopped, epochs=50, target_loss=10.0)  # converged after its first epoch
    cosine = tmp_path / "cosine"
    fit_xor(cosine, epochs=3, scheduler="cosine")
    cases = [
        (xor_run, None, RunDirError, r"already finished \(2 epochs\).*epochs above 2"),
        (stopped, 60, RunDirError, r"stopped at epoch 1 \(converged: train_loss .*\); a stopped run is not trained on"),
        (cosine, 6, TrainingError, "cosine LR schedule spans its 3 epochs"),
    ]
    for run, epochs, error, message in cases:
        before = snapshot(run)
        with pytest.raises(error, match=message):
            resume_run(run, epochs=epochs, quiet=True)
        assert snapshot(run) == before


def test_resuming_with_no_more_epochs_than_done_is_refused_and_more_are_recorded(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        fit_xor(out, epochs=5, callbacks=[_StopAt(3)])
    done = json.loads((out / "state.json").read_text())["epoch"]
    config = (out / "config.json").read_bytes()
    for epochs in (1, done):
        with pytest.raises(TrainingError, match=f"has already trained {done} epochs; give epochs above {done}"):
            resume_run(out, epochs=epochs, quiet=True)
        assert (out / "config.json").read_bytes() == config
    result = resume_run(out, epochs=6, quiet=True)
    assert len(result.history) == 6
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 6
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 6


# ---- finding 10: unwritable outputs are refused first, in one line --------------------------------


def test_an_output_that_is_a_file_or_in_proc_or_sys_is_refused(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a directory"):
        claim_output_dir(taken)
    with pytest.raises(RunDirError, match="a parent is a file"):
        claim_output_dir(taken / "run")
    for path in ("/proc/capas-run", "/sys/capas-run", "/proc/self"):
        with pytest.raises(RunDirError, match="kernel's virtual file system"):
            claim_output_dir(path)
    assert taken.read_text() == "x"


@pytest.mark.parametrize(
    ("code", "reason"), [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")]
)
def test_an_unwritable_output_is_named_with_its_reason_and_nothing_is_left(tmp_path, monkeypatch, code, reason):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # the directory exists (or is made) but takes no file
    with pytest.raises(RunDirError, match=re.escape(f"cannot write to {tmp_path / 'a' / 'b'}: {reason};")):
        claim_output_dir(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []  # the directories the probe made are gone again
    monkeypatch.undo()
    monkeypatch.setattr(os, "mkdir", refuse)
    with pytest.raises(RunDirError, match=reason):
        claim_output_dir(tmp_path / "new")


def test_a_read_only_directory_is_refused_by_the_probe(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a 0o555 directory; the errno tests above cover this case")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(RunDirError, match="permission denied"):
            claim_output_dir(locked / "run")
    finally:
        locked.chmod(0o755)


def test_capas_train_checks_the_output_before_loading_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(capas.data, "load", lambda *a, **k: pytest.fail("data loaded before the output was checked"))
    taken = tmp_path / "file"
    taken.write_text("")
    assert "is a file" in one_line_error(capsys, ["train", "--out", str(taken), "--quiet"])
    assert "virtual file system" in one_line_error(capsys, ["train", "--out", "/proc/capas-run", "--quiet"])
    assert "virtual file system" in one_line_error(capsys, ["pretrain", "--model", "64-8-10", "--out", "/sys/x"])
    monkeypatch.setattr(
        outputs.tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only"))
    )
    assert "read-only file system" in one_line_error(capsys, ["train", "--out", str(tmp_path / "r"), "--quiet"])


def test_output_files_are_checked_for_suffix_directory_and_writability(tmp_path, monkeypatch):
    with pytest.raises(CapasError, match="must be a .npy or .csv file, got"):
        check_output_file(tmp_path / "p.txt", suffixes=(".npy", ".csv"))
    with pytest.raises(CapasError, match="in an existing directory"):
        check_output_file(tmp_path / "no" / "p.csv", suffixes=(".csv",))
    with pytest.raises(RunDirError, match="virtual file system"):
        check_output_file(Path("/proc/p.csv"), suffixes=(".csv",))
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "ro")))
    with pytest.raises(RunDirError, match="read-only file system"):
        check_output_file(tmp_path / "p.csv", suffixes=(".csv",))


def test_a_read_only_data_folder_loads_what_it_holds_and_says_how_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "fashion-mnist.npz", x=rng.integers(0, 255, (600, 28, 28), dtype=np.uint8), y=np.arange(600) % 10
    )

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(downloads.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(Path, "mkdir", read_only)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("connected before checking the folder"))
    assert len(capas.data.load("fashion-mnist").x_train) > 0  # present: read, nothing written
    with pytest.raises(
        DataError, match=r"\(read-only file system\); point CAPAS_DATA at a folder you can write"
    ) as info:
        capas.data.load("semeion")
    assert str(tmp_path / "semeion") in str(info.value)


def test_a_full_disk_during_a_download_is_a_data_error_and_leaves_nothing(tmp_path, monkeypatch):
    source = tmp_path / "src.bin"
    source.write_bytes(b"x" * 1000)
    real_copy = downloads._copy

    def full(response, out, *args, **kwargs):
        real_copy(response, out, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(downloads, "_copy", full)
    remote = downloads.RemoteFile(source.as_uri(), "f.bin", ("sha256", "0" * 64))
    with pytest.raises(DataError, match="no space left on device"):
        downloads.download(remote, tmp_path / "cache" / "f.bin")
    assert list((tmp_path / "cache").iterdir()) == []


def test_claiming_an_empty_or_absent_directory_writes_nothing(tmp_path):
    assert claim_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    claim_output_dir(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
