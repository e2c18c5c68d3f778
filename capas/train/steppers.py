"""Steppers: one parameter update from one batch, behind a two-method interface.

The trainer calls ``stepper.step(xb, yb) -> Tensor`` (the batch's data loss, 0-dim, not
``.item()``-ed, so nothing waits for the device) and, once per epoch,
``stepper.layer_grad_norms() -> dict[str, Tensor]``. ``AutogradStepper`` serves every
model; ``capas.backprop.BackpropStepper`` is the explicit delta-rule engine for plain MLPs.
A stepper may expose ``last_output`` (the last batch's outputs/logits, detached), which
lets the trainer count training accuracy without a second forward pass.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from capas.errors import TrainingError
from capas.models.protocol import layer_names, training_forward
from capas.objectives import Loss, add_penalty_gradients, penalized_parameters, penalty
from capas.train.optim import needs_closure


def layer_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weight parameter of each layer, keyed by layer name.

    Names come from ``model.layer_names()`` (a capas ``Network``: ``dense1``, ``conv2``...);
    for another module, the dotted names of its submodules that own a ``weight`` parameter
    (the module itself, if it owns one, is named after its class, e.g. ``linear``).
    """
    names = layer_names(model)
    if names is not None:
        pairs = zip(names, model.layers)
    else:
        pairs = ((name or type(module).__name__.lower(), module) for name, module in model.named_modules())
    found = {}
    for name, module in pairs:
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.requires_grad:
            found[name] = weight
    return found


class AutogradStepper:
    """``loss(model(xb), yb) [+ penalty]``, ``backward``, optional clipping, ``optimizer.step``.

    An optimizer that re-evaluates the loss within a step (L-BFGS) gets all of that as the
    closure of ``optimizer.step(closure)``: each evaluation recomputes the loss and its
    penalised, clipped gradient at the current weights, and returns the penalised objective
    (what its line search compares). The step reports the first evaluation (the batch's
    loss before the update), as every other optimizer's step does.

    Args:
        model, optimizer, loss: what to train, how, against which objective.
        l1, l2, regularize_bias: the penalty added to the objective (regularization.py);
            its gradient is added after backward, so ``layer_grad_norms`` are the data loss's.
        clip_norm, clip_value: gradient clipping (``torch.nn.utils``), after unscaling.
        amp: mixed precision: ``"bf16"`` (``torch.autocast`` to bfloat16, on CUDA or the CPU)
            or ``"fp16"`` (autocast to float16 on CUDA, with a ``GradScaler``: float16's
            narrow range would flush small gradients to zero); ``True`` means fp16.
        grad_norms: accumulate per-layer weight-gradient norms on the device.
        forward: the module a step runs (the task's training module, possibly wrapped in
            DDP); default: ``model.logits`` when the loss wants logits, else ``model``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: Loss,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        regularize_bias: bool = False,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        amp: str | bool | None = None,
        grad_norms: bool = True,
        forward: nn.Module | None = None,
    ) -> None:
        self.closure = needs_closure(optimizer)
        if self.closure and amp:
            raise TrainingError(
                f"{type(optimizer).__name__} re-evaluates the loss within a step, which mixed precision's "
                "gradient scaler does not support; drop --amp or use another optimizer"
            )
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.forward = forward if forward is not None else training_forward(model, loss.from_logits)
        self.l1, self.l2 = l1, l2
        self.penalized = penalized_parameters(model, regularize_bias) if (l1 or l2) else []
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.params = [p for p in model.parameters() if p.requires_grad]
        amp = "fp16" if amp is True else (amp or None)
        self.amp = amp
        device_type = next((p.device.type for p in model.parameters()), "cpu")
        self.scaler = torch.amp.GradScaler(device_type) if amp == "fp16" else None
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        self.autocast = (lambda: torch.autocast(device_type, dtype=dtype)) if amp else contextlib.nullcontext
        self._skipped: Tensor | None = None  # fp16 steps the scaler skipped (inf/NaN gradients), on device
        weights = layer_weights(model) if grad_norms else {}
        self.grad_names = list(weights)
        self.grad_params = list(weights.values())
        self._norm_sums: list[Tensor] | None = None  # one 0-dim sum per layer, on device
        self._norm_steps = 0
        self.measure_norms = True  # the trainer samples which steps' norms are measured
        self.last_output: Tensor | None = None
        self.declined: str | None = None  # set by make_stepper: why the explicit engine was not taken

    def step(self, xb: Tensor, yb: Tensor) -> Tensor:
        """One update from ``xb (B, *input_shape)``, ``yb (B,)`` or ``(B, K)``; returns the data loss.

        The penalty's gradient is added after the data loss's backward pass (same update as
        back-propagating ``loss + penalty``), so the recorded per-layer norms are the data
        loss's own."""
        if self.closure:
            return self._closure_step(xb, yb)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            output = self.forward(xb)  # (B, K)
            loss = self.loss(output.float() if self.amp else output, yb)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.measure_norms:
            self._accumulate_grad_norms()
        self._penalize_and_clip()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            before = self.scaler._scale.clone()  # update() lowers the scale exactly when it skipped the step
            self.scaler.update()
            skipped = (self.scaler._scale < before).sum()
            self._skipped = skipped if self._skipped is None else self._skipped + skipped
        else:
            self.optimizer.step()
        self.last_output = output.detach()
        return loss.detach()

    def _penalize_and_clip(self) -> None:
        """Add the penalty's gradient to the data loss's, then clip (what the optimizer sees)."""
        if self.penalized:
            for p in self.penalized:
                if p.grad is None:  # a parameter the loss did not reach still feels the penalty
                    p.grad = torch.zeros_like(p)
            add_penalty_gradients([(p, p.grad) for p in self.penalized], self.l2, self.l1)
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        if self.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.params, self.clip_value)

    def _closure_step(self, xb: Tensor, yb: Tensor) -> Tensor:
        """``optimizer.step(closure)``: the closure re-evaluates the objective and its gradient
        at the current weights; the first evaluation is the step's loss and output."""
        first: list[Tensor] = []

        def closure() -> Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad():
                output = self.forward(xb)  # (B, K)
                loss = self.loss(output, yb)
                loss.backward()
            if not first:
                first.extend((loss.detach(), output.detach()))
                if self.measure_norms:
                    self._accumulate_grad_norms()
            self._penalize_and_clip()
            if not self.penalized:
                return loss.detach()
            with torch.no_grad():
                return loss.detach() + penalty(self.penalized, self.l2, self.l1)

        self.optimizer.step(closure)
        loss, self.last_output = first
        return loss

    def _accumulate_grad_norms(self) -> None:
        """Add this step's ||dE/dW|| per layer to on-device sums (one foreach call, no sync)."""
        if not self.grad_params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.grad_params]
        norms = torch._foreach_norm(grads)  # [(), ...] one per layer
        if self._norm_sums is None:
            self._norm_sums = list(norms)
        else:
            torch._foreach_add_(self._norm_sums, norms)
        self._norm_steps += 1

    def layer_grad_norms(self) -> dict[str, Tensor]:
        """Mean ||dE/dW|| per layer over the measured steps since the last call (then reset)."""
        if self._norm_sums is None:
            return {}
        means = [total / self._norm_steps for total in self._norm_sums]
        self._norm_sums, self._norm_steps = None, 0
        return dict(zip(self.grad_names, means))

    def amp_metrics(self) -> dict[str, float]:
        """fp16's loss scale now and the steps it skipped since the last call (history
        entries ``amp_scale`` and ``amp_skipped_steps``); empty without a scaler."""
        if self.scaler is None or self.scaler._scale is None:
            return {}
        skipped = 0 if self._skipped is None else int(self._skipped)
        self._skipped = None
        return {"amp_scale": float(self.scaler.get_scale()), "amp_skipped_steps": float(skipped)}

    def state_dict(self) -> dict:
        """The GradScaler's state (the only state outside the optimizer)."""
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, record: dict) -> None:
        if self.scaler is not None and "scaler" in record:
            self.scaler.load_state_dict(record["scaler"])
