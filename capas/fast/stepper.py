"""``FastStepper``: ``BackpropStepper``'s per-step updates plus the compiled whole epoch.

The supervised task picks the engine once (``engine="auto"`` or ``"fast"``); with ``fast`` its
stepper is a ``FastStepper`` around the delta-rule engine's ``BackpropStepper``. A step the
task runs itself (an epoch with per-batch callbacks) is the torch engine's step; a whole
epoch (``steps``) runs in :func:`capas.fast.kernel.train_epoch`. Around each epoch the
weights and the optimizer's state (``optimizer.state[p]``: momentum buffers, Adam's moments
and step count...) are copied into the kernel's flat vectors and back, so checkpoints,
resumes and any later per-step epoch see exactly what ``torch.optim`` would have left.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from capas.backprop import BackpropStepper
from capas.fast import kernel
from capas.fast.kernel import ACTIVATIONS, LOSSES

#: the largest mini-batch the kernel takes: beyond it a step is matmul-bound and torch's BLAS wins
MAX_BATCH = 64
#: the largest network ``engine="auto"`` gives the kernel (weights and biases)
MAX_PARAMETERS = 2_000_000
_OPTIMIZER_CODES = {torch.optim.SGD: 0, torch.optim.Adam: 1, torch.optim.RMSprop: 2}
_REFUSED_FLAGS = ("maximize", "amsgrad", "capturable", "differentiable", "fused", "decoupled_weight_decay")


def optimizer_reason(optimizer: torch.optim.Optimizer) -> str | None:
    """Why the kernel cannot run ``optimizer``'s update (None: it can)."""
    if type(optimizer) not in _OPTIMIZER_CODES:
        return f"the optimizer is {type(optimizer).__name__} (the kernel runs SGD, momentum, nesterov, adam, rmsprop)"
    if len(optimizer.param_groups) != 1:
        return "the optimizer has several parameter groups"
    group = optimizer.param_groups[0]
    if not isinstance(group["lr"], float | int):
        return "the learning rate is a tensor"
    for flag in _REFUSED_FLAGS:
        if group.get(flag):
            return f"the optimizer's {flag}=True"
    return None


def unsupported_reason(
    stepper: Any,
    config: Any,
    *,
    device: torch.device,
    in_memory: bool,
    per_batch_schedule: bool,
    threshold_decision: bool,
) -> str | None:
    """Why the compiled kernel cannot train this run (None: it can); ``config`` is the
    ``TrainConfig``, ``stepper`` the engine the task chose (the kernel extends the
    delta-rule engine, so it must be a ``BackpropStepper``)."""
    if not isinstance(stepper, BackpropStepper):
        declined = getattr(stepper, "declined", None)
        return f"the explicit delta-rule engine does not apply ({declined or 'engine autograd'})"
    if device.type != "cpu":
        return f"it runs on the CPU, not {device}"
    if not in_memory:
        return "the data come from a DataLoader (it needs in-memory tensors)"
    batch = config.batch_size
    if batch == "full" or int(batch) > MAX_BATCH:
        return f"batch_size {batch} is above {MAX_BATCH} (larger steps are matmul-bound: torch's BLAS is faster)"
    plans = stepper.net.plans
    for plan in plans:
        if plan.pieces > 1:
            return f"layer '{plan.name}' is maxout"
        if plan.dropout:
            return f"dropout before '{plan.name}' draws torch's masks"
        if plan.activation.name not in ACTIVATIONS:
            return f"layer '{plan.name}' uses {plan.activation.name} (the kernel has {', '.join(ACTIVATIONS)})"
    slopes = {p.activation.slope for p in plans if p.activation.name == "leaky_relu"}
    if len(slopes) > 1:
        return f"leaky_relu layers with different slopes {sorted(slopes)}"
    if plans[0].weight.dtype not in (torch.float32, torch.float64):
        return f"the parameters are {plans[0].weight.dtype} (the kernel runs float32 and float64)"
    if stepper.net.rule.name not in LOSSES:
        return f"loss '{stepper.net.rule.name}' (the kernel has {', '.join(LOSSES)})"
    reason = optimizer_reason(stepper.optimizer)
    if reason is not None:
        return reason
    for option, what in (
        (config.clip_norm or config.clip_value, "gradient clipping"),
        (config.input_noise, "input noise"),
        (config.curriculum, "curriculum ordering"),
        (per_batch_schedule, "a per-batch LR schedule"),
        (threshold_decision, "one output unit deciding classes by a threshold"),
    ):
        if option:
            return f"{what} runs step by step"
    return None


def parameter_count(stepper: BackpropStepper) -> int:
    return sum(p.weight.numel() + (0 if p.bias is None else p.bias.numel()) for p in stepper.net.plans)


class FastStepper:
    """The stepper interface of ``BackpropStepper`` (``step``, ``encode``, ``steps``,
    ``layer_grad_norms``, ``last_output``) with ``steps`` compiled.

    Args:
        inner: the delta-rule engine over the same model and optimizer.
        max_norm: the cap on each unit's incoming weight norm, applied after every step of
            a compiled epoch (a per-step epoch leaves it to the task, as for the torch engine).
    """

    declined = None

    def __init__(self, inner: BackpropStepper, *, max_norm: float | None = None) -> None:
        self.inner = inner
        self.optimizer = inner.optimizer
        self.max_norm = max_norm
        plans = inner.net.plans
        self._names = [plan.name for plan in plans]
        self._plans = plans
        self.widths = np.array([plans[0].weight.shape[1], *(p.rows for p in plans)], dtype=np.int64)
        self.acts = np.array([ACTIVATIONS[p.activation.name] for p in plans], dtype=np.int64)
        self.hasb = np.array([p.bias is not None for p in plans], dtype=np.int64)
        woff, boff, offset = [], [], 0
        for plan in plans:
            woff.append(offset)
            offset += plan.weight.numel()
            boff.append(offset)
            offset += 0 if plan.bias is None else plan.bias.numel()
        self.woff, self.boff = np.array(woff, dtype=np.int64), np.array(boff, dtype=np.int64)
        self.dtype = plans[0].weight.dtype
        self.theta = torch.zeros(offset, dtype=self.dtype)  # the kernel's flat parameters
        self.states = [torch.zeros(offset, dtype=self.dtype) for _ in range(3)]  # its optimizer state
        self._slices = self._parameter_slices()
        slopes = [p.activation.slope for p in plans if p.activation.name == "leaky_relu"]
        self.slope = slopes[0] if slopes else 0.0  # one slope for all (unsupported_reason)
        self._norm_sums = np.zeros(len(plans))
        self._norm_steps = 0

    def _parameter_slices(self) -> list[tuple[torch.nn.Parameter, int, tuple[int, ...]]]:
        """(parameter, where its slice of theta starts, its shape) for each weight and bias."""
        by_pointer = {}
        for plan, w0, b0 in zip(self._plans, self.woff, self.boff):
            by_pointer[plan.weight.data_ptr()] = (int(w0), tuple(plan.weight.shape))
            if plan.bias is not None:
                by_pointer[plan.bias.data_ptr()] = (int(b0), tuple(plan.bias.shape))
        return [(param, *by_pointer[param.data_ptr()]) for param in self.optimizer.param_groups[0]["params"]]

    # ---- the BackpropStepper interface --------------------------------------------------------
    def step(self, xb: Tensor, yb: Tensor) -> Tensor:
        return self.inner.step(xb, yb)

    def encode(self, y: Tensor) -> Tensor:
        return self.inner.encode(y)

    @property
    def measure_norms(self) -> bool:
        return self.inner.measure_norms

    @measure_norms.setter
    def measure_norms(self, value: bool) -> None:
        self.inner.measure_norms = value

    @property
    def last_output(self) -> Tensor | None:
        return self.inner.last_output

    @property
    def last_deltas(self) -> dict[str, Tensor]:
        return self.inner.last_deltas

    def layer_grad_norms(self) -> dict[str, Tensor]:
        """Mean ``||dE/dW^l||`` over the measured steps since the last call: the compiled
        epoch's, else the per-step engine's (an epoch is one or the other)."""
        if not self._norm_steps:
            return self.inner.layer_grad_norms()
        means = {name: torch.tensor(total / self._norm_steps) for name, total in zip(self._names, self._norm_sums)}
        self._norm_sums[:] = 0.0
        self._norm_steps = 0
        return means

    # ---- the compiled epoch ----------------------------------------------------------------
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
        """One compiled epoch over ``x (N, *)`` in ``order (N,)`` against coded ``targets
        (N, K)``; returns the per-step losses ``(S,)`` and, given ``labels (N,)``, how many
        samples' outputs decided their label when trained on (as ``BackpropStepper.steps``)."""
        n = x.shape[0]
        steps = -(-n // batch_size)
        xs = x.reshape(n, -1).contiguous().numpy()
        ts = targets.to(self.dtype).contiguous().numpy()
        ys = np.zeros(0, dtype=np.int64) if labels is None else labels.to(torch.int64).contiguous().numpy()
        measure = 0 if self.inner._norm_steps is None else (measure_every or 1)
        hp, ip, step_count = self._load()
        ip[kernel.MEASURE_EVERY] = measure
        losses = np.empty(steps)
        correct, measured = kernel.train_epoch(
            xs,
            ts,
            ys,
            order.to(torch.int64).contiguous().numpy(),
            batch_size,
            self.widths,
            self.acts,
            self.hasb,
            self.woff,
            self.boff,
            self.theta.numpy(),
            *(state.numpy() for state in self.states),
            step_count,
            hp,
            ip,
            losses,
            self._norm_sums,
        )
        self._norm_steps += measured
        self._store(ip, step_count)
        self.optimizer._opt_called = True  # what an LR scheduler's wrapper of step() records
        return torch.from_numpy(losses), None if labels is None else torch.tensor(correct)

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights and optimizer state into the flat vectors; the hyper-parameters."""
        optimizer = self.optimizer
        group = optimizer.param_groups[0]
        code = _OPTIMIZER_CODES[type(optimizer)]
        hp, ip = np.zeros(kernel.HP_SIZE), np.zeros(kernel.IP_SIZE, dtype=np.int64)
        hp[kernel.LR] = group["lr"]
        hp[kernel.WEIGHT_DECAY] = group.get("weight_decay", 0.0)
        hp[kernel.L2], hp[kernel.L1] = self.inner.net.l2, self.inner.net.l1
        hp[kernel.MAX_NORM] = self.max_norm or 0.0
        hp[kernel.SLOPE] = self.slope
        ip[kernel.OPT], ip[kernel.LOSS] = code, LOSSES[self.inner.net.rule.name]
        ip[kernel.REG_BIAS] = int(self.inner.net.regularize_bias)
        names: tuple[str, ...] = ()
        if code == 0:
            hp[kernel.MOMENTUM], hp[kernel.DAMPENING] = group["momentum"], group["dampening"]
            ip[kernel.NESTEROV] = int(group["nesterov"])
            names = ("momentum_buffer",)
        elif code == 1:
            hp[kernel.BETA1], hp[kernel.BETA2] = group["betas"]
            hp[kernel.EPS] = group["eps"]
            names = ("exp_avg", "exp_avg_sq")
        else:
            hp[kernel.ALPHA], hp[kernel.EPS], hp[kernel.MOMENTUM] = group["alpha"], group["eps"], group["momentum"]
            ip[kernel.CENTERED] = int(group["centered"])
            names = ("square_avg", "momentum_buffer", "grad_avg")
        step_count = np.zeros(1)
        has_state = True
        for param, start, shape in self._slices:
            self._view(self.theta, start, shape).copy_(param.detach())
            state = optimizer.state.get(param, {})
            has_state = has_state and names[0] in state
            if "step" in state:
                step_count[0] = float(state["step"])
            for name, flat in zip(names, self.states):
                found = state.get(name)
                view = self._view(flat, start, shape)
                view.copy_(found) if found is not None else view.zero_()
        ip[kernel.HAS_BUFFER] = int(has_state)
        return hp, ip, step_count

    def _store(self, ip: np.ndarray, step_count: np.ndarray) -> None:
        """Weights and optimizer state back into the model and ``optimizer.state``."""
        optimizer = self.optimizer
        code = _OPTIMIZER_CODES[type(optimizer)]
        group = optimizer.param_groups[0]
        if code == 0:
            names = ("momentum_buffer",) if group["momentum"] and ip[kernel.HAS_BUFFER] else ()
        elif code == 1:
            names = ("exp_avg", "exp_avg_sq")
        else:
            names = ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
            names = (*names, "grad_avg") if group["centered"] else names
        slots = {
            "momentum_buffer": 1 if code == 2 else 0,
            "exp_avg": 0,
            "exp_avg_sq": 1,
            "square_avg": 0,
            "grad_avg": 2,
        }
        scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32  # torch.optim's
        with torch.no_grad():
            for param, start, shape in self._slices:
                param.copy_(self._view(self.theta, start, shape))
                state = optimizer.state[param]
                for name in names:
                    value = self._view(self.states[slots[name]], start, shape)
                    if name in state:
                        state[name].copy_(value)
                    else:
                        state[name] = value.clone(memory_format=torch.contiguous_format)
                if code != 0:
                    state["step"] = torch.tensor(float(step_count[0]), dtype=scalar)

    @staticmethod
    def _view(flat: Tensor, start: int, shape: tuple[int, ...]) -> Tensor:
        """The slice of ``flat`` holding one parameter, shaped like the parameter."""
        return flat[start : start + math.prod(shape)].view(shape)
