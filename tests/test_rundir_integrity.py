"""Run directories survive kills, full disks and Ctrl-C, and their files are group-readable.

The kill loop runs small fits (and greedy pre-trainings) in children of one fork server
(``tests/forkserver.py``: torch imported once, one thread, so weights compare bit for bit),
each killed with a real SIGKILL, by a timer at a random moment or at a chosen point inside a
checkpoint write (fault injection, see ``forkserver.FAULTS``). After every kill the
directory must hold one consistent checkpoint (or, killed before its ``config.json``, no run
at all), and a resume must end with the weights, history and metrics of an uninterrupted
run, with no temporary file left.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
from pathlib import Path

import pytest
import torch
from forkserver import EPOCHS, FAULTS
from safetensors import SafetensorError

import capas
from capas.api.pretrain import pretrain, resume_pretrain
from capas.errors import RunDirError, TrainingInterrupted
from capas.train import rundir


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp"))


def without_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in records]


def assert_same_weights(run: Path, reference: Path, name: str = "weights.safetensors") -> None:
    """Bit for bit: every tensor equal, same metadata (not the bytes: safetensors writes its
    metadata from a hash map, in an order that changes between processes)."""
    (ours, our_meta), (theirs, their_meta) = rundir.read_tensors(run / name), rundir.read_tensors(reference / name)
    assert our_meta == their_meta and ours.keys() == theirs.keys(), name
    for key, tensor in theirs.items():
        assert torch.equal(ours[key], tensor), (name, key)


def assert_same_run(run: Path, reference: Path) -> None:
    """``run`` ended exactly as ``reference``: weights, history, metrics; nothing left over."""
    assert_same_weights(run, reference)
    history = [json.loads((d / "history.json").read_text()) for d in (run, reference)]
    assert without_seconds(history[0]) == without_seconds(history[1])
    assert len((run / "history.csv").read_text().splitlines()) == EPOCHS + 1
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    state = json.loads((run / "state.json").read_text())
    assert state["finished"] is True and state["epoch"] == EPOCHS
    assert sorted(p.name for p in run.glob("state-*")) == [f"state-{EPOCHS:06d}.safetensors"]
    assert temporaries(run) == []


def epochs_done(run: Path) -> int:
    return json.loads((run / "state.json").read_text())["epoch"]


def finished(run: Path) -> bool:
    return json.loads((run / "state.json").read_text())["finished"]


def check_killed_run(run: Path) -> bool:
    """After a kill: True if ``run`` holds a run with one consistent checkpoint (both files
    of one epoch); False if it was killed before its config.json, i.e. holds no run."""
    if not (run / "config.json").exists():
        with pytest.raises(RunDirError, match="config.json"):
            rundir.load_run(run)
        return False
    weights, state, _ = rundir.load_run(run).checkpoint()
    assert weights and 0 <= state["epoch"] <= EPOCHS
    return True


def test_twenty_sigkills_inside_and_between_checkpoint_writes_always_resume_to_the_same_weights(fork_server, tmp_path):
    server = fork_server
    reference = tmp_path / "reference"
    result, seconds = server.run(kind="fit", out=str(reference), resume=False)
    assert result == {"signal": 0, "code": 0}
    rng = random.Random(20)
    kills, chains, faults_seen, names = 0, 0, set(), iter(range(100))
    run, resume, chain_kills = tmp_path / f"run{next(names)}", False, 0
    while kills < 20:
        fault = rng.choice([*FAULTS, "timer", "timer"])
        done = epochs_done(run) if resume else 0
        left = EPOCHS - done  # checkpoints still to write (a fresh run also writes epoch 0's)
        calls = {"before_state_json": left + 1, "before_replace": left + 1, "mid_tensor_write": left}
        calls.update(before_weights=left + 2, before_history=left + 2)
        if fault == "timer" or calls[fault] < 1:
            spec = {"delay": rng.uniform(0.0, seconds * (0.9 if not resume else 0.6))}
        else:
            spec = {"fault": fault, "nth": rng.randint(1, calls[fault])}
        result, _ = server.run(kind="fit", out=str(run), resume=resume, **spec)
        if result["signal"] == signal.SIGKILL:
            kills, chain_kills = kills + 1, chain_kills + 1
            faults_seen.add(spec.get("fault", "timer"))
            if fault == "before_history" and (run / "config.json").exists():  # at most one epoch behind
                state_epochs = len(json.loads((run / "state.json").read_text())["history"])
                assert len(json.loads((run / "history.json").read_text())) in (state_epochs - 1, state_epochs)
            resume = check_killed_run(run)
            if not resume:  # killed before its config.json: nothing to resume; start it again elsewhere
                run, chain_kills = tmp_path / f"run{next(names)}", 0
            elif chain_kills < 5 and not finished(run):  # a timer may fire after the run's last write
                continue
        else:
            assert result == {"signal": 0, "code": 0}, (spec, server.log.read_text()[-3000:])
        if (run / "config.json").exists():  # finish the chain without a kill, and compare
            if not finished(run):
                assert server.run(kind="fit", out=str(run), resume=True)[0] == {"signal": 0, "code": 0}
            assert_same_run(run, reference)
            chains += 1
        run, resume, chain_kills = tmp_path / f"run{next(names)}", False, 0
    if (run / "config.json").exists():
        assert server.run(kind="fit", out=str(run), resume=True)[0] == {"signal": 0, "code": 0}
        assert_same_run(run, reference)
        chains += 1
    assert chains >= 4 and faults_seen == {*FAULTS, "timer"}


def test_a_killed_pretraining_resumes_to_the_same_weights(fork_server, tmp_path):
    server = fork_server
    reference = tmp_path / "reference"
    assert server.run(kind="pretrain", out=str(reference), resume=False)[0] == {"signal": 0, "code": 0}
    rng = random.Random(6)
    for trial, fault in enumerate(("before_state_json", "mid_tensor_write", "before_weights", "before_history")):
        run = tmp_path / f"run{trial}"
        result, _ = server.run(kind="pretrain", out=str(run), resume=False, fault=fault, nth=rng.randint(2, 8))
        assert result["signal"] == signal.SIGKILL
        assert not json.loads((run / "pretrain.json").read_text())["finished"]
        assert server.run(kind="pretrain", out=str(run), resume=True)[0] == {"signal": 0, "code": 0}
        for name in ("weights.safetensors", "pretrain.safetensors"):
            assert_same_weights(run, reference, name)
        assert temporaries(run) == []


# ---- full disk --------------------------------------------------------------------------------
X = torch.randn(192, 6, generator=torch.Generator().manual_seed(1))
Y = (X[:, 0] > 0).long()
FIT = {"epochs": 4, "batch_size": 32, "seed": 2, "quiet": True}


def full_disk_at(monkeypatch, nth: int, error: Exception) -> None:
    """The ``nth`` safetensors write (counting checkpoints and weights) fails with ``error``."""
    real, calls = rundir.save_file, [0]

    def save_file(tensors, path, metadata=None):
        calls[0] += 1
        if calls[0] == nth:
            Path(path).write_bytes(b"half a file")
            raise error
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(rundir, "save_file", save_file)


@pytest.mark.parametrize(
    "nth, error, written, intact",
    [
        (5, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "state-000002.safetensors", 1),
        (4, OSError(errno.EIO, os.strerror(errno.EIO)), "weights.safetensors", 1),
        (3, SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"), "state-", 0),
    ],
)
def test_a_full_disk_stops_with_one_line_and_the_run_resumes(tmp_path, monkeypatch, nth, error, written, intact):
    """Writes go tensors, weights per checkpoint (epoch 0: calls 1-2, epoch 1: 3-4...)."""
    reference = capas.fit("6-8-2", (X, Y), out=tmp_path / "reference", **FIT)
    run = tmp_path / "run"
    full_disk_at(monkeypatch, nth, error)
    with pytest.raises(RunDirError) as caught:
        capas.fit("6-8-2", (X, Y), out=run, **FIT)
    message = str(caught.value)
    assert "\n" not in message and written in message and f"the last checkpoint (epoch {intact}) is intact" in message
    disk_full = getattr(error, "errno", errno.ENOSPC) == errno.ENOSPC
    assert message.startswith("no space left on device" if disk_full else "input/output error")
    assert f"resume with: capas.fit(model, data, resume={str(run)!r})" in message
    assert temporaries(run) == []
    monkeypatch.undo()
    resumed = capas.fit("6-8-2", (X, Y), resume=run)
    assert_same_weights(run, tmp_path / "reference")
    assert without_seconds(list(resumed.history)) == without_seconds(list(reference.history))


def test_a_full_disk_during_pretraining_names_capas_pretrain_resume(tmp_path, monkeypatch):
    settings = {"method": "ae", "layer_epochs": [2, 2], "batch_size": 64, "seed": 1, "quiet": True}
    pretrain(X, "6-5-4-2", out=tmp_path / "reference", **settings)
    run = tmp_path / "run"
    full_disk_at(monkeypatch, 9, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))  # stage 2, epoch 1
    with pytest.raises(RunDirError, match=f"no space left on device while writing {run / 'stage2'}") as caught:
        pretrain(X, "6-5-4-2", out=run, **settings)
    assert f"free some space and resume with: capas pretrain --resume {run}" in str(caught.value)
    assert temporaries(run) == []
    monkeypatch.undo()
    resume_pretrain(run, data=X, quiet=True)
    for name in ("weights.safetensors", "pretrain.safetensors"):
        assert_same_weights(run, tmp_path / "reference", name)


# ---- Ctrl-C ------------------------------------------------------------------------------------
class CtrlC(capas.Callback):
    def on_epoch_end(self, trainer, epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt


def test_ctrl_c_in_python_says_where_it_stopped_and_the_run_resumes(tmp_path):
    reference = capas.fit("6-8-2", (X, Y), out=tmp_path / "reference", **FIT)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as caught:
        capas.fit("6-8-2", (X, Y), out=run, callbacks=[CtrlC()], **FIT)
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.exit_code == 130
    assert str(caught.value) == (
        f"interrupted during epoch 2; the last checkpoint (epoch 1) is in {run}; "
        f"continue with: capas.fit(model, data, resume={str(run)!r})"
    )
    capas.fit("6-8-2", (X, Y), resume=run)
    assert_same_weights(run, tmp_path / "reference")
    assert len(reference.history) == FIT["epochs"]


@pytest.mark.parametrize(
    "command, args, nth",
    [
        ("train", ["--data", "digits", "--model", "64-16-10", "--epochs", "6", "--batch-size", "64", "--quiet"], 3),
        ("pretrain", ["--data", "digits", "--model", "64-12-8-10", "--epochs", "3", "--quiet"], 6),
    ],
)
def test_sigint_exits_130_naming_the_resume_command_and_the_run_resumes_to_the_same_weights(
    fork_server, tmp_path, command, args, nth
):
    """A real SIGINT to a ``capas train`` (``capas pretrain``) process in the middle of an epoch."""

    def cli(*argv, **fault):
        reply, _ = fork_server.run(
            kind="cli", args=[command, *argv], cwd=str(tmp_path), stdout="out.txt", stderr="err.txt", **fault
        )
        return reply["code"], (tmp_path / "err.txt").read_text()

    assert cli(*args, "--out", "reference")[0] == 0
    code, stderr = cli(*args, "--out", "run", fault="sigint", nth=nth)
    assert code == 130, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert re.fullmatch(
        rf"interrupted during epoch \d+; the last checkpoint \(epoch \d+\) is in run\S*; "
        rf"continue with: capas {command} --resume run\n",
        stderr,
    ), stderr
    assert cli("--resume", "run", "--quiet")[0] == 0
    for name in ("weights.safetensors", *(["pretrain.safetensors"] if command == "pretrain" else [])):
        assert_same_weights(tmp_path / "run", tmp_path / "reference", name)


# ---- permissions -------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_run_files_are_as_readable_as_a_plain_open_makes_them(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        capas.fit("6-8-2", (X, Y), out=tmp_path / "run", **FIT)
        plain = tmp_path / "plain"
        plain.write_text("x")
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert plain.stat().st_mode & 0o777 == mode
    assert (
        modes == dict.fromkeys(modes, mode) and "state-000004.safetensors" in modes and "weights.safetensors" in modes
    )


class StopAfter2(capas.Callback):
    def on_epoch_end(self, trainer, epoch, record):
        if epoch == 2:
            trainer.stop_training, trainer.stop_reason = True, "stopped by the test at epoch 2"


def test_a_run_stopped_early_and_interrupted_while_writing_its_results_resumes_to_write_them(tmp_path, monkeypatch):
    """The last checkpoint of an early-stopped run is committed, metrics.json not yet: the
    resume trains no further epoch and writes the results an uninterrupted run writes."""
    reference = capas.fit("6-8-2", (X, Y), out=tmp_path / "reference", callbacks=[StopAfter2()], **FIT)
    run, real = tmp_path / "run", rundir.write_json

    def ctrl_c_at_metrics(path, data):
        if Path(path).name == "metrics.json":
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(rundir, "write_json", ctrl_c_at_metrics)
    with pytest.raises(
        TrainingInterrupted, match=r"^interrupted while writing the run's results; the last checkpoint \(epoch 2\)"
    ):
        capas.fit("6-8-2", (X, Y), out=run, callbacks=[StopAfter2()], **FIT)
    monkeypatch.undo()
    state = json.loads((run / "state.json").read_text())
    assert state["stopped"] and not state["finished"] and not (run / "metrics.json").exists()
    resumed = capas.fit("6-8-2", (X, Y), resume=run)
    assert len(resumed.history) == 2 and resumed.stop_reason == reference.stop_reason
    assert json.loads((run / "metrics.json").read_text()) == json.loads(
        (tmp_path / "reference" / "metrics.json").read_text()
    )
    assert json.loads((run / "state.json").read_text())["finished"] is True
    assert_same_weights(run, tmp_path / "reference")


def test_a_history_json_one_commit_behind_is_completed_silently(tmp_path):
    """A kill between committing state.json and refreshing history.json leaves history.json a
    prefix of the checkpoint's history: reading the run completes it without a warning."""
    import warnings

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    y = (x[:, 0] > 0).long()
    capas.fit(capas.build("4-5-2", seed=0), (x, y), epochs=3, quiet=True, out=tmp_path / "run")
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    (tmp_path / "run" / "history.json").write_text(json.dumps(history[:2]))  # one commit behind
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(rundir.load_run(tmp_path / "run").history) == 3
