"""``BackpropStepper``: the trainer's stepper interface over the explicit delta rule.

Update rules (course file 001, "Variantes de BackProp"): the batch size chooses the
variant: ``B = N`` is batch BackProp, ``1 < B < N`` mini-batch, ``B = 1`` over a random
permutation incremental, and ``learn_one(x, t)`` the on-line rule for one given sample.

The optimizer is any ``torch.optim`` optimizer over the model's parameters. Plain
``torch.optim.SGD`` runs in place on the engine's gradient buffers, with the very
algorithm (and state, ``optimizer.state[p]["momentum_buffer"]``) of ``torch.optim.SGD``::

    v(k) = nu v(k-1) + g(k),   v(1) = g(1)           theta(k+1) = theta(k) - rho v(k)

With a constant rho, ``Delta theta(k) = -rho v(k)`` gives
``Delta theta(k) = -rho g(k) + nu Delta theta(k-1)``: the slides' BackProp with momentum
``Delta theta(k) = (rho/N) sum_n delta s + nu Delta theta(k-1)`` (their first step has
``Delta theta(0) = 0``, i.e. ``v(1) = g(1)``). Without momentum, weight decay, penalties,
clipping or gradient norms nothing needs the gradient itself, so the update is fused into
the backward pass (``W.addmm_(delta^T, s, alpha=rho/B)``). Any other optimizer (Adam,
RMSprop, ...) gets the engine's gradients in ``p.grad`` and its own ``step()``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from capas.backprop.engine import DeltaRuleNet, plan_layers
from capas.backprop.outputs import OUTPUT_RULES
from capas.errors import TrainingError
from capas.objectives import Loss, TargetCoder, canonical_loss

_CHUNK_ROWS = 4096  # samples gathered at once by ``run_epoch``


def unsupported_reason(model: nn.Module, loss: str) -> str | None:
    """Why the delta-rule engine cannot train ``model`` with ``loss`` (None: it can)."""
    if hasattr(model, "is_plain_mlp") and not model.is_plain_mlp():
        return "the model is not a plain MLP (only Dense, Maxout and Dropout layers, no skips)"
    try:
        loss = canonical_loss(loss)
    except TrainingError as err:
        return str(err)
    if loss not in OUTPUT_RULES:
        return f"loss '{loss}' has no explicit output error (supported: {', '.join(OUTPUT_RULES)})"
    try:
        plans = plan_layers(model)
    except ValueError as err:
        return str(err)
    rule = OUTPUT_RULES[loss]
    last = plans[-1].activation
    out_act = "maxout" if last is None else last.name
    if rule.output_activations and out_act not in rule.output_activations:
        return f"loss '{loss}' needs a {' or '.join(rule.output_activations)} output layer, not {out_act}"
    if not all(p.requires_grad for p in model.parameters()):
        return "frozen parameters (requires_grad=False) are trained by autograd"
    dtypes = {p.dtype for p in model.parameters()}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        return f"parameters must share one floating dtype, got {sorted(map(str, dtypes))}"
    return None


def supports(model: nn.Module, config: Any) -> str | None:
    """None when the trainer may train ``model`` under ``config`` (a ``TrainConfig``) with
    this engine; else the reason (``engine="auto"`` then falls back to autograd)."""
    if getattr(config, "amp", False):
        return "mixed precision (amp) runs under autograd"
    if getattr(config, "class_weights", None) is not None:
        return "class weights are applied by the autograd loss"
    loss = getattr(config, "loss", None) or getattr(model, "loss", None) or "cross_entropy"
    return unsupported_reason(model, loss)


def _is_plain_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """True for ``torch.optim.SGD`` without ``maximize`` and with float learning rates."""
    return type(optimizer) is torch.optim.SGD and all(
        not group.get("maximize", False) and isinstance(group["lr"], float | int) for group in optimizer.param_groups
    )


class BackpropStepper:
    """Trains a plain MLP with the explicit delta rule (same interface as ``AutogradStepper``).

    Args:
        model: a chain of ``Dense``/``Maxout`` (+ ``Dropout``/``Flatten``) layers.
        optimizer: a ``torch.optim`` optimizer over ``model.parameters()``.
        loss: a loss name or the trainer's ``Loss`` (whose ``target_encoding`` codes the
            class targets of MSE/BCE); class weights are not supported.
        l1, l2, regularize_bias: the trainer's penalty ``l2/2 sum w^2 + l1 sum |w|``.
        clip_norm, clip_value: gradient clipping, by ``torch.nn.utils.clip_grad_*_``.
        generator: random generator for dropout masks (None: torch's global one).
        grad_norms: accumulate per-layer weight-gradient norms for ``layer_grad_norms``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: str | Loss,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        regularize_bias: bool = False,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        generator: torch.Generator | None = None,
        grad_norms: bool = True,
    ) -> None:
        name = loss.name if isinstance(loss, Loss) else str(loss)
        reason = unsupported_reason(model, name)
        if reason is None and isinstance(loss, Loss) and loss.class_weights is not None:
            reason = "class weights are applied by the autograd loss"
        if reason is not None:
            raise TrainingError(f"the backprop engine cannot train this model: {reason}; use engine='autograd'")
        name = canonical_loss(name)
        self.model = model
        self.optimizer = optimizer
        plans = plan_layers(model)
        outputs = plans[-1].out_features
        coder = loss.coder(outputs) if isinstance(loss, Loss) else TargetCoder(outputs)  # the trainer's codes
        rule = OUTPUT_RULES[name](outputs, plans[0].weight, coder)
        self.net = DeltaRuleNet(plans, rule, l1=l1, l2=l2, regularize_bias=regularize_bias, generator=generator)
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self._names = [plan.name for plan in plans]
        self._dtype, self._device = plans[0].weight.dtype, plans[0].weight.device
        self._weight_grads = [grad_w for grad_w, _ in self.net.grads]
        self._norm_sums = [torch.zeros((), dtype=plans[0].weight.dtype, device=plans[0].weight.device) for _ in plans]
        self._norm_steps = 0 if grad_norms else None
        self.measure_norms = True  # the trainer samples which steps' norms are measured
        self._pairs = self._match_parameters(model, plans)
        self._fast_sgd = _is_plain_sgd(optimizer)
        self._groups = self._group_parameters(optimizer)
        self._fusable = self._fast_sgd and not (l1 or l2 or clip_norm or clip_value)

    def _match_parameters(self, model: nn.Module, plans: list) -> list[tuple[nn.Parameter, Tensor, Tensor]]:
        """(parameter, its detached view, its gradient buffer) for every weight and bias."""
        views = {}
        for plan, (grad_w, grad_b) in zip(plans, self.net.grads):
            views[plan.weight.data_ptr()] = (plan.weight, grad_w)
            if plan.bias is not None:
                views[plan.bias.data_ptr()] = (plan.bias, grad_b)
        pairs = [(p, *views[p.data_ptr()]) for p in model.parameters() if p.data_ptr() in views]
        if len(pairs) != len(views):
            raise TrainingError("the model's parameters do not match its layers; rebuild the stepper after moving it")
        return pairs

    def _group_parameters(self, optimizer: torch.optim.Optimizer) -> list[tuple[int, list, list, list]]:
        """(param group index, its parameters, their views, their gradient buffers) per group.

        Groups are kept by index, not as the group dicts: ``optimizer.load_state_dict``
        (a resumed run) replaces those dicts, and the scheduler then sets the new ones' lr."""
        found = {id(param): (param, view, grad) for param, view, grad in self._pairs}
        groups = []
        for index, group in enumerate(optimizer.param_groups):
            members = [found[id(p)] for p in group["params"] if id(p) in found]
            if members:
                groups.append((index, *map(list, zip(*members))))
        if sum(len(g[1]) for g in groups) != len(self._pairs):
            raise TrainingError(
                "the optimizer does not hold every parameter of the model; build it over model.parameters()"
            )
        return groups

    def step(self, xb: Tensor, yb: Tensor) -> Tensor:
        """One update from the batch ``xb (B, *)``, ``yb (B,)`` or ``(B, K)``; returns E (0-dim)."""
        if xb.dtype != self._dtype or xb.device != self._device:
            raise TrainingError(
                f"inputs are {xb.dtype} on {xb.device} but the model is {self._dtype} on {self._device}; "
                "convert one of them (e.g. model.double() or x.float())"
            )
        if not torch.is_grad_enabled():  # a caller's no_grad around a whole epoch: skip re-entering it
            return self._update(xb, yb)
        with torch.no_grad():
            return self._update(xb, yb)

    def encode(self, y: Tensor) -> Tensor:
        """The output rule's targets ``(N, K)`` for a whole set of labels (or float targets):
        coded once, a step given them skips its per-step look-up of the code table."""
        return self.net.rule.encode(y)

    def _update(self, xb: Tensor, yb: Tensor) -> Tensor:
        """``step`` without the checks, under ``no_grad`` (``run_epoch`` calls it directly)."""
        self.net.training = self.model.training  # dropout only in training mode, as nn.Dropout
        fused = self._fused_group()
        if fused is not None:  # plain SGD and nothing else needs the gradients
            self.optimizer._opt_called = True  # what an LR scheduler's wrapper of step() records
            return self.net.gradients(xb, yb, descend=fused["lr"])
        loss = self.net.gradients(xb, yb, penalize=False)
        if self._measuring():  # on-device sums of the data loss's norms: no sync per step
            torch._foreach_add_(self._norm_sums, torch._foreach_norm(self._weight_grads))
            self._norm_steps += 1
        if self.net.l1 or self.net.l2:
            self.net.add_penalty_gradients()
        if self.clip_norm is not None or self.clip_value is not None:
            self._clip()
        if self._fast_sgd:
            self._sgd_update()
            self.optimizer._opt_called = True  # what an LR scheduler's wrapper of step() records
        else:
            for param, _, grad in self._pairs:
                param.grad = grad  # the bridge: any torch.optim optimizer reads p.grad
            self.optimizer.step()
        return loss

    def _fused_group(self) -> dict | None:
        """The single param group when the update can be fused into the backward pass:
        ``torch.optim.SGD`` without momentum or weight decay, and no gradient is kept
        (no norms, clipping or penalties)."""
        if not self._fusable or self._measuring() or len(self._groups) != 1:
            return None
        group = self.optimizer.param_groups[self._groups[0][0]]
        return None if group["momentum"] or group["weight_decay"] else group

    def _measuring(self) -> bool:
        return self._norm_steps is not None and self.measure_norms

    def _clip(self) -> None:
        params = [param for param, _, _ in self._pairs]
        for param, _, grad in self._pairs:
            param.grad = grad
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        if self.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, self.clip_value)

    def _sgd_update(self) -> None:
        """``torch.optim.SGD.step`` (its multi-tensor form) on the engine's gradients, in
        place, keeping its state ``optimizer.state[p]["momentum_buffer"]``."""
        for index, params, views, grads in self._groups:
            group = self.optimizer.param_groups[index]
            directions = grads
            if group["weight_decay"]:
                directions = torch._foreach_add(grads, views, alpha=group["weight_decay"])
            momentum = group["momentum"]
            if momentum:
                states = [self.optimizer.state[p] for p in params]
                velocities = [state.get("momentum_buffer") for state in states]
                if any(v is None for v in velocities):
                    for index, (state, velocity) in enumerate(zip(states, velocities)):
                        if velocity is None:  # v(1) = g(1)
                            velocities[index] = state["momentum_buffer"] = directions[index].clone()
                        else:
                            velocity.mul_(momentum).add_(directions[index], alpha=1 - group["dampening"])
                else:
                    torch._foreach_mul_(velocities, momentum)
                    torch._foreach_add_(velocities, directions, alpha=1 - group["dampening"])
                if group["nesterov"]:
                    directions = torch._foreach_add(directions, velocities, alpha=momentum)
                else:
                    directions = velocities
            torch._foreach_add_(views, directions, alpha=-group["lr"])

    def learn_one(self, x: Tensor, t: Tensor | int | list[float]) -> Tensor:
        """The slides' on-line BackProp: one update from one sample ``x (*input_shape)``,
        target ``t`` (a class index or a ``(K,)`` vector); returns its loss q (0-dim)."""
        t = torch.as_tensor(t, device=x.device)
        return self.step(x.unsqueeze(0), t.reshape(1, *t.shape))

    def run_epoch(self, x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """One epoch over ``x (N, *)``, ``y (N,)`` or ``(N, K)`` in a random order drawn from
        ``generator`` (``batch_size`` N: batch BackProp, 1: incremental). Returns the mean
        loss (0-dim); see :meth:`steps`."""
        n = x.shape[0]
        if x.dtype != self._dtype or x.device != self._device:
            raise TrainingError(f"inputs are {x.dtype} on {x.device} but the model is {self._dtype} on {self._device}")
        with torch.no_grad():
            targets = self.net.rule.encode(y)  # (N, K), coded once for the epoch
        where = "cpu" if generator is None else generator.device  # the generator's device draws
        order = torch.randperm(n, generator=generator, device=where).to(x.device)  # (N,)
        losses, _ = self.steps(x, targets, batch_size, order)
        return epoch_mean(losses, n, batch_size)

    def steps(
        self,
        x: Tensor,
        targets: Tensor,
        batch_size: int,
        order: Tensor,
        *,
        labels: Tensor | None = None,
        measure_every: int | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Update on the samples of ``x (N, *)`` in ``order (N,)``, ``batch_size`` at a time,
        against coded ``targets (N, K)`` (:meth:`encode`). Samples are gathered in shuffled
        chunks of a few thousand rows and each batch is a view of its chunk (one gather per
        chunk, not per step); nothing waits for the device.

        Returns the per-step losses ``(S,)`` and, given class ``labels (N,)``, the number of
        samples whose output's argmax was their label when they were trained on (0-dim; one
        argmax per step, one comparison per chunk). ``measure_every``:
        record gradient norms on every k-th step only (None: on every step the
        ``measure_norms`` flag allows)."""
        n = x.shape[0]
        if batch_size < 1:
            raise TrainingError(f"batch_size must be a positive integer, got {batch_size}")
        x = x.reshape(n, -1)  # (N, M_0)
        chunk = batch_size * max(1, _CHUNK_ROWS // batch_size)
        losses: list[Tensor] = []
        correct = None if labels is None else torch.zeros((), dtype=torch.long, device=x.device)
        with torch.no_grad():
            for start in range(0, n, chunk):
                index = order[start : start + chunk]  # (C,)
                xs, ts = x.index_select(0, index), targets.index_select(0, index)  # (C, M_0), (C, K)
                predicted: list[Tensor] = []
                for first in range(0, index.shape[0], batch_size):
                    if measure_every is not None:
                        self.measure_norms = len(losses) % measure_every == 0
                    last = first + batch_size
                    losses.append(self._update(xs[first:last], ts[first:last]))  # (B, *) views
                    if correct is not None:
                        predicted.append(self.last_output.argmax(dim=1))  # (B,)
                if correct is not None:
                    correct += (torch.cat(predicted) == labels.index_select(0, index)).sum()
        return torch.stack(losses), correct

    def layer_grad_norms(self) -> dict[str, Tensor]:
        """Mean ``||dE/dW^l||`` per layer over the steps since the last call (then reset):
        the course's "speed of learning" of each layer (course file 004)."""
        if not self._norm_steps:
            return {}
        means = {name: total / self._norm_steps for name, total in zip(self._names, self._norm_sums)}
        for total in self._norm_sums:
            total.zero_()
        self._norm_steps = 0
        return means

    @property
    def last_output(self) -> Tensor | None:
        """The last batch's logits ``phi^L`` (cross-entropy losses) or outputs ``s^L``
        (B, K); a buffer the next step overwrites (the trainer counts accuracy from it)."""
        if self.net.last is None:
            return None
        return self.net.last.z[-1] if self.net.rule.writes_delta else self.net.last.s[-1]

    @property
    def last_deltas(self) -> dict[str, Tensor]:
        """The slides' ``delta^l (B, M_l)`` of the last step per layer (buffers, overwritten
        by the next step: clone them to keep them)."""
        if self.net.last is None:
            return {}
        return dict(zip(self._names, self.net.last.delta))


def epoch_mean(losses: Tensor, n: int, batch_size: int) -> Tensor:
    """The mean loss over ``n`` samples from per-step batch means ``losses (S,)``: every step
    holds ``batch_size`` samples but the last, which holds the rest."""
    sizes = torch.full_like(losses, batch_size)  # (S,)
    sizes[-1] = n - batch_size * (len(losses) - 1)
    return (losses * sizes).sum() / n
