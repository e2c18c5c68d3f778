"""Multi-process training with ``torch.distributed``: one process per CPU share or GPU.

Every rank runs the same :class:`capas.train.Trainer`; what makes the ranks one run is
here, so the loop only asks a few questions of :func:`current`:

- **set-up**: :func:`init` joins a process group (``gloo`` on CPUs, ``nccl`` on GPUs),
  rendezvousing through a file in a temporary folder (:func:`launch`, one machine, no TCP
  port to pick) or through torchrun's environment (``env://``, across machines);
- **data**: every rank draws the *same* permutation from the shuffle generator (seeded alike)
  and keeps its shard ``order[rank::world]`` (``capas.data.adapters``), so two ranks with
  batch B see exactly the samples one process with batch 2B sees at each step;
- **gradients**: ``DistributedDataParallel`` (:func:`wrap`) averages them in backward, so
  the parameters stay identical on every rank;
- **metrics**: :func:`mean_across` averages the epoch's training metrics (each rank holds an
  equal share), :func:`any_across` makes an early stop or a NaN stop a decision of all ranks;
- **checkpoints**: only rank 0 writes the run directory; :func:`gather_states` brings every
  rank's generators into its checkpoint (``rank<r>/rng/<name>`` for rank r > 0) and
  :func:`own_states` hands each rank its own back on ``--resume``.

:func:`launch` starts N ranks on this machine (``capas train --nproc N``) and turns a rank
that failed or was killed into one :class:`DistributedError` naming it; :func:`torchrun`
re-runs a command under ``torch.distributed.run`` across machines (``--nnodes``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from capas.errors import CapasError, DistributedError, TrainingInterrupted
from capas.layers.norm import BatchNorm
from capas.rng import OFFSETS, Generators

#: how long a rank waits for the others in one collective before giving up (a rank that
#: hangs rather than dies; a dead rank is noticed at once through its closed connection)
TIMEOUT = timedelta(minutes=10)
#: seconds the other ranks get to stop by themselves once one failed (a rank writing a
#: checkpoint finishes it, then fails at its next collective) before they are terminated
GRACE_PERIOD = 10.0
#: generators every rank draws alike (the shared permutation); the others differ by rank
SHARED_GENERATORS = ("shuffle", "split")
#: the seed of rank r's own generators: far from the offsets of one run's generators
RANK_SEED_STRIDE = 1_000_003
#: environment variables torchrun (torch.distributed.run) sets in every rank it starts
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group.

    Attributes:
        rank: 0 .. world_size - 1 (rank 0 writes the run directory).
        world_size: processes training together.
        local_rank: rank on this machine (its GPU index).
        backend: ``gloo`` or ``nccl``.
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        """What config.json records: a resume must run on as many ranks."""
        return {"world_size": self.world_size, "backend": self.backend}


def current() -> Ranks | None:
    """The process group this process belongs to, or None (a single-process run)."""
    if not dist.is_available() or not dist.is_initialized():
        return None
    rank = dist.get_rank()
    local = int(os.environ.get("LOCAL_RANK", rank))
    return Ranks(rank, dist.get_world_size(), local, str(dist.get_backend()))


def backend_for(device_type: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for CPUs."""
    return "nccl" if device_type == "cuda" else "gloo"


def launched_by_torchrun() -> bool:
    """Whether this process is one rank started by torchrun (its variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def init(
    rank: int | None = None,
    world_size: int | None = None,
    *,
    backend: str = "gloo",
    init_file: str | Path | None = None,
) -> Ranks:
    """Join the process group: through ``init_file`` (a file in a temporary folder every rank
    of this machine names) or, without it, torchrun's environment (``env://``)."""
    if current() is not None:
        raise DistributedError("this process already belongs to a process group; call init once per rank")
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError("the nccl backend needs CUDA GPUs; train on CPUs with --device cpu (gloo)")
    if backend == "nccl":  # each rank binds its own GPU before NCCL sets up its communicators
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank or 0)))
    if init_file is None:
        if not launched_by_torchrun():
            missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
            raise DistributedError(
                f"no rendezvous: {', '.join(missing)} not set; start the ranks with torchrun or capas train --nproc N"
            )
        dist.init_process_group(backend, init_method="env://", timeout=TIMEOUT)
    else:
        dist.init_process_group(
            backend, init_method=Path(init_file).resolve().as_uri(), rank=rank, world_size=world_size, timeout=TIMEOUT
        )
    return current()


def close() -> None:
    """Leave the process group (nothing when there is none)."""
    if current() is not None:
        dist.destroy_process_group()


def rank_device(device: torch.device, ranks: Ranks | None) -> torch.device:
    """Each rank's device: its own GPU (``cuda:<local_rank>``); the CPU is shared."""
    if ranks is None or device.type != "cuda":
        return device
    if ranks.backend != "nccl":
        raise DistributedError(f"training on {device} needs the nccl backend, but the group uses {ranks.backend}")
    return torch.device("cuda", ranks.local_rank)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own draws (rank 0 keeps ``seed``)."""
    return seed + rank * RANK_SEED_STRIDE


def seed_rank_generators(generators: Generators, ranks: Ranks | None) -> None:
    """Rank r > 0 reseeds its dropout, noise, augmentation and sampling generators (rank 0
    keeps the single-process streams): the same masks on every shard would correlate the
    ranks. The shuffle and split generators stay alike: every rank draws the same order."""
    if ranks is None or ranks.rank == 0:
        return
    for name, generator in generators:
        if name not in SHARED_GENERATORS:
            generator.manual_seed(rank_seed(generators.seed + OFFSETS[name], ranks.rank))


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` inside ``DistributedDataParallel`` (gradients averaged across ranks in
    backward); building it broadcasts rank 0's parameters, so every rank starts alike."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def _collective_device(ranks: Ranks) -> torch.device:
    """Where collectives run: gloo reduces CPU tensors, nccl CUDA ones."""
    return torch.device("cuda", ranks.local_rank) if ranks.backend == "nccl" else torch.device("cpu")


def mean_across(values: dict[str, Tensor], ranks: Ranks) -> dict[str, Tensor]:
    """Each value averaged over the ranks (0-dim float64 tensors on the CPU), in one
    all-reduce. Every rank trained an equal share of the epoch (the shards are padded to
    equal length), so the average of the ranks' means is the epoch's mean. A NaN on one
    rank is a NaN on all: the NaN stop is then the same decision everywhere."""
    if not values:
        return {}
    names = sorted(values)
    stacked = torch.stack([values[name].detach().to("cpu", torch.float64) for name in names])  # (M,)
    stacked = stacked.to(_collective_device(ranks))
    dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
    means = (stacked / ranks.world_size).cpu()
    return {name: means[i] for i, name in enumerate(names)}


def any_across(flag: bool, ranks: Ranks) -> bool:
    """True on every rank when ``flag`` is True on any (an early stop agreed by all)."""
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device(ranks))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_buffers(module: nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank: DDP broadcasts them
    before each training forward, but the last step of an epoch leaves each rank with the
    statistics of its own shard; evaluation and checkpoints must see one set."""
    device = _collective_device(ranks)
    for buffer in module.buffers():
        if buffer.device == device:
            dist.broadcast(buffer, src=0)
        else:
            moved = buffer.to(device)
            dist.broadcast(moved, src=0)
            buffer.copy_(moved)


def gather_states(tensors: dict[str, Tensor], ranks: Ranks) -> dict[str, Tensor]:
    """Every rank's ``tensors`` (generator states: uint8, the same names and sizes on each
    rank), gathered in one all-gather: rank 0's under their own names, rank r's under
    ``rank<r>/<name>``. Called by every rank; only rank 0 writes the result."""
    names = sorted(tensors)
    flat = [tensors[name].detach().to("cpu", torch.uint8).reshape(-1) for name in names]
    sizes = [len(part) for part in flat]
    device = _collective_device(ranks)
    mine = torch.cat(flat).to(device)  # (S,)
    gathered = [torch.empty_like(mine) for _ in range(ranks.world_size)]
    dist.all_gather(gathered, mine)
    states: dict[str, Tensor] = {}
    for rank, whole in enumerate(gathered):
        prefix = "" if rank == 0 else f"rank{rank}/"
        for name, part in zip(names, whole.cpu().split(sizes)):
            states[prefix + name] = part.clone()
    return states


def own_states(tensors: dict[str, Tensor], ranks: Ranks | None, names: Iterable[str]) -> dict[str, Tensor]:
    """This rank's entries among ``names`` (a checkpoint's generator states), under their
    plain names; a checkpoint without this rank's states (saved by fewer ranks) is an error."""
    if ranks is None or ranks.rank == 0:
        return {name: tensors[name] for name in names if name in tensors}
    prefix = f"rank{ranks.rank}/"
    own = {name: tensors[prefix + name] for name in names if prefix + name in tensors}
    if not own:
        raise DistributedError(
            f"the checkpoint holds no generator states of rank {ranks.rank}: it was saved by fewer processes; "
            "resume it with as many processes as it was trained with"
        )
    return own


def saved_world_size(tensors: dict[str, Tensor]) -> int:
    """How many ranks saved a checkpoint (1 for a single-process run)."""
    ranks = {int(key[4:].split("/", 1)[0]) for key in tensors if key.startswith("rank") and "/" in key}
    return 1 + len(ranks)


# ---- the launcher ---------------------------------------------------------------------------


def launch(
    fn: Callable[..., Any],
    nproc: int,
    args: tuple = (),
    *,
    backend: str = "gloo",
    start_method: str = "spawn",
    failure_hint: Callable[[], str] | None = None,
) -> Any:
    """Run ``fn(*args)`` in ``nproc`` new processes joined in one process group (through a
    file in a temporary folder) and return rank 0's result, which must be JSON-able.

    When a rank fails, every rank is stopped and one error says which rank and why: a
    :class:`CapasError` a rank raised is raised again (its class and message); a rank killed
    (by a signal, the out-of-memory killer...) or failing otherwise is a
    :class:`DistributedError`, followed by ``failure_hint()`` (e.g. how to resume).
    ``fn`` must be importable by name (a module-level function): ``spawn`` starts fresh
    interpreters, safe with CUDA; ``fork`` is faster where no CUDA context exists yet."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise DistributedError(f"--nproc must be at least 1, got {nproc}")
    with tempfile.TemporaryDirectory(prefix="capas-ddp-") as folder:
        context = mp.start_processes(
            _rank_main,
            args=(fn, args, nproc, backend, folder),
            nprocs=nproc,
            join=False,
            start_method=start_method,
        )
        try:
            while not context.join(grace_period=GRACE_PERIOD):
                pass
        except (mp.ProcessRaisedException, mp.ProcessExitedException):
            error = _failure(context.processes, Path(folder))
            if failure_hint is not None and isinstance(error, DistributedError):
                error = DistributedError(f"{error}; {failure_hint()}")
            raise error from None
        except KeyboardInterrupt:  # Ctrl-C reached the ranks too: rank 0 says where it stopped
            for process in context.processes:
                process.join(GRACE_PERIOD)
                if process.is_alive():
                    process.terminate()
            record = Path(folder) / "error-0.json"
            if record.exists() and json.loads(record.read_text())["type"] == "TrainingInterrupted":
                raise TrainingInterrupted(json.loads(record.read_text())["message"]) from None
            raise
        result = Path(folder) / "result.json"
        return json.loads(result.read_text()) if result.exists() else None


def _rank_main(index: int, fn: Callable[..., Any], args: tuple, nproc: int, backend: str, folder: str) -> None:
    """One rank: join the group, run ``fn``, leave; a failure is recorded in
    ``error-<rank>.json`` (class and message) for the launcher, which names the rank."""
    os.environ["LOCAL_RANK"] = str(index)
    if backend == "gloo":  # the ranks share the machine's cores instead of each taking them all
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    code = 0
    try:
        init(index, nproc, backend=backend, init_file=Path(folder) / "rendezvous")
        result = fn(*args)
        if index == 0:
            Path(folder, "result.json").write_text(json.dumps(result))
    except (CapasError, TrainingInterrupted) as err:
        _record_error(folder, index, err)
        code = err.exit_code
    except BaseException as err:  # noqa: BLE001 - the launcher reports it for this rank
        _record_error(folder, index, err, traceback.format_exc())
        code = 1
    finally:
        if code == 0:
            close()  # a failed rank does not wait for the others to leave
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no atexit work: a failed group must not hang a rank on its way out


def _record_error(folder: str, rank: int, err: BaseException, trace: str = "") -> None:
    """``error-<rank>.json``: the exception's class and message (and traceback, shown only
    when this rank's failure is the cause, not when it lost a peer that had failed)."""
    record = {"type": type(err).__name__, "capas": isinstance(err, CapasError), "message": str(err), "trace": trace}
    Path(folder, f"error-{rank}.json").write_text(json.dumps(record))


def _failure(processes: list, folder: Path) -> Exception:
    """The one error that explains a failed group: the first rank's own CapasError (the
    others only saw it leave), else a rank killed by a signal we did not send, else the
    first rank's exception."""
    records = {}
    for rank in range(len(processes)):
        path = folder / f"error-{rank}.json"
        if path.exists():
            records[rank] = json.loads(path.read_text())
    world = len(processes)
    for rank, record in sorted(records.items()):
        if record["capas"]:
            return _capas_error(record["type"], f"rank {rank} of {world}: {record['message']}")
    for rank, process in enumerate(processes):
        code = process.exitcode
        if code is not None and code < 0 and -code != signal.SIGTERM:
            name = signal.Signals(-code).name
            return DistributedError(f"rank {rank} of {world} was killed by {name} during training; every rank stopped")
    for rank, record in sorted(records.items()):
        sys.stderr.write(record.get("trace", ""))
        message = str(record["message"]).strip().splitlines()
        return DistributedError(f"rank {rank} of {world} failed: {record['type']}: {message[0] if message else ''}")
    codes = ", ".join(f"rank {r}: {p.exitcode}" for r, p in enumerate(processes))
    return DistributedError(f"the ranks stopped without a reason they could record (exit codes {codes})")


def _capas_error(type_name: str, message: str) -> CapasError:
    """A CapasError of the class a rank raised (its name looked up in ``capas.errors``)."""
    import capas.errors as errors

    cls = getattr(errors, type_name, None)
    if isinstance(cls, type) and issubclass(cls, CapasError):
        return cls(message)
    return DistributedError(message)


def torchrun(command: list[str], *, nnodes: int, nproc_per_node: int, rdzv: str, run_id: str) -> None:
    """Run ``command`` (a script and its arguments) as ``nproc_per_node`` ranks on each of
    ``nnodes`` machines under ``torch.distributed.run`` (torchrun), meeting at ``rdzv``
    (``HOST:PORT``, the c10d rendezvous); each machine runs the same call. A failure of
    any rank is one DistributedError."""
    from torch.distributed import run as torch_run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if ":" not in rdzv:
        raise DistributedError(f"the rendezvous address must be HOST:PORT, got '{rdzv}'")
    argv = [
        f"--nnodes={nnodes}",
        f"--nproc-per-node={nproc_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rdzv}",
        f"--rdzv-id={run_id}",
        *command,
    ]
    try:
        torch_run.main(argv)
    except ChildFailedError as err:
        raise DistributedError(f"torchrun: {str(err).strip().splitlines()[0]}") from None


# ---- synchronised batch normalisation -----------------------------------------------------


class SyncedBatchNorm(BatchNorm):
    """capas's ``BatchNorm`` whose training statistics are those of the whole batch of all
    ranks: per channel, the sums of x and x^2 and the count are all-reduced (differentiably,
    so the backward pass sees every rank's share), which gives the mean and biased variance
    one process would compute on the concatenated batch (a ``SyncBatchNorm`` that also runs
    on CPUs with gloo). Evaluation, and training in one process, are ``BatchNorm``'s own."""

    def forward(self, x: Tensor) -> Tensor:
        ranks = current()
        if not self.training or ranks is None or ranks.world_size == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        channels = self.num_features
        if x.dim() < 2 or x.shape[1] != channels:
            return super().forward(x)  # BatchNorm's own shape error
        shape = (1, channels) + (1,) * (x.dim() - 2)
        values = x.transpose(0, 1).reshape(channels, -1)  # (C, M): every value of each channel
        count = torch.full((1,), float(values.shape[1]), dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([values.sum(1), (values * values).sum(1), count]))  # (2C + 1,) summed
        total = stats[-1]
        mean = stats[:channels] / total  # (C,)
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0)  # (C,) biased
        with torch.no_grad():
            self.num_batches_tracked += 1
            unbiased = var * total / (total - 1).clamp_min(1)
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased.detach())
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batch_norm(model: nn.Module) -> int:
    """Make every capas ``BatchNorm`` of ``model`` a :class:`SyncedBatchNorm`, in place (the
    same module objects: the network's layer lists, its training module and the optimizer
    keep them; config and state dict are unchanged). Returns how many were changed."""
    changed = 0
    for module in model.modules():
        if type(module) is BatchNorm:
            module.__class__ = SyncedBatchNorm
            changed += 1
    return changed
