"""``GanTask``: the adversarial game of a ``GAN`` on the one training loop.

Every training batch of real samples x is one discriminator step: fakes G(z) from noise z
drawn from the run's ``noise`` generator, the discriminator's loss on D(x) and D(G(z))
(``capas.objectives.gan_losses``; plus lambda times the gradient penalty for
``wasserstein``), one update of D. After every ``d_steps``-th discriminator step comes one
generator step on the same fakes, judged by the updated D (Goodfellow et al.'s Algorithm 1
with k = ``d_steps``). Two optimizers, ``generator`` and ``discriminator``, of the kind the
config names (``optimizer``, ``optimizer_options`` such as Adam's ``betas``), at ``lr`` or
the task options ``generator_lr`` / ``discriminator_lr``; the loop checkpoints both, the
generators and the step counter, so a resumed run continues bit for bit.

History (per epoch, means over batches): ``train_d_loss``, ``train_g_loss`` (the
generator's loss on each batch's fakes as D judged them in its step), ``train_d_real``
and ``train_d_fake`` (mean D(x) and D(G(z)): probabilities, or the critic's scores for the
least-squares and Wasserstein losses) and ``train_loss`` = the discriminator's loss (not
finite as soon as either loss is not, so the loop's NaN stop covers both).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from capas.data.batch import Batch
from capas.errors import TrainingError
from capas.models.gan import GAN
from capas.objectives.gan_losses import gan_loss, gradient_penalty, pack
from capas.tasks.options import SPARSITY_PENALTY, SUPERVISED_ONLY, refuse_closure_optimizers, refuse_unused
from capas.train.optim import make_optimizer, schedule_for
from capas.train.task import Task, TaskContext

#: TrainConfig fields of supervised learning a GAN has no use for
UNUSED = (*SUPERVISED_ONLY, "l2", *SPARSITY_PENALTY)
#: the fixed noise batch of the sample grids is drawn from seed + this (no run generator moves)
FIXED_NOISE_OFFSET = 7919


class GanTask(Task):
    """Adversarial training of ``gan`` on real samples (N, *data_shape) (labels, if any, unused).

    Args:
        loss: ``minimax``, ``non_saturating`` (default), ``least_squares`` or ``wasserstein``.
        d_steps: discriminator steps per generator step (k >= 1).
        label_smoothing: one-sided: real samples get the target 1 - label_smoothing (fakes 0).
        gp_weight: lambda of the gradient penalty (``wasserstein`` only).
        generator_lr, discriminator_lr: learning rates (None: the config's ``lr``).
        grid: size of the fixed noise batch whose samples ``fixed_samples`` returns.
    """

    kind = "gan"

    def __init__(
        self,
        gan: GAN,
        *,
        loss: str = "non_saturating",
        d_steps: int = 1,
        label_smoothing: float = 0.0,
        gp_weight: float = 10.0,
        generator_lr: float | None = None,
        discriminator_lr: float | None = None,
        grid: int = 64,
    ) -> None:
        if not isinstance(gan, GAN):
            raise TrainingError(f"GanTask trains a capas GAN (capas.models.gan.build_gan), got {type(gan).__name__}")
        self.objective = gan_loss(loss)
        if isinstance(d_steps, bool) or not isinstance(d_steps, int) or d_steps < 1:
            raise TrainingError(
                f"d_steps (discriminator steps per generator step) must be an integer >= 1, got {d_steps!r}"
            )
        if not 0 <= label_smoothing < 1:
            raise TrainingError(f"label_smoothing must be in [0, 1) (real targets 1 - it), got {label_smoothing!r}")
        if gp_weight < 0:
            raise TrainingError(f"gp_weight must be >= 0, got {gp_weight!r}")
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
            raise TrainingError(f"grid must be a positive number of samples, got {grid!r}")
        self.model = self.forward_module = gan
        self.options = {
            "loss": self.objective.name,
            "d_steps": d_steps,
            "label_smoothing": label_smoothing,
            "gp_weight": gp_weight,
            "generator_lr": generator_lr,
            "discriminator_lr": discriminator_lr,
            "grid": grid,
        }
        self.d_steps, self.real_target, self.gp_weight = d_steps, 1.0 - label_smoothing, gp_weight
        self.steps = 0  # discriminator steps so far (the generator steps every d_steps-th)

    def setup(self, ctx: TaskContext) -> None:
        """Real samples on the device (shape-checked against the generator), two optimizers,
        their schedules, and the fixed noise batch of the sample grids."""
        self.ctx = ctx
        config, data, gan = ctx.config, ctx.data, self.model
        refuse_unused(config, "GAN", UNUSED)
        if data.loader is not None:
            raise TrainingError("GAN training reads in-memory data (a tensor, (x, y) or a dataset), not a DataLoader")
        self.x_train = gan.check_data(ctx.on_device(data.x_train))  # (N, *data_shape)
        if len(self.x_train) < gan.packing:
            raise TrainingError(f"{len(self.x_train)} training samples cannot be packed {gan.packing} at a time")
        x_val = None if data.x_val is None else gan.check_data(ctx.on_device(data.x_val))
        self.train_adapter = ctx.make_adapter((self.x_train,))
        self.val_adapter = None if x_val is None else ctx.make_adapter((x_val,))
        for module in gan.modules():
            if isinstance(module, nn.Dropout) and hasattr(module, "generator"):
                module.generator = ctx.generators.dropout
        lr = config.lr
        g_lr = self.options["generator_lr"] or lr
        d_lr = self.options["discriminator_lr"] or lr
        g_params = list(gan.generator.parameters())
        d_params = list(gan.discriminator.parameters())
        self.g_optimizer = make_optimizer(config.optimizer, g_params, g_lr, config.momentum, **config.optimizer_options)
        self.d_optimizer = make_optimizer(config.optimizer, d_params, d_lr, config.momentum, **config.optimizer_options)
        self.g_params, self.d_params = g_params, d_params
        refuse_closure_optimizers([self.g_optimizer, self.d_optimizer], "GAN")
        steps = self.train_adapter.steps_per_epoch
        self._schedules = {
            name: schedule
            for name, optimizer in (("generator", self.g_optimizer), ("discriminator", self.d_optimizer))
            if (schedule := schedule_for(config, optimizer, steps)) is not None
        }
        fixed = torch.Generator(device=ctx.device).manual_seed(config.seed + FIXED_NOISE_OFFSET)
        self.fixed_noise = gan.noise(self.options["grid"], fixed)  # (grid, *noise_shape)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.g_optimizer, "discriminator": self.d_optimizer}

    def schedules(self) -> dict[str, Any]:
        return self._schedules

    # ---- the steps ---------------------------------------------------------------------
    def _discriminator_loss(self, x: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(D's loss, real scores, fake scores) for real x and (detached) fakes."""
        gan = self.model
        real_scores, fake_scores = gan.scores(x), gan.scores(fake)
        loss = self.objective.discriminator(real_scores, fake_scores, self.real_target)
        if self.objective.penalty and self.gp_weight:
            real, fake = pack(x, gan.packing), pack(fake, gan.packing)
            n = min(len(real), len(fake))
            eps = torch.rand(n, generator=self.ctx.generators.noise, device=x.device, dtype=x.dtype)
            critic = gan.discriminator.logits
            loss = loss + self.gp_weight * gradient_penalty(critic, real[:n], fake[:n], eps)
        return loss, real_scores, fake_scores

    def _judged(self, scores: Tensor) -> Tensor:
        """Mean D: sigmoid of the scores for a probability loss, the critic's scores otherwise."""
        return (torch.sigmoid(scores) if self.objective.probability else scores).mean()

    def _clip(self, params: list[nn.Parameter]) -> None:
        config = self.ctx.config
        if config.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
        if config.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, config.clip_value)

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        gan, x = self.model, batch.x
        z = gan.noise(len(x), self.ctx.generators.noise)
        fake = gan.generator(z)  # (B, *data_shape)
        d_loss, real_scores, fake_scores = self._discriminator_loss(x, fake.detach())
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self._clip(self.d_params)
        self.d_optimizer.step()
        self.steps += 1
        if self.steps % self.d_steps == 0:
            g_loss = self.objective.generator(gan.scores(fake))
            self.g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            self._clip(self.g_params)
            self.g_optimizer.step()
        return self._metrics(d_loss.detach(), real_scores.detach(), fake_scores.detach())

    def _metrics(self, d_loss: Tensor, real_scores: Tensor, fake_scores: Tensor) -> dict[str, Tensor]:
        g_loss = self.objective.generator(fake_scores)
        return {
            "loss": torch.where(torch.isfinite(g_loss), d_loss, g_loss),
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": self._judged(real_scores),
            "d_fake": self._judged(fake_scores),
        }

    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        """The same metrics on held-out real samples and fresh fakes (noise from the run's
        ``sample`` generator, so the training draws do not move); no gradient penalty."""
        gan, x = self.model, batch.x
        fake = gan.generator(gan.noise(len(x), self.ctx.generators.sample))
        real_scores, fake_scores = gan.scores(x), gan.scores(fake)
        d_loss = self.objective.discriminator(real_scores, fake_scores, self.real_target)
        return self._metrics(d_loss, real_scores, fake_scores)

    # ---- what diagnostics read -----------------------------------------------------------
    def fixed_samples(self) -> Tensor:
        """G(fixed noise) (grid, *data_shape) on the CPU: the same z every epoch."""
        return self.model.sample(len(self.fixed_noise), z=self.fixed_noise).cpu()

    def probe(self, n: int) -> Batch:
        return Batch((self.x_train[:n],))

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return {}, {"steps": self.steps}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
        self.steps = int(record.get("steps", 0))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "engine": self.engine, "options": dict(self.options)}
