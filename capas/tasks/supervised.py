"""``SupervisedTask``: learn ``x -> y`` (classification or regression) with BackProp.

Everything that makes a step *supervised* lives here: the loss bound to the task (target
codes, class weights), the engine (autograd, or the explicit delta rule of
``capas.backprop``, chosen once in ``setup``), resampling and class weights of imbalanced
data, curriculum ordering, input noise, max-norm, sampled per-layer gradient norms, and
the test metrics. The loop around it is :class:`capas.train.Trainer`.

The module a step runs is ``forward_module``: for a capas ``Network`` its training module
(logits for the cross-entropies, s^L otherwise); that is what DDP, ``torch.compile`` or
AMP wrap, so a wrapped network never feeds probabilities to a loss that wants logits.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from capas.augment import augmenter_for
from capas.backprop.stepper import epoch_mean
from capas.data.batch import Batch
from capas.errors import TrainingError
from capas.layers.norm import Dropout
from capas.layers.recurrent import sequence_mask, set_truncation
from capas.models.freezing import check_trainable, freeze
from capas.models.modes import eval_mode
from capas.models.protocol import model_loss, output_shape, training_forward
from capas.objectives import Loss, apply_max_norm, canonical_loss, penalized_parameters
from capas.tasks.sequences import SequenceLoss, batch_mask, check_finite, evaluate_sequences, masked_accuracy
from capas.train import distributed
from capas.train.activity import DECLINED as ACTIVITY_DECLINED
from capas.train.activity import activity_for
from capas.train.curriculum import Curriculum, loss_difficulty
from capas.train.engines import make_stepper
from capas.train.imbalance import class_weights, resample
from capas.train.inputs import check_targets
from capas.train.optim import make_optimizer, schedule_for
from capas.train.regularization import add_input_noise
from capas.train.task import Task, TaskContext

#: Per-layer gradient norms are averaged over evenly spaced steps of an epoch: at most
#: ``GRAD_NORM_SAMPLES`` of them, and at most one in ``GRAD_NORM_EVERY`` once an epoch has
#: enough steps to keep 8 samples. A measured step costs ~60% more than another (the norms
#: read every gradient, and the explicit engine cannot fuse the update into backward then),
#: so measuring 1 step in 32 keeps the default diagnostics near 2% of training, while a
#: few dozen steps already give a stable mean.
GRAD_NORM_SAMPLES = 64
GRAD_NORM_EVERY = 32
#: why a multi-process run trains under autograd (the history echo and errors say it)
MULTI_PROCESS_DECLINED = (
    "the explicit delta-rule engine computes its gradients outside autograd, where DDP's hooks "
    "never run, so it does not all-reduce them across processes"
)


def grad_norm_stride(steps: int) -> int:
    """Measure gradient norms on every ``stride``-th step of an epoch of ``steps`` updates."""
    return max(1, math.ceil(steps / GRAD_NORM_SAMPLES), min(GRAD_NORM_EVERY, steps // 8))


class SupervisedTask(Task):
    """Supervised training of ``model`` (a capas ``Network`` or any ``nn.Module`` whose
    ``forward`` returns logits for the cross-entropies).

    Args:
        model: what to train; a ``DistributedDataParallel`` around a ``Network`` is
            re-wrapped around the network's training module (same process group).
        curriculum_scores: one difficulty per training sample, for ``curriculum="scores"``.
        curriculum_reference: for ``curriculum="loss"``, the model whose per-sample loss
            ranks the samples (default: the model being trained, as it starts).
    """

    kind = "supervised"
    multi_process = True  # DDP around the training module when the loop runs several ranks

    def __init__(
        self,
        model: nn.Module,
        *,
        curriculum_scores: Tensor | None = None,
        curriculum_reference: nn.Module | None = None,
        mask_padding: bool = False,
    ) -> None:
        self.wrapper = model if isinstance(model, DistributedDataParallel) else None
        self.model = model.module if self.wrapper is not None else model
        self.curriculum_scores = curriculum_scores
        self.curriculum_reference = curriculum_reference
        self.mask_padding = mask_padding  # sequences: trailing all-zero steps are padding (capas.tasks.sequences)
        self.curriculum: Curriculum | None = None
        self._losses: list[Tensor] = []  # the epoch's step losses (per-step loop)
        self._epoch_losses: Tensor | None = None  # the same, when the engine ran the epoch
        self._steps = 0

    # ---- setup -----------------------------------------------------------------------------
    def setup(self, ctx: TaskContext) -> None:
        """Data on the device, the loss, frozen layers, optimizer, engine, curriculum, schedule."""
        self.ctx = ctx
        config = ctx.config
        self._setup_data(ctx)
        self.augmenter = augmenter_for(config.augment, self.probe(1).x) if config.augment else None
        self._setup_loss(ctx)
        if config.frozen_layers:
            freeze(self.model, config.frozen_layers)
        check_trainable(self.model, config.frozen_layers)
        self.optimizer = make_optimizer(
            config.optimizer, self.model.parameters(), config.lr, config.momentum, **config.optimizer_options
        )
        self.forward_module = self._training_module()
        if self.wrapper is not None or ctx.ranks is not None:  # the explicit engines bypass DDP's all-reduce
            if config.engine in ("backprop", "fast"):
                raise TrainingError(
                    f"engine='{config.engine}' cannot train on several processes: {MULTI_PROCESS_DECLINED}; "
                    "use engine='autograd' or 'auto'"
                )
            config = config.model_copy(update={"engine": "autograd"})
        self.activity = activity_for(self.model, config)  # activity sparsity (capas/train/activity.py)
        if self.activity is not None:
            self.forward_module = self.activity.wrap(self.forward_module)
            config = config.model_copy(update={"engine": "autograd"})
        self.stepper, self.engine = make_stepper(
            self.model, self.optimizer, self.loss, config, forward=self.forward_module, generator=ctx.generators.dropout
        )
        if self.activity is not None and ctx.config.engine == "auto":
            self.stepper.declined = ACTIVITY_DECLINED
        if ctx.ranks is not None and ctx.config.engine == "auto":
            self.stepper.declined = MULTI_PROCESS_DECLINED
        self._set_dropout_generator(ctx.generators.dropout)
        self._target = 0  # which of a batch's targets the engine steps on
        self._codes: Tensor | None = None
        if self.engine == "backprop" and self.x_train is not None:
            # the explicit engine's targets, coded once: the adapter carries (labels, codes)
            self._codes = self.stepper.encode(self.y_train)  # (N, K)
            self.train_adapter = ctx.make_adapter((self.x_train,), (self.y_train, self._codes))
            self._target = 1
        self.constrained = penalized_parameters(self.model, include_bias=False)
        self.curriculum = self._make_curriculum()
        steps = self.train_adapter.steps_per_epoch
        self.schedule = schedule_for(config, self.optimizer, steps, total_steps=self._total_steps())
        self.stride = grad_norm_stride(steps)
        if config.engine in ("auto", "fast"):
            self._use_fast_kernel(ctx)
        if ctx.data.loader is None:  # a model that does not fit the inputs fails before a run directory exists
            with torch.no_grad(), eval_mode(self.model):
                self.eval_step(Batch((self.x_train[:1],), (self.y_train[:1],)))

    def _setup_data(self, ctx: TaskContext) -> None:
        """Resample the training split (only it), find the classes, build the adapters."""
        data, config = ctx.data, ctx.config
        if data.loader is not None:
            for option, name in ((config.resample != "none", "resampling"), (config.curriculum, "curriculum ordering")):
                if option:
                    raise TrainingError(f"{name} needs in-memory data, not a DataLoader; give (x, y) or a Dataset")
            from capas.data.adapters import LoaderAdapter

            ranks = {} if ctx.ranks is None else {"rank": ctx.ranks.rank, "world_size": ctx.ranks.world_size}
            self.train_adapter = LoaderAdapter(data.loader, ctx.device, ctx.dtype, seed=config.seed, **ranks)
            self.num_classes = self._loader_classes()
            data.num_classes = self.num_classes
            self.x_train = self.y_train = self.x_val = self.y_val = None
            self.val_adapter = (
                None if data.val_loader is None else LoaderAdapter(data.val_loader, ctx.device, ctx.dtype)
            )
            self._check_output_width()
            return
        x_train, y_train = data.x_train, data.y_train
        if y_train is None:
            raise TrainingError(
                "supervised training needs targets: give (x, y), (x_train, y_train, x_val, y_val) or "
                "a Dataset; inputs alone train an Autoencoder or an RBM"
            )
        if config.resample != "none":
            x_train, y_train = resample(x_train, y_train, config.resample, config.seed)
        self.num_classes = data.num_classes
        self._check_output_width()
        self.x_train, self.y_train = ctx.on_device(x_train), ctx.on_device(y_train)
        self.x_val, self.y_val = ctx.on_device(data.x_val), ctx.on_device(data.y_val)
        self.train_adapter = ctx.make_adapter((self.x_train,), (self.y_train,))
        self.val_adapter = None if self.x_val is None else ctx.make_adapter((self.x_val,), (self.y_val,))

    @property
    def classification(self) -> bool:
        return self.num_classes is not None

    def _setup_loss(self, ctx: TaskContext) -> None:
        """The training loss (with class weights) and an unweighted one for evaluation."""
        config = ctx.config
        weights = None
        if config.class_weights is not None:
            if self.num_classes is None or ctx.data.loader is not None:
                raise TrainingError("class_weights need in-memory classification data with class labels")
            weights = class_weights(config.class_weights, self.y_train.cpu(), self.num_classes)
        name = self.resolve_loss_name(ctx)
        if name == "cross_entropy" and output_shape(self.model) == (1,):
            raise TrainingError(
                "cross_entropy needs one output unit per class, but the model has 1 (a softmax over one unit "
                "is always 1); use loss binary_cross_entropy or mse for a single output, or end the spec with -2"
            )
        check_targets(self.y_train, name, output_shape(self.model))  # float labels given to a classifier
        self.loss = Loss(
            name, num_classes=self.num_classes, class_weights=weights, target_encoding=config.target_encoding
        ).to(ctx.device, ctx.dtype)
        self.eval_loss = Loss(name, num_classes=self.num_classes, target_encoding=config.target_encoding).to(
            ctx.device, ctx.dtype
        )
        if getattr(self.model, "sequence", False):  # per-step outputs and masks (capas.tasks.sequences)
            self.loss, self.eval_loss = SequenceLoss(self.loss), SequenceLoss(self.eval_loss)
            set_truncation(self.model, config.tbptt)
            check_finite(self.x_train, "training")

    def resolve_loss_name(self, ctx: TaskContext) -> str:
        """The config's loss, else the model's own (``Network.loss``), else by task."""
        if ctx.config.loss is not None:
            return canonical_loss(ctx.config.loss)
        built_for = model_loss(self.model)
        if built_for is not None:
            return canonical_loss(built_for)
        return "cross_entropy" if self.classification else "mse"

    def _training_module(self) -> nn.Module:
        """What a step runs: the network's training module (logits when the loss wants them),
        re-wrapped in DDP when the model came wrapped."""
        module = training_forward(self.model, self.loss.from_logits)
        ranks = self.ctx.ranks
        if ranks is not None and self.ctx.config.sync_batchnorm:
            distributed.sync_batch_norm(self.model)  # in place: the training module shares the layers
        if self.wrapper is None:
            return module if ranks is None else distributed.wrap(module, self.ctx.device)
        if module is self.model:
            return self.wrapper
        wrapper = self.wrapper
        return DistributedDataParallel(
            module,
            device_ids=wrapper.device_ids,
            output_device=wrapper.output_device,
            process_group=wrapper.process_group,
            find_unused_parameters=wrapper.find_unused_parameters,
        )

    def _set_dropout_generator(self, generator: torch.Generator) -> None:
        """Dropout masks draw from the run's dropout generator, never torch's global one."""
        for module in self.model.modules():
            if isinstance(module, Dropout):
                module.generator = generator

    def _check_output_width(self) -> None:
        """A Network's output width must match the classes (1 unit is fine for 2 classes)."""
        shape = output_shape(self.model)
        if self.num_classes is None or not shape or len(shape) != 1:
            return
        width = shape[0]
        if width != self.num_classes and not (width == 1 and self.num_classes == 2):
            raise TrainingError(
                f"the model has {width} output unit(s) but the data has {self.num_classes} classes; "
                f"end the model spec with -{self.num_classes}"
            )

    def _loader_classes(self) -> int | None:
        """Classes of DataLoader data: int labels -> the model's output width, floats -> None."""
        batch = self.train_adapter.to_batch(next(iter(self.ctx.data.loader)))
        if batch.y is None or batch.y.dtype.is_floating_point:
            return None
        with torch.no_grad(), eval_mode(self.model):
            return int(self.model(batch.x[:1]).shape[1])

    def _total_steps(self) -> int:
        """Updates in the whole fit: a curriculum's early epochs use fewer samples, so fewer steps."""
        config = self.ctx.config
        if self.curriculum is None:
            return config.epochs * self.train_adapter.steps_per_epoch
        return sum(self.train_adapter.epoch_steps(self.curriculum.available(e)) for e in range(config.epochs))

    def _make_curriculum(self) -> Curriculum | None:
        config = self.ctx.config
        if config.curriculum is None:
            return None
        if config.curriculum == "scores":
            if self.curriculum_scores is None:
                raise TrainingError("curriculum='scores' needs curriculum_scores: one difficulty per training sample")
            scores = torch.as_tensor(self.curriculum_scores)
            if len(scores) != len(self.x_train):
                raise TrainingError(f"got {len(scores)} curriculum scores for {len(self.x_train)} training samples")
        else:  # "loss": a reference model's per-sample loss ranks the samples (default: this model)
            reference = self.curriculum_reference or self.model
            reference.to(self.ctx.device)
            forward = training_forward(reference, self.eval_loss.from_logits)
            scores = loss_difficulty(reference, forward, self.eval_loss.per_sample, self.x_train, self.y_train)
        ramp = config.curriculum_epochs or max(1, config.epochs // 2)
        return Curriculum(scores, config.pacing, config.curriculum_start, ramp)

    # ---- the protocol ------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": self.optimizer}

    def schedules(self) -> dict[str, Any]:
        return {} if self.schedule is None else {"main": self.schedule}

    def epoch_subset(self, epoch: int) -> Tensor | None:
        return None if self.curriculum is None else self.curriculum.available(epoch - 1)

    def _update(self, batch: Batch) -> Tensor:
        """Input noise, one engine update (gradient norms on every ``stride``-th step), max-norm."""
        x = batch.x
        config = self.ctx.config
        if self.augmenter is not None:  # fresh random transforms of every batch (capas.augment)
            x = self.augmenter(x, self.ctx.generators.augment)
        if config.input_noise:
            x = add_input_noise(x, config.input_noise, self.ctx.generators.noise)
        self.stepper.measure_norms = self._steps % self.stride == 0
        self._steps += 1
        with sequence_mask(batch_mask(x, batch.mask, self.mask_padding)):
            loss = self.stepper.step(x, batch.targets[self._target])
        if config.max_norm is not None:
            apply_max_norm(self.constrained, config.max_norm)
        self._losses.append(loss)
        return loss

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        loss = self._update(batch)
        if not self.classification:
            return {"loss": loss}
        with sequence_mask(batch_mask(batch.x, batch.mask, self.mask_padding)):
            return {"loss": loss, "accuracy": masked_accuracy(self.loss.predictions(self.stepper.last_output), batch.y)}

    def run_epoch(self, epoch: int, batches: Any, after_step: Callable[[], None] | None) -> dict[str, Tensor]:
        """The per-step loop without per-step metrics: the losses are kept as a list of
        0-dim tensors and the predictions as one argmax per step; both are reduced once.
        When nothing but the explicit engine's update happens in a step, the engine runs
        the whole epoch itself (:meth:`_engine_epoch`)."""
        if self._engine_runs_epochs(after_step):
            return self._engine_epoch()
        sizes, predicted, labels = [], [], []
        first = len(self._losses)
        # the explicit engine needs no autograd graph: one no_grad for the epoch, not one a step
        with torch.no_grad() if self.engine in ("backprop", "fast") else contextlib.nullcontext():
            for batch in batches:
                self._update(batch)
                if after_step is not None:
                    after_step()
                sizes.append(batch.size)
                if self.classification:
                    real = self._real_steps(batch)  # per-step labels: only the real steps count
                    predicted.append(self.loss.predictions(self.stepper.last_output)[real].reshape(-1))
                    labels.append(batch.y[real].reshape(-1))
        if not sizes:
            return {}
        weights = torch.tensor(sizes, dtype=torch.float64)  # (steps,)
        losses = torch.stack(self._losses[first:]).to("cpu", torch.float64)  # (steps,)
        means = {"loss": (losses * weights).sum() / weights.sum()}
        if self.classification:
            means["accuracy"] = (torch.cat(predicted) == torch.cat(labels)).double().mean()
        return means

    def _real_steps(self, batch: Batch) -> Tensor | slice:
        """Index of the labels that count: a (B, T) mask for per-step labels, else all."""
        mask = batch_mask(batch.x, batch.mask, self.mask_padding) if batch.y.dim() == 2 else None
        return slice(None) if mask is None else mask

    def _engine_runs_epochs(self, after_step: Callable[[], None] | None) -> bool:
        """True when a step is the explicit engine's update and nothing else: in-memory data
        in shuffled order, no input noise, max-norm, per-batch schedule or curriculum, and
        (for classes) an argmax decision."""
        config = self.ctx.config
        return (
            self._codes is not None
            and after_step is None
            and self.curriculum is None
            and not config.input_noise
            and not config.augment
            and (config.max_norm is None or self.engine == "fast")  # the kernel applies max-norm itself
            and (not self.classification or self._codes.shape[1] > 1)
        )

    def _use_fast_kernel(self, ctx: TaskContext) -> None:
        """The compiled whole-epoch kernel (``capas.fast``) around the delta-rule engine when
        it applies (``engine="auto"`` also wants a small net); ``"fast"`` that cannot apply
        is an error naming why."""
        from capas.fast import FastStepper, unsupported_reason
        from capas.fast.stepper import MAX_PARAMETERS, parameter_count

        config = ctx.config
        reason = unsupported_reason(
            self.stepper,
            config,
            device=ctx.device,
            in_memory=self.x_train is not None,
            per_batch_schedule=self.schedule is not None and self.schedule.per_batch,
            threshold_decision=self.classification and self._codes is not None and self._codes.shape[1] == 1,
        )
        if reason is None and config.engine == "auto" and parameter_count(self.stepper) > MAX_PARAMETERS:
            reason = f"the network has more than {MAX_PARAMETERS:,} parameters"
        if reason is not None and config.engine == "fast":
            raise TrainingError(f"engine='fast' cannot train this run: {reason}; use engine='auto'")
        if reason is None:
            self.stepper, self.engine = FastStepper(self.stepper, max_norm=config.max_norm), "fast"

    def _engine_epoch(self) -> dict[str, Tensor]:
        """One epoch run by ``BackpropStepper.steps`` in the order the adapter would draw
        (the same ``randperm`` of the shuffle generator; ``"full"``: the data as they are), so
        it trains exactly as the per-step loop does, without the loop's per-step work."""
        n = len(self.x_train)
        full = self.ctx.config.batch_size == "full"
        size = n if full else int(self.ctx.config.batch_size)
        order = torch.arange(n) if full else torch.randperm(n, generator=self.ctx.generators.shuffle)
        labels = self.y_train if self.classification else None
        losses, correct = self.stepper.steps(
            self.x_train, self._codes, size, order.to(self.x_train.device), labels=labels, measure_every=self.stride
        )
        self._epoch_losses = losses
        means = {"loss": epoch_mean(losses.double(), n, size)}
        if correct is not None:
            means["accuracy"] = correct.double() / n
        return means

    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        with sequence_mask(batch_mask(batch.x, batch.mask, self.mask_padding)):
            out = self.forward_module(batch.x)  # (B, K): logits or outputs, as the loss wants
            metrics = {"loss": self.eval_loss(out, batch.y)}
            if self.classification:
                metrics["accuracy"] = masked_accuracy(self.eval_loss.predictions(out), batch.y)
        return metrics

    def probe(self, n: int) -> Batch:
        if self.x_train is not None:
            return Batch((self.x_train[:n],), (self.y_train[:n],))
        batch = self.train_adapter.to_batch(next(iter(self.ctx.data.loader)))
        return Batch((batch.x[:n],), (batch.y[:n],))

    def first_non_finite_step(self) -> int | None:
        losses = self._epoch_losses if self._epoch_losses is not None else torch.stack(self._losses)
        finite = torch.isfinite(losses) if len(losses) else None
        if finite is None or bool(finite.all()):
            return None
        return int((~finite).nonzero()[0, 0]) + 1

    def epoch_metrics(self) -> dict[str, float]:
        """The epoch's mean per-layer gradient norms (and, under fp16 mixed precision, the loss
        scale and the steps it skipped); resets the per-epoch step counters."""
        self._losses, self._steps, self._epoch_losses = [], 0, None
        amp = self.stepper.amp_metrics() if self.ctx.config.amp == "fp16" else {}
        amp.update(self.activity.epoch_metrics() if self.activity is not None else {})  # active_units
        norms = self.stepper.layer_grad_norms() if self.ctx.config.grad_norms else {}
        if not norms:
            return amp
        values = torch.stack([v.float() for v in norms.values()]).tolist()
        return {**amp, **{f"grad_norm/{name}": value for name, value in zip(norms, values)}}

    def final_metrics(self) -> dict[str, Any]:
        """Test loss/accuracy, per-class scores and confusion matrix (or regression errors)."""
        data = self.ctx.data
        if data.x_test is None:
            return {}
        from capas.train.evaluation import evaluate_model

        x, y = self.ctx.on_device(data.x_test), self.ctx.on_device(data.y_test)
        if isinstance(self.eval_loss, SequenceLoss):
            batch_size = self.ctx.config.eval_batch_size
            return evaluate_sequences(self.model, x, y, self.eval_loss, batch_size, self.mask_padding)
        return evaluate_model(self.model, x, y, self.eval_loss, self.ctx.config.eval_batch_size)

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {} if self.curriculum is None else {"curriculum/order": self.curriculum.order}
        return tensors, {"stepper": self.stepper.state_dict() if hasattr(self.stepper, "state_dict") else {}}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
        if hasattr(self.stepper, "load_state_dict"):
            self.stepper.load_state_dict(record.get("stepper", {}))
        if self.curriculum is not None and "curriculum/order" in tensors:
            self.curriculum.order = tensors["curriculum/order"]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "engine": self.engine, "loss": self.loss.name, "amp": self.ctx.config.amp}
