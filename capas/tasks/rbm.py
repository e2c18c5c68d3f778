"""``ContrastiveDivergenceTask``: train an ``RBM`` by CD-k or persistent CD-k on the loop.

The update rule is :class:`capas.models.rbm.ContrastiveDivergence` (no autograd, no torch
optimizer); this task feeds it the loop's shuffled batches of inputs, draws every Gibbs
sample from the run's ``sample`` generator, and keeps the momentum velocities, the
sparsity running mean and the persistent chains as task state, so a checkpoint resumes
bit-identically.

The training options it reads from ``TrainConfig``: ``lr`` (the CD step size rho),
``momentum`` (the velocity's decay nu; None = 0), ``l2`` (weight decay: dW -= rho l2 W),
``batch_size``, ``epochs``, ``seed``, ``device``, early stopping on a validation metric.
CD-specific settings are the task's arguments: ``k``, ``persistent``, ``sparsity_target``,
``sparsity_cost``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from capas.data.batch import Batch
from capas.errors import TrainingError
from capas.models.rbm import RBM, CDOptions, ContrastiveDivergence
from capas.tasks.options import SPARSITY_PENALTY, refuse_unused
from capas.train.task import Task, TaskContext

#: TrainConfig fields CD has no use for (it has no loss, optimizer, gradient or schedule)
UNUSED = (
    "loss",
    "optimizer",
    "optimizer_options",
    "scheduler",
    "scheduler_options",
    "amp",
    "l1",
    "regularize_bias",
    "max_norm",
    "input_noise",
    "clip_norm",
    "clip_value",
    "target_loss",
    "min_improvement",
    "class_weights",
    "resample",
    "target_encoding",
    "curriculum",
    "frozen_layers",
    "augment",
    "tbptt",
    *SPARSITY_PENALTY,
)


class ContrastiveDivergenceTask(Task):
    """CD-k (``persistent=False``) or PCD-k training of ``rbm`` on inputs (N, V) (or any
    (N, ...) that flattens to V features; Bernoulli units need values in [0, 1]).

    Args:
        rbm: the RBM to train (its weights are trained as given).
        k: Gibbs steps per update.
        persistent: keep the negative chains across updates (PCD, Tieleman 2008).
        sparsity_target: the mean hidden activation q* to pull towards (None: no pull).
        sparsity_cost: the strength of that pull.
        init_visible_bias: set b_i = logit(mean x_i) (Gaussian units: the mean) from the
            training inputs before the first update, as Hinton's practical guide advises.
        monitor: the epoch metrics are measured on the first ``monitor`` training samples.

    History, per epoch: ``train_reconstruction_error`` (mean squared error of the
    mean-field reconstruction v -> P(h|v) -> P(v|h)), ``train_free_energy`` (mean F(v)),
    ``train_pseudo_log_likelihood`` (Bernoulli units; one random unit flipped per sample,
    from the ``sample`` generator), and with validation data ``val_reconstruction_error``
    and ``val_free_energy`` (val minus train free energy grows when the RBM overfits).
    """

    kind = "rbm"
    engine = "cd"

    def __init__(
        self,
        rbm: RBM,
        *,
        k: int = 1,
        persistent: bool = False,
        sparsity_target: float | None = None,
        sparsity_cost: float = 0.0,
        init_visible_bias: bool = True,
        monitor: int = 1000,
    ) -> None:
        if not isinstance(rbm, RBM):
            raise TrainingError(f"contrastive divergence trains a capas RBM, got {type(rbm).__name__}")
        if monitor < 1:
            raise TrainingError(f"monitor is a number of training samples >= 1, got {monitor}")
        self.model = self.forward_module = rbm
        self.options = {
            "k": k,
            "persistent": persistent,
            "sparsity_target": sparsity_target,
            "sparsity_cost": sparsity_cost,
            "init_visible_bias": init_visible_bias,
            "monitor": monitor,
        }
        CDOptions(k=k, persistent=persistent, sparsity_target=sparsity_target, sparsity_cost=sparsity_cost)

    def setup(self, ctx: TaskContext) -> None:
        """Inputs flattened and checked on the device, visible biases from the data, the CD rule."""
        self.ctx = ctx
        config, data, rbm = ctx.config, ctx.data, self.model
        refuse_unused(config, "RBM (contrastive divergence)", UNUSED)
        if data.loader is not None:
            raise TrainingError(
                "contrastive divergence needs in-memory inputs, not a DataLoader; give a tensor (N, V) or a Dataset"
            )
        self.x_train = rbm.check_data(ctx.on_device(data.x_train))  # (N, V)
        self.x_val = None if data.x_val is None else rbm.check_data(ctx.on_device(data.x_val))
        self.train_adapter = ctx.make_adapter((self.x_train,))
        self.val_adapter = None if self.x_val is None else ctx.make_adapter((self.x_val,))
        if self.options["init_visible_bias"]:
            rbm.init_visible_bias(self.x_train)
        n = len(self.x_train)
        batch_size = n if config.batch_size == "full" else min(int(config.batch_size), n)
        cd = CDOptions(
            lr=config.lr,
            k=self.options["k"],
            persistent=self.options["persistent"],
            momentum=config.momentum or 0.0,
            weight_decay=config.l2,
            sparsity_target=self.options["sparsity_target"],
            sparsity_cost=self.options["sparsity_cost"],
            batch_size=batch_size,
        )
        self.rule = ContrastiveDivergence(rbm, cd, ctx.generators.sample)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}  # the CD rule updates the parameters itself

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        """One CD-k update; its metrics come once per epoch (:meth:`epoch_metrics`)."""
        self.rule.step(batch.x)
        return {}

    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        v = batch.x  # (B, V)
        reconstruction = self.model.visible_probs(self.model.hidden_probs(v))  # (B, V)
        return {"reconstruction_error": F.mse_loss(reconstruction, v), "free_energy": self.model.free_energy(v).mean()}

    @torch.no_grad()
    def epoch_metrics(self) -> dict[str, float]:
        """Reconstruction error, free energy and pseudo-log-likelihood of the monitored
        training samples; TrainingError when the weights are no longer finite."""
        rbm, probe = self.model, self.x_train[: self.options["monitor"]]
        values = [F.mse_loss(rbm.visible_probs(rbm.hidden_probs(probe)), probe), rbm.free_energy(probe).mean()]
        names = ["train_reconstruction_error", "train_free_energy"]
        if rbm.visible == "bernoulli":
            values.append(rbm.pseudo_log_likelihood(probe, self.ctx.generators.sample).mean())
            names.append("train_pseudo_log_likelihood")
        metrics = dict(zip(names, torch.stack(values).tolist()))
        if not math.isfinite(metrics["train_reconstruction_error"]):
            raise TrainingError(
                "contrastive divergence diverged (the weights are no longer finite); lower the learning rate "
                f"(now {self.rule.options.lr}; Gaussian visible units need about 0.01 or less) or standardize the inputs"
            )
        return metrics

    def final_metrics(self) -> dict[str, Any]:
        """``test_reconstruction_error`` and ``test_free_energy`` of the test inputs (none
        without a test split)."""
        x_test = self.ctx.data.x_test
        if x_test is None or len(x_test) == 0:
            return {}
        return test_metrics(self.model, self.model.check_data(self.ctx.on_device(x_test)))

    def probe(self, n: int) -> Batch:
        return Batch((self.x_train[:n],))

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Velocities, the sparsity running mean and the PCD chains: what exact resume needs."""
        return dict(self.rule.state_tensors()), {}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
        self.rule.load_state_tensors(tensors)

    def describe(self) -> dict[str, Any]:
        """config.json's task record; ``options`` are the constructor's keyword arguments
        (``capas.fit(..., resume=)`` builds the same task from them)."""
        return {"kind": self.kind, "engine": self.engine, "options": dict(self.options)}


@torch.no_grad()
def test_metrics(rbm: RBM, x: Tensor) -> dict[str, float]:
    """``test_reconstruction_error`` (mean squared error of the mean-field reconstruction
    v -> P(h|v) -> P(v|h)) and ``test_free_energy`` (mean F(v)) of inputs x (N, V): what
    ``fit`` writes to metrics.json and ``capas evaluate`` recomputes. Compared with the
    training split's free energy (history), a much higher test value means overfitting."""
    reconstruction = rbm.visible_probs(rbm.hidden_probs(x))
    return {
        "test_reconstruction_error": float(F.mse_loss(reconstruction, x)),
        "test_free_energy": float(rbm.free_energy(x).mean()),
    }
