"""``Trainer``: the one loop every kind of learning runs on, in skorch's shape
``fit -> fit_loop -> run_epoch -> train_step``.

The loop knows nothing of losses or models: it drives a :class:`capas.train.task.Task`
over the task's data adapters, and owns what every task shares: epochs, callbacks and
progress, the history, learning-rate schedules, the NaN stop, run directories and
checkpoints with exact resume (model weights, every named optimizer and schedule, every
named generator, the task's and the callbacks' state).

The batch size picks the course's BackProp variant (file 001, "Variantes de BackProp"):
``"full"`` is batch BackProp, ``1 < B < N`` mini-batch, ``1`` incremental. Nothing in the
step loop waits for the device: metrics stay tensors and are reduced once per epoch.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from capas.errors import DistributedError, RunDirError, TrainingError, TrainingInterrupted
from capas.fast.threads import choose_threads, torch_threads
from capas.rng import Generators
from capas.train import distributed, rundir
from capas.train.callbacks import Callback, ProgressBar, default_callbacks, progress_callback
from capas.train.checkpoint import load_optimizer_state, load_scheduler_state, optimizer_state, scheduler_state
from capas.train.config import TrainConfig
from capas.train.device import resolve_device
from capas.train.history import History
from capas.train.inputs import as_training_data
from capas.train.memory import check_training_memory
from capas.train.task import Task, TaskContext

#: checkpoint key of torch's global generator state inside the fit's ``fork_rng``
GLOBAL_RNG = "rng/global"


class Trainer:
    """Trains ``task`` under ``config``.

    Args:
        task: what to train (``capas.tasks.SupervisedTask(model)``, an autoencoder or RBM task...).
        config: the run's options.
        callbacks: extra callbacks, after the ones the config asks for.
        quiet: no progress output.
        out: run directory to write (None: nothing written).
        command: the command line recorded in config.json (default ``sys.argv``).
        resume_command: what the Ctrl-C and full-disk messages tell the user to run to
            continue (default ``capas train --resume OUT`` for a registry dataset, else the
            ``capas.fit(..., resume=OUT)`` call); a pre-training stage names ``capas pretrain``.
    """

    def __init__(
        self,
        task: Task,
        config: TrainConfig,
        *,
        callbacks: tuple[Callback, ...] | list = (),
        quiet: bool = False,
        out: str | Path | None = None,
        command: list[str] | None = None,
        resume_command: str | None = None,
    ) -> None:
        self.task = task
        self.config = config
        self.user_callbacks = list(callbacks)
        self.quiet = quiet
        self.run_dir = None if out is None else Path(out)
        self.command = command
        self.resume_command = resume_command
        self.history = History()
        self.start_epoch = 0
        self.epoch = 0  # the epoch running now (0: none yet)
        self.last_checkpoint: int | None = None  # the epoch of the last committed checkpoint
        self.stop_training = False
        self.stop_reason: str | None = None
        self.test_metrics: dict[str, Any] = {}
        self.ranks: distributed.Ranks | None = None  # set by setup

    # ---- what callbacks read -------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        return self.task.model

    @property
    def engine(self) -> str:
        return self.task.engine

    @property
    def steps_per_epoch(self) -> int:
        return self.task.train_adapter.steps_per_epoch

    @property
    def writer(self) -> bool:
        """Whether this process writes the run directory: rank 0 of a multi-process run."""
        return self.ranks is None or self.ranks.is_main

    def on_device(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """``tensor`` on the training device, floating data in the model's dtype."""
        return self.context.on_device(tensor)

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, data: Any, resume: rundir.Run | None = None) -> Trainer:
        """Set the task up (or restore a checkpoint), run the epochs, evaluate.

        Runs inside ``torch.random.fork_rng``: capas's own layers draw from the named
        generators, but a plain ``nn.Dropout`` in a user's module draws from torch's global
        generator; that one is seeded from the run's seed inside the fork, saved in
        checkpoints, and the caller's global state is put back afterwards untouched."""
        device = distributed.rank_device(resolve_device(self.config.device), distributed.current())
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.config.seed)
            return self._fit(data, resume)

    def _fit(self, data: Any, resume: rundir.Run | None) -> Trainer:
        """Set up, then train holding the run directory's lock (a second writer is refused);
        Ctrl-C becomes :class:`TrainingInterrupted`, saying where the last checkpoint is."""
        self.setup(data)
        if resume is not None:
            self.run_dir = resume.path
        with (
            torch_threads(self.threads),
            nullcontext() if self.run_dir is None or not self.writer else rundir.lock(self.run_dir),
        ):
            try:
                self._train(resume)
            except TrainingInterrupted:
                raise
            except KeyboardInterrupt:
                raise TrainingInterrupted(self.interrupted_message()) from None
        return self

    def _train(self, resume: rundir.Run | None) -> None:
        if resume is not None:
            self.restore(resume)
        elif self.run_dir is not None:
            if self.writer and (self.run_dir / "config.json").exists():  # under the lock: a run started meanwhile
                raise RunDirError(f"{self.run_dir} already holds a capas run; write to another directory or resume it")
            self.write_run_start()
        try:
            self.notify("on_fit_begin")
            self.fit_loop()
            self.notify("on_fit_end")
        finally:
            for callback in self.callbacks:
                if isinstance(callback, ProgressBar):
                    callback.close()
        self.test_metrics = self.task.final_metrics()
        if self.run_dir is not None:
            self.write_run_end()

    def setup(self, data: Any) -> None:
        """Device, generators, the task (optimizers, adapters), schedules and callbacks."""
        config = self.config
        self.ranks = distributed.current()  # None: one process
        self.device = distributed.rank_device(resolve_device(config.device), self.ranks)
        amp_devices = {"fp16": ("cuda",), "bf16": ("cuda", "cpu")}.get(config.amp, (self.device.type,))
        if self.device.type not in amp_devices:
            where = "a CUDA device" + (" or the CPU" if "cpu" in amp_devices else "")
            raise TrainingError(
                f"amp={config.amp} needs {where}, but training runs on {self.device}; "
                "use --amp bf16 on a CPU, or drop --amp"
            )
        model = self.task.model
        model.to(self.device).train()
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        self.data = as_training_data(data, seed=config.seed)
        check_training_memory(model, config, self.data, self.device)
        self.generators = Generators(config.seed, self.device)
        distributed.seed_rank_generators(self.generators, self.ranks)  # rank r > 0: its own dropout, noise...
        if self.ranks is not None and not self.ranks.is_main:
            torch.manual_seed(distributed.rank_seed(config.seed, self.ranks.rank))  # inside fit's fork_rng
        self.context = TaskContext(config, self.device, dtype, self.generators, self.data, self.quiet, ranks=self.ranks)
        if self.ranks is not None and not self.task.multi_process:
            raise DistributedError(
                f"the {self.task.kind} task does not train on several processes yet; run it with one (--nproc 1)"
            )
        self.task.setup(self.context)
        self.threads = choose_threads(
            sum(p.numel() for p in model.parameters()), config.batch_size, self.task.engine, config.threads
        )
        if self.ranks is not None and config.threads is None:  # ranks share the cores: launch gave each its part
            self.threads = min(self.threads, torch.get_num_threads())
        self.optimizers = self.task.optimizers()
        self.schedules = self.task.schedules()
        self.per_batch_schedules = [s.scheduler for s in self.schedules.values() if s.per_batch]
        self.callbacks = [*default_callbacks(config), *self.user_callbacks]
        progress = progress_callback(self.quiet or not self.writer)  # one progress bar: rank 0's
        if progress is not None:
            self.callbacks.append(progress)
        self.batch_callbacks = [c for c in self.callbacks if type(c).on_batch_end is not Callback.on_batch_end]
        self.forces_steps = any(c.needs_batches for c in self.batch_callbacks)  # else run_epoch may run it whole

    def fit_loop(self) -> None:
        if self.stop_training:  # a resumed run whose last checkpoint had stopped (early stopping)
            return
        for epoch in range(self.start_epoch + 1, self.config.epochs + 1):
            self.epoch = epoch
            self.notify("on_epoch_begin", epoch)
            started = time.perf_counter()
            record = {"epoch": epoch, "lr": self.current_lr(), **self.run_epoch(epoch)}
            if self.ranks is not None:  # BatchNorm statistics of rank 0's last step on every rank
                distributed.broadcast_buffers(self.task.model, self.ranks)
            record.update(self.validate())
            self.step_schedules_per_epoch(record)
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            self.notify("on_epoch_end", epoch, record)
            if self.ranks is not None and distributed.any_across(self.stop_training, self.ranks):
                self.stop_training = True  # an early stop is a decision of all ranks
                self.stop_reason = self.stop_reason or "stopped by another rank"
            finished = self.stop_training or epoch == self.config.epochs
            if self.run_dir is not None and (finished or epoch % self.config.checkpoint_every == 0):
                self.save_checkpoint(epoch)
            if self.stop_training:
                break
        self.epoch = 0

    def current_lr(self) -> float:
        """The first optimizer's learning rate now (a task without torch optimizers: config.lr)."""
        for optimizer in self.optimizers.values():
            return optimizer.param_groups[0]["lr"]
        return self.config.lr

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Every step of one epoch; the epoch's mean training metrics, prefixed ``train_``."""
        task = self.task
        task.model.train()
        batches = task.train_adapter.epoch(epoch, self.generators.shuffle, task.epoch_subset(epoch))
        after_step = self.after_step if self.per_batch_schedules else None
        means = None if self.forces_steps else task.run_epoch(epoch, batches, after_step)
        if means is None:
            means = self._generic_epoch(batches)
        if self.ranks is not None:  # the epoch's means over every rank's share (a NaN anywhere is a NaN here)
            means = distributed.mean_across(means, self.ranks)
        values = {name: float(value) for name, value in means.items()}
        if not math.isfinite(values.get("loss", 0.0)):
            self.raise_non_finite(epoch, values["loss"])
        record = {f"train_{name}": value for name, value in values.items()}
        record.update(task.epoch_metrics())
        return record

    def _generic_epoch(self, batches: Any) -> dict[str, torch.Tensor]:
        """Step by step, calling the per-batch callbacks: weighted means of the step metrics."""
        sums: dict[str, list[torch.Tensor]] = {}
        sizes: list[int] = []
        for step, batch in enumerate(batches):
            metrics = self.task.train_step(batch)
            self.after_step()
            for name, value in metrics.items():
                sums.setdefault(name, []).append(value)
            sizes.append(batch.size)
            if self.batch_callbacks:
                self.notify("on_batch_end", step, metrics.get("loss"))
        return weighted_means(sums, sizes)

    def after_step(self) -> None:
        """What follows every update: the per-batch LR schedules."""
        for scheduler in self.per_batch_schedules:
            scheduler.step()

    def raise_non_finite(self, epoch: int, value: float) -> None:
        step = self.task.first_non_finite_step()
        where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
        raise TrainingError(
            f"the training loss became {value} at {where}; training stopped. "
            f"Lower the learning rate (now {self.config.lr:g}), clip gradients (clip_norm=1.0) "
            "or standardise the inputs"
        )

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """Mean validation metrics, prefixed ``val_`` (empty without validation data)."""
        adapter = self.task.val_adapter
        if adapter is None:
            return {}
        from capas.models.modes import eval_mode

        sums: dict[str, list[torch.Tensor]] = {}
        sizes: list[int] = []
        with eval_mode(self.task.model):
            for batch in adapter.batches(self.config.eval_batch_size):
                for name, value in self.task.eval_step(batch).items():
                    sums.setdefault(name, []).append(value)
                sizes.append(batch.size)
        return {f"val_{name}": float(value) for name, value in weighted_means(sums, sizes).items()}

    def step_schedules_per_epoch(self, record: dict[str, Any]) -> None:
        for schedule in self.schedules.values():
            if schedule.per_batch:
                continue
            if schedule.needs_metric:
                key = self.config.monitor if self.config.monitor in record else "train_loss"
                schedule.scheduler.step(record[key])
            else:
                schedule.scheduler.step()

    def notify(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # ---- run directory and checkpoints -----------------------------------------------------
    def resume_hint(self) -> str:
        """The command (or call) that continues this run."""
        if self.resume_command is not None:
            return self.resume_command
        if self.data.describe().get("name"):
            return f"capas train --resume {self.run_dir}"
        return f"capas.fit(model, data, resume={str(self.run_dir)!r})"

    def interrupted_message(self) -> str:
        """Where a Ctrl-C stopped the fit and how to go on."""
        where = f"during epoch {self.epoch}" if self.epoch else "while writing the run's results"
        if self.run_dir is None:
            return f"interrupted {where}; nothing was saved (no run directory was given)"
        if self.last_checkpoint is None:
            return (
                f"interrupted while starting the run in {self.run_dir}; nothing was trained; remove it and start again"
            )
        return (
            f"interrupted {where}; the last checkpoint (epoch {self.last_checkpoint}) is in {self.run_dir}; "
            f"continue with: {self.resume_hint()}"
        )

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Writes to the run directory: an ``OSError`` (full disk, I/O error, read-only
        mount) becomes one RunDirError saying which file failed, that the last committed
        checkpoint is intact (a checkpoint is committed by one atomic replace) and how to
        resume; never a raw SafetensorError or traceback."""
        try:
            yield
        except OSError as err:
            fix = "free some space" if rundir.is_disk_full(err) else "fix that"
            what = f"{rundir.os_error_reason(err)} while writing {err.filename or self.run_dir}"
            if self.last_checkpoint is None:
                message = f"{what}; nothing was trained yet; {fix}, remove {self.run_dir} and start again"
            else:
                message = (
                    f"{what}; the last checkpoint (epoch {self.last_checkpoint}) is intact; "
                    f"{fix} and resume with: {self.resume_hint()}"
                )
            raise RunDirError(message) from None

    def write_run_start(self) -> None:
        """model.json and a checkpoint of epoch 0 (a run killed during its first epoch
        resumes from the start), then config.json: a directory with a config.json always
        holds a committed checkpoint (killed before it, the directory holds no run)."""
        record = {
            "format": rundir.FORMAT,
            "version": rundir.VERSION,
            "train": self.config.to_json(),
            "data": self.data.describe(),
            "task": self.task.describe(),
            "engine": self.task.engine,
            "device": str(self.device),
            "distributed": None if self.ranks is None else self.ranks.describe(),
            "command": self.command if self.command is not None else sys.argv,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        if self.writer:
            with self.writing():
                rundir.write_json(self.run_dir / "model.json", rundir.model_config(self.task.model))
        self.save_checkpoint(0)
        if not self.writer:
            return
        with self.writing():
            rundir.write_json(self.run_dir / "config.json", record)

    def save_checkpoint(self, epoch: int) -> None:
        """Everything that decides the next epoch, as one set that a kill cannot split.

        The tensors (model weights, optimizers, generators, task and callback state) go to a
        new ``state-<epoch>.safetensors``; then ``state.json`` (the JSON state and the history)
        is replaced atomically and names that file: it is the commit point, so a run killed at
        any moment resumes from one consistent checkpoint. The previous tensor file (and any
        temporary file a killed write left) is removed after the commit; ``weights.safetensors``
        and ``history.json/.csv`` are then refreshed for readers (evaluate, plots), and again
        by a resume, since the history lives in ``state.json`` too. ``"finished"`` is set only
        by :meth:`write_run_end`, once metrics.json is written; ``"stopped"`` records an early
        stop, so that a resume of a stopped run only writes its results.

        In a multi-process run every rank calls it: the generators of all ranks are gathered
        (rank r's as ``rank<r>/rng/...``) and rank 0 writes the checkpoint."""
        states = self.generators.state_tensors()
        states[GLOBAL_RNG] = torch.get_rng_state()  # the forked global generator (plain nn.Dropout)
        if self.device.type == "cuda":
            states[GLOBAL_RNG + "/cuda"] = torch.cuda.get_rng_state(self.device)
        if self.ranks is not None:
            states = distributed.gather_states(states, self.ranks)
            if not self.writer:
                self.last_checkpoint = epoch
                return
        tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in self.task.model.state_dict().items()}
        tensors.update(states)
        optimizers_json = {}
        for name, optimizer in self.optimizers.items():
            opt_tensors, optimizers_json[name] = optimizer_state(optimizer)
            tensors.update({f"{name}/{key}": value for key, value in opt_tensors.items()})
        task_tensors, task_json = self.task.state_dict()
        tensors.update({f"task/{key}": value for key, value in task_tensors.items()})
        callbacks_json = {}
        for callback in self.callbacks:
            saved = callback.state_dict()
            if saved is not None:
                cb_tensors, callbacks_json[callback.name] = saved
                tensors.update({f"callback/{callback.name}/{k}": v for k, v in cb_tensors.items()})
        tensor_file = f"state-{epoch:06d}.safetensors"
        state = {
            "format": rundir.FORMAT,
            "epoch": epoch,
            "tensors": tensor_file,
            "finished": False,
            "stopped": self.stop_training,
            "optimizers": optimizers_json,
            "callbacks": callbacks_json,
            "task": task_json,
            "schedules": {name: scheduler_state(s.scheduler) for name, s in self.schedules.items()},
            "stop_reason": self.stop_reason,
            "history": self.history.to_json(),
        }
        with self.writing():
            rundir.save_tensors(self.run_dir / tensor_file, tensors, {"format": rundir.FORMAT, "epoch": str(epoch)})
            rundir.write_json(self.run_dir / "state.json", state)
            self.last_checkpoint = epoch
            rundir.remove_stale_checkpoints(self.run_dir, keep=tensor_file)
            rundir.save_weights(self.run_dir, self.task.model, epoch)
            rundir.write_history(self.run_dir, self.history)

    def restore(self, run: rundir.Run) -> None:
        """Continue ``run`` from its last checkpoint (a finished run that ran its full length:
        on to ``config.epochs``, which the caller checked is beyond it)."""
        weights, state, tensors = run.checkpoint()
        finished = bool(state.get("finished"))
        if finished and (state.get("stopped") or self.config.epochs <= state["epoch"]):
            raise RunDirError(f"the run in {run.path} already finished ({state['epoch']} epochs); nothing to resume")
        if "optimizers" not in state:
            raise RunDirError(
                f"{run.path} was written by an older capas (no named optimizers in state.json); "
                "it can be evaluated but not resumed"
            )
        saved_world = distributed.saved_world_size(tensors)
        world = 1 if self.ranks is None else self.ranks.world_size
        if saved_world != world:
            raise DistributedError(
                f"the run in {run.path} was trained on {saved_world} process(es), this resume runs {world}; "
                f"resume it with --nproc {saved_world}"
            )
        rundir.load_weights(self.task.model, weights, run.path / "weights.safetensors")
        for name, optimizer in self.optimizers.items():
            prefix = f"{name}/"
            own = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            load_optimizer_state(optimizer, own, state["optimizers"][name])
        for name, schedule in self.schedules.items():
            if name in state.get("schedules", {}):
                load_scheduler_state(schedule.scheduler, state["schedules"][name])
        names = [*self.generators.state_tensors(), GLOBAL_RNG, GLOBAL_RNG + "/cuda"]
        own = distributed.own_states(tensors, self.ranks, names)  # this rank's generators
        self.generators.load_state_tensors(own)
        if GLOBAL_RNG in own:
            torch.set_rng_state(own[GLOBAL_RNG])
        if GLOBAL_RNG + "/cuda" in own and self.device.type == "cuda":
            torch.cuda.set_rng_state(own[GLOBAL_RNG + "/cuda"], self.device)
        task_tensors = {k.removeprefix("task/"): v for k, v in tensors.items() if k.startswith("task/")}
        self.task.load_state_dict(task_tensors, state.get("task", {}))
        for callback in self.callbacks:
            if callback.name in state.get("callbacks", {}):
                prefix = f"callback/{callback.name}/"
                own = {k.removeprefix(prefix): v.to(self.device) for k, v in tensors.items() if k.startswith(prefix)}
                callback.load_state_dict(own, state["callbacks"][callback.name])
        self.start_epoch = int(state["epoch"])
        self.last_checkpoint = self.start_epoch
        self.history = History.from_json(state["history"])
        self.stop_training = bool(state.get("stopped"))
        self.stop_reason = state.get("stop_reason")
        if not self.writer or finished:  # a finished run trained on: its weights and history are complete
            return
        with self.writing():  # a kill between state.json and these left them one epoch behind
            rundir.remove_stale_checkpoints(self.run_dir, keep=Path(state["tensors"]).name)  # and temporary files
            rundir.save_weights(self.run_dir, self.task.model, self.start_epoch)
            rundir.write_history(self.run_dir, self.history)

    def write_run_end(self) -> None:
        """Final weights (the best ones after early stopping), history and final metrics, then
        ``state.json`` marked finished: a run killed before that resumes to write them."""
        if not self.writer:
            return
        last = self.history[-1]["epoch"] if self.history else 0
        metrics = {
            **self.test_metrics,
            "epochs": len(self.history),
            "engine": self.task.engine,
            "stop_reason": self.stop_reason,
        }
        with self.writing():
            rundir.save_weights(self.run_dir, self.task.model, last)
            rundir.write_history(self.run_dir, self.history)
            rundir.write_json(self.run_dir / "metrics.json", metrics)
            state = rundir.read_json(self.run_dir / "state.json")
            rundir.write_json(self.run_dir / "state.json", {**state, "finished": True})


def weighted_means(sums: dict[str, list[torch.Tensor]], sizes: list[int]) -> dict[str, torch.Tensor]:
    """Per metric, the mean of its step values weighted by batch size: one stack per metric
    (the epoch's only synchronisation with the device happens when the caller reads them)."""
    if not sizes:
        return {}
    weights = torch.tensor(sizes, dtype=torch.float64)  # (steps,)
    total = weights.sum()
    return {
        name: (torch.stack(values).to("cpu", torch.float64) * weights).sum() / total for name, values in sums.items()
    }
