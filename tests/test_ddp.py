"""Multi-process training (``capas.train.distributed``): two ranks on the CPU with gloo,
meeting through a file in a temporary folder (never a TCP port).

Starting a rank costs a fresh interpreter (spawn), so each launch below runs several fits
in its ranks and the tests assert on what they recorded: parameters identical on both
ranks after every epoch; two ranks of batch B equal to one process of batch 2B in float64
(plain and with synchronised BatchNorm); a NaN stop and an early stop agreed by all
ranks; the explicit engine declining with its reason; a rank killed with SIGKILL stopping
the run with one clear error, and ``resume`` continuing it to the weights of an
uninterrupted run (every rank's dropout generator restored).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from capas.api.fit import fit
from capas.data.adapters import InMemoryAdapter, shard
from capas.errors import DistributedError, TrainingError
from capas.models import build
from capas.train import Callback, distributed

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")

N, B, EPOCHS = 70, 8, 4  # 70 = 4 full steps of 2 x 8 and a last step of 2 x 3 samples


def _data(n: int = N) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val), float64: three classes by the sign of two sums."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n + 30, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return x[:n], y[:n], x[n:], y[n:]


def _network(spec: str = "6-16-3") -> torch.nn.Module:
    return build(spec, seed=0).double()


OPTIONS = dict(
    optimizer="sgd", lr=0.1, momentum=0.9, epochs=EPOCHS, seed=0, quiet=True, engine="auto", grad_norms=False
)


class RecordParameters(Callback):
    """Writes this rank's parameters after every epoch to ``<folder>/rank<r>-epoch<e>.safetensors``."""

    name = "record_parameters"

    def __init__(self, folder: str, rank: int) -> None:
        self.folder, self.rank = folder, rank

    def on_epoch_end(self, trainer, epoch, record) -> None:
        state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        save_file(state, f"{self.folder}/rank{self.rank}-epoch{epoch}.safetensors")


class KillAt(Callback):
    """SIGKILLs rank ``rank`` at the start of epoch ``epoch`` (a crash no handler sees)."""

    name = "kill_at"

    def __init__(self, epoch: int, rank: int) -> None:
        self.epoch, self.rank = epoch, rank

    def on_epoch_begin(self, trainer, epoch) -> None:
        if epoch == self.epoch and distributed.current().rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


class StepsPerEpoch(Callback):
    """Counts the steps of each epoch (the shard a rank's DataLoader yields)."""

    name = "steps_per_epoch"

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_epoch_begin(self, trainer, epoch) -> None:
        self.steps.append(0)

    def on_batch_end(self, trainer, step, loss) -> None:
        self.steps[-1] += 1


def _equivalence_job(folder: str) -> dict:
    """Runs in each of two ranks: the fits the equivalence tests compare."""
    ranks = distributed.current()
    record: dict = {"world_size": ranks.world_size}
    fit(_network(), _data(), batch_size=B, callbacks=[RecordParameters(folder, ranks.rank)], **OPTIONS)
    result = fit(_network("6-16-bn-3"), _data(), batch_size=B, sync_batchnorm=True, **OPTIONS)
    save_file(result.model.state_dict(), f"{folder}/bn-rank{ranks.rank}.safetensors")
    record["bn_history"] = result.history.to_json()
    record["any"] = distributed.any_across(ranks.rank == 1, ranks)  # only rank 1 says yes
    try:
        fit(_network(), _data(), batch_size=B, **{**OPTIONS, "engine": "backprop"})
    except TrainingError as err:
        record["backprop"] = str(err)
    x, y, _, _ = _data()
    x = x.clone()
    x[0] = float("nan")  # one sample: in the shard of one rank only
    try:
        fit(_network(), (x, y), batch_size=B, **OPTIONS)
    except TrainingError as err:
        record["nan"] = str(err)
    from torch.utils.data import DataLoader, TensorDataset

    x, y, _, _ = _data()
    steps = StepsPerEpoch()
    loader = DataLoader(TensorDataset(x, y), batch_size=B, shuffle=True)
    result = fit(_network(), loader, callbacks=[steps], **{k: v for k, v in OPTIONS.items() if k != "epochs"}, epochs=2)
    save_file(result.model.state_dict(), f"{folder}/loader-rank{ranks.rank}.safetensors")
    record["loader_steps"] = steps.steps
    _resume_job(f"{folder}/reference", None, False)  # the uninterrupted run the kill test resumes to
    Path(folder, f"record-{ranks.rank}.json").write_text(json.dumps(record))
    return record


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    distributed.launch(_equivalence_job, 2, (str(folder),))
    records = [json.loads((folder / f"record-{r}.json").read_text()) for r in range(2)]
    return folder, records


def test_parameters_are_identical_on_both_ranks_after_every_epoch(equivalence):
    folder, _ = equivalence
    for epoch in range(1, EPOCHS + 1):
        first = load_file(str(folder / f"rank0-epoch{epoch}.safetensors"))
        second = load_file(str(folder / f"rank1-epoch{epoch}.safetensors"))
        assert first.keys() == second.keys()
        for name in first:
            assert torch.equal(first[name], second[name]), (epoch, name)


class Snapshots(Callback):
    name = "snapshots"

    def __init__(self) -> None:
        self.states = {}

    def on_epoch_end(self, trainer, epoch, record) -> None:
        self.states[epoch] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(equivalence):
    folder, _ = equivalence
    snapshots = Snapshots()
    fit(_network(), _data(), batch_size=2 * B, callbacks=[snapshots], **{**OPTIONS, "engine": "autograd"})
    moved = 0.0
    for epoch in range(1, EPOCHS + 1):
        ranks = load_file(str(folder / f"rank0-epoch{epoch}.safetensors"))
        for name, value in snapshots.states[epoch].items():
            torch.testing.assert_close(ranks[name], value, rtol=0, atol=1e-6)
            moved = max(moved, float((value - snapshots.states[1][name]).abs().max()))
    assert moved > 0.01  # the comparison is between networks that trained


def test_synchronised_batch_norm_equals_the_batch_norm_of_one_process(equivalence):
    folder, records = equivalence
    single = fit(_network("6-16-bn-3"), _data(), batch_size=2 * B, **{**OPTIONS, "engine": "autograd"})
    for rank in range(2):
        synced = load_file(str(folder / f"bn-rank{rank}.safetensors"))
        for name, value in single.model.state_dict().items():  # running statistics included
            torch.testing.assert_close(synced[name].to(value.dtype), value, rtol=0, atol=1e-6)
    # the epoch's metrics are the mean over the ranks: the one process's, to rounding
    for mine, theirs in zip(records[0]["bn_history"], single.history.to_json()):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-9), key


def test_stops_are_decisions_of_every_rank(equivalence):
    _, records = equivalence
    assert [r["any"] for r in records] == [True, True]
    for record in records:  # the loss is averaged over the ranks: NaN on one is NaN on both
        assert "the training loss became nan at epoch 1" in record["nan"]


def test_a_dataloader_is_sharded_by_a_distributed_sampler(equivalence):
    folder, records = equivalence
    for record in records:  # 70 samples: 35 a rank, 5 batches of at most 8 (one loader gives 9)
        assert record["loader_steps"] == [5, 5]
    first, second = (load_file(str(folder / f"loader-rank{r}.safetensors")) for r in range(2))
    for name in first:
        assert torch.equal(first[name], second[name])


def test_the_explicit_engine_declines_with_its_reason(equivalence):
    _, records = equivalence
    for record in records:
        assert "engine='backprop' cannot train on several processes" in record["backprop"]
        assert "DDP's hooks" in record["backprop"]


def _resume_job(out: str, kill_epoch: int | None, resume: bool) -> dict:
    """Runs in each rank: a fit with dropout into ``out`` (killed at ``kill_epoch`` on rank
    1), or its resume."""
    callbacks = [] if kill_epoch is None else [KillAt(kill_epoch, rank=1)]
    if resume:
        result = fit(_network("6-16-drop0.3-3"), _data(), resume=out, quiet=True)
    else:
        result = fit(_network("6-16-drop0.3-3"), _data(), batch_size=B, out=out, callbacks=callbacks, **OPTIONS)
    return {"epochs": len(result.history)}


def test_a_killed_rank_stops_the_run_and_resume_continues_it(equivalence, tmp_path):
    reference, run = equivalence[0] / "reference", tmp_path / "run"
    with pytest.raises(DistributedError, match=r"rank 1 of 2 was killed by SIGKILL during training; every rank stop"):
        distributed.launch(_resume_job, 2, (str(run), 3, False))
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 2 and not state["finished"]
    saved = load_file(str(run / state["tensors"]))
    assert not torch.equal(saved["rng/dropout"], saved["rank1/rng/dropout"])  # each rank's own masks
    with pytest.raises(DistributedError, match="trained on 2 process"):
        fit(_network("6-16-drop0.3-3"), _data(), resume=run, quiet=True)  # one process cannot continue it
    assert distributed.launch(_resume_job, 2, (str(run), None, True)) == {"epochs": EPOCHS}
    resumed, uninterrupted = (
        load_file(str(run / "weights.safetensors")),
        load_file(str(reference / "weights.safetensors")),
    )
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name


def test_the_shards_cover_the_order_padded_to_equal_lengths():
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    parts = [shard(order, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]
    assert torch.equal(torch.stack(parts, 1).reshape(-1), torch.cat([order, order[:1]]))
    x = torch.arange(10.0).unsqueeze(1)
    adapters = [InMemoryAdapter((x,), (), 2, rank=r, world_size=2) for r in range(2)]
    assert [a.steps_per_epoch for a in adapters] == [3, 3]
    seen = [torch.cat([b.x for b in a.epoch(1, torch.Generator().manual_seed(1))]) for a in adapters]
    assert sorted(torch.cat(seen).flatten().tolist()) == list(range(10))
    full = [InMemoryAdapter((x,), (), "full", rank=r, world_size=2) for r in range(2)]
    assert [next(a.epoch(1, None)).size for a in full] == [5, 5]


def test_a_rank_killed_without_a_group_is_reported_by_name(tmp_path):
    from capas.train.distributed import _failure

    class Process:
        def __init__(self, exitcode):
            self.exitcode = exitcode

    error = _failure([Process(-signal.SIGTERM), Process(-signal.SIGKILL)], tmp_path)
    assert str(error) == "rank 1 of 2 was killed by SIGKILL during training; every rank stopped"
    (tmp_path / "error-0.json").write_text(json.dumps({"type": "RunDirError", "capas": True, "message": "bad dir"}))
    error = _failure([Process(2), Process(-signal.SIGTERM)], tmp_path)
    assert type(error).__name__ == "RunDirError" and str(error) == "rank 0 of 2: bad dir"


def test_capas_train_nproc_2_runs_two_ranks_and_resume_keeps_them(tmp_path, capfd):
    from capas.cli import main

    out = tmp_path / "run"
    args = ["train", "--data", "xor", "--model", "2-8-2", "--epochs", "2", "--quiet", "--json", "--out", str(out)]
    main([*args, "--nproc", "2"])
    summary = json.loads(capfd.readouterr().out.strip().splitlines()[-1])  # printed by rank 0 alone
    assert summary["epochs"] == 2 and summary["engine"] == "autograd" and summary["run_dir"] == str(out)
    config = json.loads((out / "config.json").read_text())
    assert config["distributed"] == {"world_size": 2, "backend": "gloo"}
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(out), "--nproc", "1"])
    assert "trained on 2 process(es); resume it with --nproc 2" in capfd.readouterr().err
