"""``capas train --nproc N [--nnodes M --rdzv HOST:PORT]``: one command, several processes.

The command runs as it always does in every rank, inside a process group: ``--nproc N``
on one machine starts N ranks with ``capas.train.distributed.launch`` (a rendezvous file
in a temporary folder, no port), each running this same ``capas train`` command line
without the launch options; ``--nnodes M`` re-runs it under torchrun on every machine. A
process that torchrun started (ours or the user's own ``torchrun ... capas train ...``)
joins the group from torchrun's environment. Rank 0 writes the run directory and prints;
the other ranks train quietly. Nothing here imports torch before a command runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import typer

from capas.cli.options import flag, typed_options
from capas.errors import DistributedError, TrainingError

#: the options that start ranks; a rank runs the command without them
LAUNCH_OPTIONS = ("nproc", "nnodes", "rdzv")


def is_main_rank() -> bool:
    """Whether this process prints and writes: rank 0, or a single-process run."""
    from capas.train import distributed

    ranks = distributed.current()
    return ranks is None or ranks.is_main


def saved_world_size(run_dir: Path) -> int:
    """How many processes trained the run in ``run_dir`` (its config.json's record)."""
    try:
        record = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return 1  # the resume itself reports a missing or damaged config.json
    saved = record.get("distributed") if isinstance(record, dict) else None
    return int(saved.get("world_size", 1)) if isinstance(saved, dict) else 1


def start_ranks(
    ctx: typer.Context,
    *,
    nproc: int | None,
    nnodes: int,
    rdzv: str | None,
    resume: Path | None,
    out: Path | None,
    device: str,
    data: str,
) -> bool:
    """Start the ranks of a multi-process run and wait for them (True), or return False
    when this process trains itself: a single-process run, or one rank of a group."""
    from capas.train import distributed

    if distributed.current() is not None or distributed.launched_by_torchrun():
        if resume is None and out is None:
            raise TrainingError("a multi-process run needs --out: every rank must name the same run directory")
        if distributed.current() is None:  # a rank torchrun started: join its group
            distributed.init(backend=_backend(device, resume))
            ctx.call_on_close(distributed.close)
        return False
    world = nproc if nproc is not None else 1
    if resume is not None:
        saved = saved_world_size(resume)
        if nproc is None:
            world = saved
        elif nproc != saved:
            raise DistributedError(
                f"the run in {resume} was trained on {saved} process(es); resume it with --nproc {saved}"
            )
    if world < 1 or nnodes < 1:
        raise DistributedError(f"--nproc and --nnodes must be at least 1, got {world} and {nnodes}")
    if nnodes > 1:
        _run_torchrun(ctx, world, nnodes, rdzv, resume, out)
        return True
    if world == 1:
        return False
    backend = _backend(device, resume)
    if backend == "nccl":
        import torch

        if world > torch.cuda.device_count():
            raise DistributedError(
                f"--nproc {world} on CUDA needs {world} GPUs, this machine has {torch.cuda.device_count()}; "
                "lower --nproc or train on CPUs with --device cpu"
            )
    if resume is None:
        out = _claim_out(ctx, out, data)
    run_dir = resume if resume is not None else out
    argv = ["train", *_rank_argv(ctx, out)]
    distributed.launch(_cli_rank, world, (argv,), backend=backend, failure_hint=functools.partial(_hint, run_dir))
    return True


def _claim_out(ctx: typer.Context, out: Path | None, data: str) -> Path:
    """The run directory every rank names: ``--out``, or a new ``runs/<data>-<time>``."""
    from capas.api.outputs import claim_output_dir
    from capas.train.rundir import new_run_dir, remove_if_empty

    if out is None:
        out = new_run_dir("runs", f"{Path(data).stem or 'data'}-{time.strftime('%Y%m%d-%H%M%S')}")
        ctx.call_on_close(functools.partial(remove_if_empty, out))  # a run that failed to start
    claim_output_dir(out, hint="choose another --out or --resume it")
    return out


def _backend(device: str, resume: Path | None) -> str:
    """gloo or nccl, by the device the run trains on (a resumed run's own)."""
    from capas.train import distributed
    from capas.train.device import resolve_device

    if resume is not None:
        try:
            device = json.loads((Path(resume) / "config.json").read_text())["train"]["device"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # the resume reports the damaged config.json itself
    return distributed.backend_for(resolve_device(device).type)


def _rank_argv(ctx: typer.Context, out: Path | None) -> list[str]:
    """The options the user typed, as a command line, without the launch options and with
    the run directory every rank shares."""
    argv: list[str] = []
    for name in typed_options(ctx):
        if name in LAUNCH_OPTIONS or name == "out":
            continue
        value = ctx.params[name]
        option = flag(ctx, name)
        if isinstance(value, bool):
            argv += [option] if value else []
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [option, str(item)]
        else:
            argv += [option, str(value)]
    return argv if out is None else [*argv, "--out", str(out)]


def _cli_rank(argv: list[str]) -> None:
    """One rank of ``--nproc N``: the command, in the process group the launcher joined."""
    import capas.cli.train  # noqa: F401 - registers the train command
    from capas.cli import app

    app(args=argv, standalone_mode=False)


def _hint(run_dir: Path) -> str:
    """What to do after a failed multi-process run: resume it, or start again."""
    if (Path(run_dir) / "state.json").exists():
        return f"the last checkpoint in {run_dir} is intact; continue with: capas train --resume {run_dir}"
    return f"nothing was saved in {run_dir}; start the run again"


def _run_torchrun(
    ctx: typer.Context, nproc: int, nnodes: int, rdzv: str | None, resume: Path | None, out: Path | None
) -> None:
    """This command under torchrun: ``nproc`` ranks here, ``nnodes`` machines in all (each
    machine runs the same command), meeting at ``rdzv``."""
    from capas.train import distributed

    if rdzv is None:
        raise DistributedError("--nnodes above 1 needs --rdzv HOST:PORT, an address every machine reaches")
    run_dir = resume if resume is not None else out
    if run_dir is None:
        raise DistributedError("a run on several machines needs --out, a directory on a file system they share")
    script = shutil.which("capas") or sys.argv[0]
    run_id = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    command = [script, "train", *_rank_argv(ctx, out)]
    distributed.torchrun(command, nnodes=nnodes, nproc_per_node=nproc, rdzv=rdzv, run_id=run_id)
