"""A killed greedy pre-training continues with ``capas pretrain --resume DIR`` (or
``capas.api.pretrain.resume_pretrain``) to exactly the weights of an uninterrupted run:
finished stages are loaded, the interrupted one resumes from its checkpoint, later ones run."""

import json
import random
import subprocess
import sys
import time

import pytest
import torch

import capas
from capas.api.pretrain import pretrain, resume_pretrain
from capas.cli import main
from capas.errors import RunDirError, TrainingError
from capas.train.rundir import read_tensors

SPEC = "64-16-8-10"


class InterruptStage(capas.Callback):
    """KeyboardInterrupt (Ctrl-C) at batch ``step`` of epoch ``epoch`` of the stage run in ``stage``."""

    def __init__(self, stage, epoch, step):
        self.stage, self.epoch, self.step, self.current = stage, epoch, step, 0

    def on_epoch_begin(self, trainer, epoch):
        self.current = epoch

    def on_batch_end(self, trainer, step, loss):
        if trainer.run_dir.name == self.stage and (self.current, step) == (self.epoch, self.step):
            raise KeyboardInterrupt


def without_timing(layers):
    return [[{k: v for k, v in point.items() if k != "seconds"} for point in layer["curve"]] for layer in layers]


@pytest.mark.parametrize("method, options", [("rbm", {"persistent": True, "k": 2}), ("dae", {})])
def test_a_pretraining_interrupted_in_stage_2_resumes_to_identical_weights(tmp_path, method, options):
    settings = dict(method=method, layer_epochs=[2, 3], batch_size=64, seed=4, quiet=True, **options)
    whole = pretrain("digits", SPEC, out=tmp_path / "whole", **settings)
    with pytest.raises(KeyboardInterrupt):
        pretrain("digits", SPEC, out=tmp_path / "cut", callbacks=[InterruptStage("stage2", 2, 5)], **settings)
    assert json.loads((tmp_path / "cut" / "pretrain.json").read_text())["finished"] is False
    assert not (tmp_path / "cut" / "weights.safetensors").exists()
    resumed = resume_pretrain(tmp_path / "cut", quiet=True)
    for name in ("weights.safetensors", "pretrain.safetensors"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    for name, tensor in whole.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[name], tensor), name
    assert without_timing(resumed.layers) == without_timing(whole.layers)
    with pytest.raises(RunDirError, match="already finished"):
        resume_pretrain(tmp_path / "cut")


def test_a_killed_capas_pretrain_resumes_to_the_same_weights(tmp_path):
    """``kill -9`` of a real ``capas pretrain`` at a random moment after stage 1's first
    checkpoint exists, then ``capas pretrain --resume``: weights.safetensors equals an
    uninterrupted run's, byte for byte."""
    args = [
        "pretrain",
        "--data",
        "digits",
        "--model",
        SPEC,
        "--method",
        "rbm",
        "--epochs",
        "12",
        "--batch-size",
        "16",
        "--persistent",
        "--seed",
        "1",
        "--quiet",
    ]
    main([*args, "--out", str(tmp_path / "whole")])
    killed = tmp_path / "killed"
    script = "import sys; from capas.cli import main; main(sys.argv[1:])"
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # where to kill: after a random checkpoint with 6 or more epochs to go (a fast machine
    # must not finish first), a random fraction of the next epoch
    stage, epoch = random.choice([1, 2]), random.randrange(6)
    state = killed / f"stage{stage}" / "state.json"
    deadline = time.monotonic() + 60
    try:
        while not (state.exists() and json.loads(state.read_text())["epoch"] >= epoch):
            assert process.poll() is None and time.monotonic() < deadline, f"ended before stage {stage}, epoch {epoch}"
            time.sleep(0.005)
        time.sleep(random.uniform(0.0, 0.05))
    finally:
        process.kill()  # SIGKILL: no cleanup, no final write
    assert process.wait() == -9, f"capas pretrain finished before it could be killed (stage {stage}, epoch {epoch})"
    assert not (killed / "weights.safetensors").exists()
    main(["pretrain", "--resume", str(killed), "--quiet"])
    whole, resumed = (read_tensors(path / "weights.safetensors")[0] for path in (tmp_path / "whole", killed))
    assert all(torch.equal(resumed[name], tensor) for name, tensor in whole.items())
    assert (killed / "weights.safetensors").read_bytes() == (tmp_path / "whole" / "weights.safetensors").read_bytes()


def test_resume_refuses_other_options_and_a_directory_that_is_not_a_pretraining(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--resume", str(tmp_path), "--epochs", "3", "--lr", "0.1"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "drop --epochs, --lr" in message
    with pytest.raises(RunDirError, match="no pretrain.json"):
        resume_pretrain(tmp_path)
    with pytest.raises(SystemExit):
        main(["pretrain", "--data", "digits", "--out", str(tmp_path / "run")])
    assert "needs --model" in capsys.readouterr().err


def test_cli_quiet_json_prints_only_the_summary(tmp_path, capsys):
    main(
        [
            "pretrain",
            "--model",
            "64-8-10",
            "--method",
            "ae",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert captured.err == ""
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["run_dir"] == str(tmp_path / "run") and [layer["epochs"] for layer in summary["layers"]] == [1]
    with pytest.raises(SystemExit):  # the run exists: --resume it or choose another --out
        main(["pretrain", "--model", "64-8-10", "--out", str(tmp_path / "run"), "--quiet"])
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(TrainingError, match="does not take"):
        capas.fit(capas.load_model(tmp_path / "run" / "stage1"), "digits", task_options={"k": 2}, quiet=True)


def test_an_interrupted_dbn_on_in_memory_inputs_resumes_when_given_its_inputs_again(tmp_path):
    from capas.models.dbn import DBN

    x = (torch.rand(120, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    settings = dict(layer_epochs=[2, 3], lr=0.1, batch_size=20, momentum=0.5, seed=2, quiet=True)
    whole = pretrain(x, DBN([12, 6, 4], seed=5), out=tmp_path / "whole", **settings)
    with pytest.raises(KeyboardInterrupt):
        pretrain(
            x, DBN([12, 6, 4], seed=5), out=tmp_path / "cut", callbacks=[InterruptStage("stage2", 3, 2)], **settings
        )
    with pytest.raises(RunDirError, match="in-memory inputs; pass them"):
        resume_pretrain(tmp_path / "cut")
    resumed = resume_pretrain(tmp_path / "cut", data=x, quiet=True)
    assert isinstance(resumed.network, DBN) and resumed.network.config() == whole.network.config()
    for name, tensor in whole.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[name], tensor), name
    assert json.loads((tmp_path / "cut" / "pretrain.json").read_text())["input_shape"] == [12]
