"""The trainer's preparation and persistence: device, data, loss, optimizer, schedule,
stepper, RNGs, curriculum, callbacks; checkpoints written to and restored from a run directory.

Kept apart from the loop (trainer.py) so each file reads as one concern. Restoring puts
back *everything* that decides the next epoch (weights, optimizer and scheduler state,
every RNG, callback state, the curriculum order, the history), so a resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import platform
import sys
import time

import torch

from capas.errors import RunDirError, TrainingError
from capas.train import rundir
from capas.train.callbacks import Callback, ProgressBar, default_callbacks
from capas.train.checkpoint import load_optimizer_state, load_scheduler_state, optimizer_state, scheduler_state
from capas.train.curriculum import Curriculum, loss_difficulty
from capas.train.device import resolve_device
from capas.train.engines import make_stepper
from capas.train.history import History
from capas.train.imbalance import class_weights, resample
from capas.train.inputs import TrainingData
from capas.train.losses import Loss, canonical_loss
from capas.models.freezing import freeze
from capas.train.optim import make_optimizer, make_schedule, steps_per_epoch
from capas.train.regularization import penalized_parameters
from capas.train.steppers import model_forward


class TrainerSetup:
    """Mixin of :class:`capas.train.Trainer`: everything before the first epoch, and checkpoints."""

    def setup(self, data: TrainingData) -> None:
        """Device, data splits, loss, optimizer and schedule, stepper, RNGs, curriculum, callbacks."""
        config = self.config
        self.device = resolve_device(config.device)
        if config.amp and self.device.type != "cuda":
            raise TrainingError(f"amp=True needs a CUDA device, but training runs on {self.device}; drop --amp")
        torch.manual_seed(config.seed)  # dropout and other global-RNG draws
        self.model.to(self.device).train()
        self.dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), None)
        self._setup_data(data)
        self._setup_loss()
        if config.frozen_layers:
            freeze(self.model, config.frozen_layers)
        self.optimizer = make_optimizer(config.optimizer, self.model.parameters(), config.lr, config.momentum,
                                        **config.optimizer_options)
        self.curriculum = self._make_curriculum()
        self.schedule = None if config.scheduler is None else make_schedule(
            config.scheduler, self.optimizer, config.lr, config.epochs, self.steps_per_epoch,
            total_steps=self._total_steps(), **config.scheduler_options)
        self.stepper, self.engine = make_stepper(self.model, self.optimizer, self.loss, config)
        self.constrained = penalized_parameters(self.model, include_bias=False)
        self.shuffle_generator = torch.Generator().manual_seed(config.seed)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.callbacks = [*default_callbacks(config), *self.user_callbacks]
        if ProgressBar.wanted(self.quiet):
            self.callbacks.append(ProgressBar())
        self.batch_callbacks = [c for c in self.callbacks if type(c).on_batch_end is not Callback.on_batch_end]

    def _setup_data(self, data: TrainingData) -> None:
        """Resample the training split (only it), find the classes, move splits to the device."""
        self.data = data
        x_train, y_train = data.x_train, data.y_train
        if self.config.resample != "none":
            if data.loader is not None:
                raise TrainingError("resampling needs in-memory data, not a DataLoader; give (x, y) or a Dataset")
            x_train, y_train = resample(x_train, y_train, self.config.resample, self.config.seed)
        self.num_classes = data.num_classes if data.loader is None else self._loader_classes()
        data.num_classes = self.num_classes
        self._check_output_width()
        self.x_train, self.y_train = self.on_device(x_train), self.on_device(y_train)
        self.x_val, self.y_val = self.on_device(data.x_val), self.on_device(data.y_val)
        self.steps_per_epoch = len(data.loader) if data.loader is not None else steps_per_epoch(
            len(self.x_train), self.config.batch_size)

    def on_device(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """``tensor`` on the training device; floating data in the model's dtype (numpy
        arrays arrive as float64, most models are float32)."""
        if tensor is None:
            return None
        if tensor.is_floating_point() and self.dtype is not None:
            return tensor.to(self.device, self.dtype)
        return tensor.to(self.device)

    def _setup_loss(self) -> None:
        """The training loss (with class weights) and an unweighted one for evaluation."""
        config = self.config
        weights = None
        if config.class_weights is not None:
            if self.num_classes is None or self.data.loader is not None:
                raise TrainingError("class_weights need in-memory classification data with class labels")
            weights = class_weights(config.class_weights, self.y_train.cpu(), self.num_classes)
        name = self.resolve_loss_name()
        if name == "cross_entropy" and tuple(getattr(self.model, "output_shape", ()) or ()) == (1,):
            raise TrainingError(
                "cross_entropy needs one output unit per class, but the model has 1 (a softmax over one unit "
                "is always 1); use loss binary_cross_entropy or mse for a single output, or end the spec with -2"
            )
        self.loss = Loss(name, num_classes=self.num_classes, class_weights=weights,
                         target_encoding=config.target_encoding).to(self.device, self.dtype)
        self.eval_loss = Loss(name, num_classes=self.num_classes,
                              target_encoding=config.target_encoding).to(self.device, self.dtype)
        self.eval_forward = model_forward(self.model, self.loss.from_logits)
        if self.data.loader is None:  # a wrong input shape fails here, before a run directory is written
            self.evaluate(self.x_train[:1], self.y_train[:1])

    def _check_output_width(self) -> None:
        """A Network's output width must match the classes (1 unit is fine for 2 classes)."""
        shape = getattr(self.model, "output_shape", None)
        if self.num_classes is None or not shape or len(shape) != 1:
            return
        width = shape[0]
        if width != self.num_classes and not (width == 1 and self.num_classes == 2):
            raise TrainingError(
                f"the model has {width} output unit(s) but the data has {self.num_classes} classes; "
                f"end the model spec with -{self.num_classes}"
            )

    def resolve_loss_name(self) -> str:
        """The config's loss, else the model's own (``Network.loss``), else by task."""
        if self.config.loss is not None:
            return canonical_loss(self.config.loss)
        model_loss = getattr(self.model, "loss", None)
        if isinstance(model_loss, str):
            return canonical_loss(model_loss)
        return "cross_entropy" if self.data.task == "classification" else "mse"

    def _loader_classes(self) -> int | None:
        """Classes of DataLoader data: int labels -> the model's output width, floats -> None."""
        xb, yb = next(iter(self.data.loader))
        if yb.dtype.is_floating_point:
            return None
        self.model.eval()
        with torch.no_grad():
            width = int(self.model(self.on_device(xb[:1])).shape[1])
        self.model.train()
        return width

    def _total_steps(self) -> int:
        """Updates in the whole fit: a curriculum's early epochs use fewer samples, so fewer steps."""
        if self.curriculum is None:
            return self.config.epochs * self.steps_per_epoch
        return sum(steps_per_epoch(len(self.curriculum.available(e)), self.config.batch_size)
                   for e in range(self.config.epochs))

    def _make_curriculum(self) -> Curriculum | None:
        config = self.config
        if config.curriculum is None:
            return None
        if self.data.loader is not None:
            raise TrainingError("curriculum ordering needs in-memory data, not a DataLoader")
        if config.curriculum == "scores":
            if self.curriculum_scores is None:
                raise TrainingError("curriculum='scores' needs curriculum_scores: one difficulty per training sample")
            scores = torch.as_tensor(self.curriculum_scores)
            if len(scores) != len(self.x_train):
                raise TrainingError(f"got {len(scores)} curriculum scores for {len(self.x_train)} training samples")
        else:  # "loss": a reference model's per-sample loss ranks the samples (default: this model)
            reference = self.curriculum_reference or self.model
            reference.to(self.device)
            forward = model_forward(reference, self.eval_loss.from_logits)
            scores = loss_difficulty(reference, forward, self.eval_loss.per_sample, self.x_train, self.y_train)
        ramp = config.curriculum_epochs or max(1, config.epochs // 2)
        return Curriculum(scores, config.pacing, config.curriculum_start, ramp)

    # ---- run directory -----------------------------------------------------------------------
    def write_run_start(self) -> None:
        """config.json and model.json, before the first epoch."""
        record = {
            "format": rundir.FORMAT, "version": rundir.VERSION, "train": self.config.to_json(),
            "data": self.data.describe(), "engine": self.engine, "device": str(self.device),
            "command": self.command if self.command is not None else sys.argv,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
            "python": platform.python_version(),
        }
        rundir.write_json(self.run_dir / "config.json", record)
        rundir.write_json(self.run_dir / "model.json", rundir.model_config(self.model))
        self.save_checkpoint(0)  # a run killed during its first epoch resumes from the start

    def save_checkpoint(self, epoch: int) -> None:
        """Weights, optimizer/scheduler/RNG/callback state and history after ``epoch``."""
        tensors, optim_json = optimizer_state(self.optimizer)
        tensors.update(rundir.rng_state_tensors({"shuffle": self.shuffle_generator, "noise": self.noise_generator}))
        callbacks_json = {}
        for callback in self.callbacks:
            if hasattr(callback, "state_dict"):
                cb_tensors, callbacks_json[callback.name] = callback.state_dict()
                tensors.update({f"callback/{callback.name}/{k}": v for k, v in cb_tensors.items()})
        if self.curriculum is not None:
            tensors["curriculum/order"] = self.curriculum.order
        state = {
            "format": rundir.FORMAT, "epoch": epoch, "finished": epoch > 0 and (self.stop_training or epoch == self.config.epochs),
            "optimizer": optim_json, "callbacks": callbacks_json,
            "scheduler": None if self.schedule is None else scheduler_state(self.schedule.scheduler),
            "stepper": self.stepper.state_dict() if hasattr(self.stepper, "state_dict") else {},
            "stop_reason": self.stop_reason,
        }
        meta = {"format": rundir.FORMAT, "epoch": str(epoch)}
        rundir.save_weights(self.run_dir, self.model, epoch)
        rundir.save_tensors(self.run_dir / "state.safetensors", tensors, meta)
        rundir.write_json(self.run_dir / "state.json", state)
        rundir.write_history(self.run_dir, self.history)

    def restore(self, run: rundir.Run) -> None:
        """Continue ``run`` from its last checkpoint."""
        weights, state, tensors = run.checkpoint()
        if state.get("finished"):
            raise RunDirError(f"the run in {run.path} already finished ({state['epoch']} epochs); nothing to resume")
        rundir.load_weights(self.model, weights, run.path / "weights.safetensors")
        load_optimizer_state(self.optimizer, tensors, state["optimizer"])
        if self.schedule is not None and state.get("scheduler") is not None:
            load_scheduler_state(self.schedule.scheduler, state["scheduler"])
        if hasattr(self.stepper, "load_state_dict"):
            self.stepper.load_state_dict(state.get("stepper", {}))
        rundir.restore_rng_states(tensors, {"shuffle": self.shuffle_generator, "noise": self.noise_generator})
        for callback in self.callbacks:
            if hasattr(callback, "load_state_dict") and callback.name in state.get("callbacks", {}):
                prefix = f"callback/{callback.name}/"
                own = {k.removeprefix(prefix): v.to(self.device) for k, v in tensors.items() if k.startswith(prefix)}
                callback.load_state_dict(own, state["callbacks"][callback.name])
        if self.curriculum is not None and "curriculum/order" in tensors:
            self.curriculum.order = tensors["curriculum/order"]
        self.start_epoch = int(state["epoch"])
        self.history = History(run.history[: self.start_epoch])
        self.run_dir = run.path

    def write_run_end(self) -> None:
        """Final weights (the best ones after early stopping), history and test metrics."""
        last = self.history[-1]["epoch"] if self.history else 0
        rundir.save_weights(self.run_dir, self.model, last)
        rundir.write_history(self.run_dir, self.history)
        metrics = {**self.test_metrics, "epochs": len(self.history), "engine": self.engine,
                   "stop_reason": self.stop_reason}
        rundir.write_json(self.run_dir / "metrics.json", metrics)
