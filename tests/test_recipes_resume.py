"""``capas run --resume OUT``: an interrupted recipe continues to the report an uninterrupted run writes.

Ctrl-C is simulated right after a chosen checkpoint of a chosen model (the loop turns the
KeyboardInterrupt into TrainingInterrupted); the resumed run must keep the finished models,
resume the interrupted one from its checkpoint and train the rest, ending with the same
weights and the same report numbers (all but the wall-clock seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from capas.api.recipes import RECORD, resume_recipe, run_recipe
from capas.cli import main
from capas.diagnostics.snapshots import SNAPSHOT_FILE, load_snapshots
from capas.errors import RunDirError, TrainingInterrupted
from capas.train.loop import Trainer

SWEEP = """
name = "tiny-resume"
[data]
name = "xor"
[model]
spec = ["{input}-4-{classes}", "{input}-6-{classes}"]
act = "tanh"
[train]
epochs = 4
batch_size = 50
[plots]
what = ["curves", "boundary"]
animate = true
"""
SINGLE = SWEEP.replace('["{input}-4-{classes}", "{input}-6-{classes}"]', '"{input}-4-{classes}"')


def interrupt_after(monkeypatch, run_dir: Path, epoch: int) -> None:
    """Ctrl-C right after the checkpoint of ``epoch`` of the run in ``run_dir`` is committed."""
    save = Trainer.save_checkpoint

    def save_then_interrupt(self, at: int) -> None:
        save(self, at)
        if Path(self.run_dir) == run_dir and at == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_interrupt)


def report_numbers(report: Path) -> list[list[str]]:
    """The results table of report.md without its wall-clock column (train seconds)."""
    rows = [line.split("|")[1:-1] for line in report.read_text().splitlines() if line.startswith("| model")]
    return [row[:4] + row[5:] for row in rows]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "weights.safetensors"))


@pytest.mark.parametrize(
    ("text", "stop", "labels", "epochs_left"),
    [
        (SWEEP, ("model-2", 2), ["model-1", "model-2"], 2),  # one model kept, one resumed
        (SWEEP, ("model-1", 3), ["model-1", "model-2"], 1 + 4),  # one resumed, one trained afresh
        (SINGLE, ("", 2), [""], 2),  # one model, trained in the output folder itself
    ],
)
def test_an_interrupted_recipe_resumes_to_the_uninterrupted_report(
    tmp_path, monkeypatch, text, stop, labels, epochs_left
):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    reference = run_recipe(recipe, out=tmp_path / "ref", quiet=True)
    out = tmp_path / "cut"
    interrupt_after(monkeypatch, out / stop[0] if stop[0] else out, stop[1])
    with pytest.raises(TrainingInterrupted, match=f"continue with: capas run --resume {out}$"):
        run_recipe(recipe, out=out, quiet=True)
    assert not (out / "report.md").exists()
    monkeypatch.undo()
    trained = []
    run_epoch = Trainer.run_epoch
    monkeypatch.setattr(Trainer, "run_epoch", lambda self, epoch: trained.append(epoch) or run_epoch(self, epoch))
    resumed = resume_recipe(out, quiet=True)
    assert len(trained) == epochs_left  # finished models kept, the interrupted one continued from its checkpoint
    assert report_numbers(resumed.report) == report_numbers(reference.report)
    assert len(report_numbers(resumed.report)) == len(labels) + 1  # the header row and one per model
    for label, ref, new in zip(labels, reference.variants, resumed.variants):
        assert new.run_dir == (out / label if label else out)
        assert [h["train_loss"] for h in new.history] == [h["train_loss"] for h in ref.history]
        ref_w, new_w = weights(ref.run_dir), weights(new.run_dir)
        assert ref_w.keys() == new_w.keys() and all(torch.equal(ref_w[k], new_w[k]) for k in ref_w)
        assert [p.name for p in new.plots] == [p.name for p in ref.plots] and all(p.is_file() for p in new.plots)
        assert load_snapshots(new.run_dir / SNAPSHOT_FILE)["epochs"].tolist() == [1, 2, 3, 4]  # the whole animation
    with pytest.raises(RunDirError, match="already finished"):
        resume_recipe(out, quiet=True)


def test_capas_run_says_how_to_resume_and_resume_takes_no_other_options(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(SWEEP)
    out = tmp_path / "cut"
    interrupt_after(monkeypatch, out / "model-1", 1)
    with pytest.raises(SystemExit) as info:
        main(["run", str(recipe), "--out", str(out), "--quiet"])
    assert info.value.code == 130
    assert capsys.readouterr().err.strip().endswith(f"continue with: capas run --resume {out}")
    monkeypatch.undo()
    with pytest.raises(SystemExit) as info:
        main(["run", "--resume", str(out), "--set", "train.epochs=9"])
    assert info.value.code == 2 and "drop --set" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["run", "--resume", str(tmp_path), "--quiet"])
    assert info.value.code == 2 and f"{tmp_path} has no {RECORD}" in capsys.readouterr().err
    main(["run", "--resume", str(out), "--quiet"])
    assert capsys.readouterr().out.strip() == f"report: {out / 'report.md'}"
