"""Two writers never share a run directory: the second is refused by the directory's lock
(or, arriving after the first finished, by the run it finds there), and default run names
(``runs/<data>-<second>``) get a ``-2``, ``-3``... suffix instead of colliding."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch

import capas
from capas.api.pretrain import pretrain, resume_pretrain
from capas.errors import RunDirError, TrainingInterrupted
from capas.train import rundir

X = torch.randn(128, 6, generator=torch.Generator().manual_seed(3))
Y = (X[:, 1] > 0).long()
FIT = {"epochs": 3, "batch_size": 32, "seed": 1, "quiet": True}


class StopAt(capas.Callback):
    def on_epoch_end(self, trainer, epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt


def test_a_second_writer_is_refused_naming_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        capas.fit("6-4-2", (X, Y), out=run, callbacks=[StopAt()], **FIT)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with rundir.lock(run):  # another fit (here: this process, through a second open file) holds it
        with pytest.raises(RunDirError) as caught:
            capas.fit("6-4-2", (X, Y), resume=run)
    assert str(caught.value) == (
        f"{run} is being written by another capas process (pid {os.getpid()}); wait for it to finish, "
        "or write to another directory"
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written
    capas.fit("6-4-2", (X, Y), resume=run)  # released: the resume goes through
    assert json.loads((run / "state.json").read_text())["finished"] is True


def test_a_fresh_run_arriving_after_another_finished_is_refused_under_the_lock(tmp_path):
    """Both checked the directory was empty before loading data; the second starts after the
    first finished: the check under the lock refuses it instead of overwriting the run."""
    from capas.tasks import for_model
    from capas.train.config import TrainConfig
    from capas.train.loop import Trainer

    run = tmp_path / "run"
    capas.fit("6-4-2", (X, Y), out=run, **FIT)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    trainer = Trainer(for_model(capas.build("6-4-2")), TrainConfig.from_options(epochs=3, seed=1), quiet=True, out=run)
    with pytest.raises(RunDirError, match="already holds a capas run"):
        trainer.fit((X, Y))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_second_pretraining_of_the_same_directory_is_refused(tmp_path):
    run = tmp_path / "pre"
    with pytest.raises(TrainingInterrupted, match=f"continue with: capas pretrain --resume {run}"):
        pretrain(X, "6-5-4-2", method="ae", epochs=3, out=run, quiet=True, callbacks=[StopAt()])
    with rundir.lock(run):
        with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
            resume_pretrain(run, data=X, quiet=True)
    assert resume_pretrain(run, data=X, quiet=True).run_dir == run


def test_default_run_names_never_collide(tmp_path):
    names = [rundir.new_run_dir(tmp_path / "runs", "digits-20261130-120000") for _ in range(3)]
    assert [p.name for p in names] == ["digits-20261130-120000", "digits-20261130-120000-2", "digits-20261130-120000-3"]
    made: list[Path] = []
    threads = [
        threading.Thread(target=lambda: made.append(rundir.new_run_dir(tmp_path / "runs", "xor-1"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8 and all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_two_cli_runs_on_one_out_and_two_default_named_runs_started_together(fork_server, tmp_path):
    """Four ``capas train`` processes forked at the same moment: the two on one ``--out`` leave
    one run (the other exits 2 with one line naming the directory); the two without
    ``--out``, started in the same second, get two directories."""
    base = ["train", "--data", "xor", "--model", "2-8-2", "--epochs", "6", "--quiet"]
    commands = [[*base, "--out", "shared"], [*base, "--out", "shared"], base, base]
    jobs = [
        {"kind": "cli", "args": args, "cwd": str(tmp_path), "stdout": f"out{i}.txt", "stderr": f"err{i}.txt"}
        for i, args in enumerate(commands)
    ]
    replies, _ = fork_server.run(parallel=jobs)
    codes = [reply["code"] for reply in replies]
    outs = [(tmp_path / f"out{i}.txt").read_text() for i in range(4)]
    errs = [(tmp_path / f"err{i}.txt").read_text() for i in range(4)]
    assert sorted(codes[:2]) == [0, 2], (codes, errs)
    refusal = errs[codes.index(2)].strip()
    assert refusal.startswith("error: ") and "\n" not in refusal and "shared" in refusal, refusal
    run = rundir.load_run(tmp_path / "shared")
    weights, state, _ = run.checkpoint()
    assert state["finished"] and run.metrics["epochs"] == len(run.history) == 6
    assert all(torch.equal(weights[k], v) for k, v in run.weights().items())
    assert codes[2:] == [0, 0], errs[2:]
    made = sorted(d.name for d in (tmp_path / "runs").iterdir())
    printed = sorted(line.removeprefix("run directory: runs/") for out in outs[2:] for line in out.splitlines())
    assert len(made) == 2 and made == [name for name in printed if name in made]
    assert all((tmp_path / "runs" / name / "metrics.json").is_file() for name in made)


def test_a_default_named_run_that_fails_to_start_leaves_no_directory(tmp_path, monkeypatch, capsys):
    from capas.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as end:
        main(["train", "--data", "no-such-dataset", "--quiet"])
    assert end.value.code == 2 and capsys.readouterr().err.startswith("error: ")
    assert list((tmp_path / "runs").iterdir()) == []
