"""One browser tab's session: its own network, Trainer and Generators, in its own thread.

The thread owns the model: every command (settings, play, pause, step, reset, upload,
the hidden layer to show, export) goes through its queue, and frames are built between
epochs, so nothing touches the weights while an epoch runs and no lock is needed. Two
sessions share nothing: each Trainer makes its own ``capas.rng.Generators`` from its
seed, and nothing reads or seeds torch's global generator.

Training is capas's own: ``Trainer.setup`` builds the task (a ``SupervisedTask``, which
picks the engine), and each epoch is the loop's own epoch (``Trainer.run_epoch``, then
``validate``, the schedules, the history), exactly the steps of ``Trainer.fit_loop``, so
the ``capas train`` command an export prints trains the same weights.
"""

from __future__ import annotations

import io
import queue
import secrets
import shlex
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from capas.errors import CapasError
from capas.playground import frames
from capas.playground.data import SessionData, Upload, parse_csv, session_data, upload_csv
from capas.playground.settings import LIMITS, LimitError, PlaygroundError, Settings

#: the length a session's TrainConfig is given (a playground trains until paused)
MAX_EPOCHS = 1_000_000
Send = Callable[[dict[str, Any]], None]


class Session:
    """A tab's training session; ``send`` delivers a message to the page (any thread)."""

    def __init__(self, send: Send) -> None:
        self.id = secrets.token_urlsafe(12)
        self.send = send
        self.commands: queue.Queue = queue.Queue()
        self.settings: Settings | None = None
        self.upload: Upload | None = None
        self.trainer: Any = None
        self.data: SessionData | None = None
        self.spec = ""
        self.running = False
        self.closed = False
        self.layer: str | None = None  # the layer of the hidden-representation panel
        self.sent_epochs = 0  # history records already sent
        self.warning: str | None = None  # the last gradient warning, kept on screen
        self.last_frame = 0.0
        self.thread = threading.Thread(target=self._loop, name=f"playground-{self.id}", daemon=True)

    # ---- called from the server ----------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def submit(self, kind: str, payload: Any = None) -> Future:
        """Queue a command for the session's thread; the future holds its result."""
        future: Future = Future()
        self.commands.put((kind, payload, future))
        return future

    def stop(self) -> None:
        """Tell the thread to end (it does within half a second); returns at once, so a
        server handler that is being cancelled cannot lose it."""
        if not self.closed:
            self.closed = True
            self.commands.put(("close", None, Future()))

    def close(self, timeout: float = 10.0) -> None:
        """Stop training and end the thread (a closed tab)."""
        self.stop()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    # ---- the thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.closed:
            training = self.running and self.trainer is not None
            try:
                command = self.commands.get_nowait() if training else self.commands.get(timeout=0.5)
            except queue.Empty:
                command = None
            if command is not None:
                self._handle(*command)
                continue
            if training:
                self._train_epoch()
                if time.perf_counter() - self.last_frame >= 1.0 / self.settings.fps:
                    self._send_frame()

    def _handle(self, kind: str, payload: Any, future: Future) -> None:
        try:
            result = self._dispatch(kind, payload)
        except LimitError as err:
            self.send({"type": "limit", "message": str(err)})
            future.set_exception(err)
        except CapasError as err:
            self.send({"type": "error", "message": str(err)})
            future.set_exception(err)
        except Exception as err:  # a session survives what it was sent; the page shows why
            message = f"{type(err).__name__}: {err}"
            self.send({"type": "error", "message": message})
            future.set_exception(PlaygroundError(message))
        else:
            future.set_result(result)

    def _dispatch(self, kind: str, payload: Any) -> Any:
        if kind == "close":
            self.running = False
            return None
        if kind == "settings":
            return self._rebuild(Settings.parse(payload or {}), self.upload)
        if kind == "upload":
            name, text = str(payload.get("name") or "upload.csv"), str(payload.get("text") or "")
            upload = parse_csv(name, text)
            settings = (self.settings or Settings()).model_copy(update={"problem": "upload"})
            return self._rebuild(Settings.parse(settings.model_dump()), upload)
        if self.trainer is None:
            raise PlaygroundError("the session has no network yet: send its settings first")
        if kind == "play":
            self.running = True
            self._send_status()
        elif kind == "pause":
            self.running = False
            self._send_frame()
        elif kind == "step":
            self.running = False
            self._train_epoch()
            self._send_frame()
        elif kind == "reset":
            self.running = False
            return self._rebuild(self.settings, self.upload)
        elif kind == "layer":
            names = self.trainer.model.layer_names()
            if payload not in names:
                raise PlaygroundError(f"unknown layer {payload!r}; the layers are {', '.join(names)}")
            self.layer = payload
            self._send_frame()
        elif kind == "export":
            return self._export()
        elif kind == "command":
            return {"command": self.command()}
        else:
            raise PlaygroundError(f"unknown message type {kind!r}")
        return None

    def _rebuild(self, settings: Settings, upload: Upload | None) -> dict[str, Any]:
        """A new network and Trainer for ``settings``; on any error the old ones stay."""
        from capas.api.fit import build_for
        from capas.tasks import for_model
        from capas.train.config import TrainConfig
        from capas.train.loop import Trainer

        data = session_data(settings, upload)
        inputs = len(settings.features)
        outputs = 1 if data.num_classes is None else data.num_classes
        spec = settings.model_spec(inputs, outputs)
        network = build_for(
            spec, data.train_data, loss=settings.loss or None, act=settings.activation, seed=settings.seed
        )
        parameters = sum(p.numel() for p in network.parameters())
        if parameters > LIMITS["max_parameters"]:
            raise LimitError(
                f"the network has {parameters:,} parameters; a playground session allows {LIMITS['max_parameters']:,}"
            )
        config = TrainConfig.from_options(epochs=MAX_EPOCHS, **settings.train_options())
        trainer = Trainer(for_model(network), config, quiet=True)
        trainer.setup(data.train_data)
        self.settings, self.upload, self.data, self.trainer, self.spec = settings, upload, data, trainer, spec
        names = network.layer_names()
        self.layer = names[-2] if len(names) > 1 else names[0]
        self.sent_epochs, self.warning = 0, None
        state = {
            "type": "state",
            "settings": settings.model_dump(),
            "spec": spec,
            "canonical": network.config()["spec"],
            "parameters": parameters,
            "engine": trainer.engine,
            "task": "regression" if data.num_classes is None else "classification",
            "layers": frames.structure(network, data.features),
            "hidden_layers": names,
            "data": data.page(),
            "upload": None if upload is None else upload.name,
            "grid": frames.GRID,
        }
        self.send(state)
        self._send_frame()
        return {"spec": spec, "parameters": parameters, "engine": trainer.engine}

    def _train_epoch(self) -> None:
        """One epoch of the loop's own steps (``Trainer.fit_loop``'s body, without a run directory)."""
        trainer = self.trainer
        epoch = len(trainer.history) + 1
        if epoch > MAX_EPOCHS:
            self.running = False
            raise LimitError(f"a playground session trains at most {MAX_EPOCHS:,} epochs; reset it")
        trainer.epoch = epoch
        trainer.notify("on_epoch_begin", epoch)
        started = time.perf_counter()
        try:
            record = {"epoch": epoch, "lr": trainer.current_lr(), **trainer.run_epoch(epoch)}
        except CapasError as err:  # a loss that became NaN: stop and say so
            self.running = False
            self.send({"type": "error", "message": str(err)})
            self._send_frame()
            return
        record.update(trainer.validate())
        trainer.step_schedules_per_epoch(record)
        record["seconds"] = time.perf_counter() - started
        trainer.history.append(record)
        trainer.notify("on_epoch_end", epoch, record)
        trainer.epoch = 0

    def _send_status(self) -> None:
        self.send({"type": "status", "running": self.running, "epoch": len(self.trainer.history)})

    def frame(self) -> dict[str, Any]:
        """The page's picture of the network now (see :mod:`capas.playground.frames`)."""
        trainer, data = self.trainer, self.data
        network = trainer.model
        grid, _ = data.grid(frames.GRID)
        outputs = frames.layer_outputs(network, grid.to(trainer.device))
        history = trainer.history
        new = history[self.sent_epochs :]
        self.sent_epochs = len(history)
        epoch = len(history)
        norms, findings = frames.gradient_bars(history[-1], epoch) if epoch else ({}, [])
        if findings:
            self.warning = findings[0]
        page = data.page()
        return {
            "type": "frame",
            "epoch": epoch,
            "running": self.running,
            "losses": [[r["epoch"], r.get("train_loss"), r.get("val_loss")] for r in new],
            "accuracy": [history[-1].get("train_accuracy"), history[-1].get("val_accuracy")] if epoch else None,
            "output": frames.output_map(outputs[-1][1].cpu(), data.num_classes, page["target_range"]),
            "units": frames.unit_maps([(name, out.cpu()) for name, out in outputs]),
            "weights": frames.dense_weights(network),
            "gradients": norms,
            "findings": findings,
            "warning": self.warning,
            "hidden": frames.hidden_points(network, trainer.task.x_train, self.layer),
        }

    def _send_frame(self) -> None:
        self.last_frame = time.perf_counter()
        self.send(self.frame())

    # ---- export ---------------------------------------------------------------------------
    def command(self) -> str:
        """The ``capas train`` command that trains this session's run again."""
        data_file = None if self.upload is None else _csv_name(self.upload.name)
        return self.settings.command(self.spec, max(1, len(self.trainer.history)), data_file)

    def _export(self) -> dict[str, Any]:
        """The session as a capas run directory, zipped in memory: written by the Trainer's
        own writers (model.json, checkpoint, config.json, history, metrics) into a temporary
        directory that is removed afterwards; an upload's points (as features) ride along."""
        from capas.train import rundir

        trainer = self.trainer
        epochs = len(trainer.history)
        if epochs == 0:
            raise PlaygroundError("train at least one epoch (play or step) before exporting")
        command = self.command()
        name = f"playground-{self.settings.problem}-{epochs}"
        saved = trainer.config
        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory(prefix="capas-playground-") as tmp:
            run_dir = Path(tmp) / name
            run_dir.mkdir()
            trainer.config = saved.model_copy(update={"epochs": epochs})
            trainer.run_dir, trainer.command = run_dir, shlex.split(command)
            try:
                with rundir.lock(run_dir):
                    trainer.write_run_start()
                    trainer.save_checkpoint(epochs)
                    trainer.test_metrics = trainer.task.final_metrics()
                    trainer.write_run_end()
            finally:
                trainer.config, trainer.run_dir = saved, None
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(run_dir.iterdir()):
                    if path.is_file() and not path.name.startswith("."):
                        archive.write(path, f"{name}/{path.name}")
                archive.writestr(f"{name}/command.txt", command + "\n")
                if self.upload is not None:
                    archive.writestr(f"{name}/{_csv_name(self.upload.name)}", upload_csv(self.upload, self.settings))
        return {"name": name, "command": command, "zip": buffer.getvalue()}


def _csv_name(name: str) -> str:
    """A plain file name for an upload's points in an export."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem)[:60] or "upload"
    return f"{stem}-features.csv"
