"""Activity sparsity of hidden layers in supervised training (course file 000:
"Penalizar/forzar que la respuesta sea a veces no nula en los ocultos", "¿Por qué lo de que
haya muchos nulos?").

``TrainConfig(sparsity="l1" | "kl", sparsity_weight=beta, sparsity_target=rho)`` adds to
the objective, for every hidden layer's outputs s (B, M) of a batch:

    l1:  beta * mean_b sum_j |s_bj|                                (any activation)
    kl:  beta * sum_j KL(rho || rho_hat_j),  rho_hat_j = mean_b s_bj  (outputs in (0, 1))

with KL(rho || r) = rho log(rho / r) + (1 - rho) log((1 - rho) / (1 - r)) -- the sparse
autoencoder's penalties (``capas.models.autoencoder``), here on a classifier's hidden layers.
"Hidden" layers are the network's top-level ``Dense``/``Maxout``/convolutional (any layer
that owns an activation) layers except the last.

The penalty enters through its gradient: each hidden output passes through an identity whose
backward adds d(penalty)/ds, so one backward pass is that of loss + penalty, while the loss
the history records stays the data loss (as for the L1/L2 weight penalties). The hooks that
do it are installed on entry to every training forward and removed on exit, so no hook
outlives a step and the trained model carries none.

The history gets ``active_units`` (percent of hidden units active over the epoch's training
batches; a unit is active on a sample when |s| > ``ACTIVE_THRESHOLD``) and
``active_units/<layer>`` per layer; ``sparsity_weight=0`` records them without penalising.
Only the autograd stepper runs the penalty: the explicit BackProp engine computes its own
deltas and is declined (``engine="auto"`` then trains with autograd).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from capas.errors import TrainingError
from capas.layers.dense import ActivatedLayer, Maxout

#: |s| above which a hidden unit counts as active on a sample
ACTIVE_THRESHOLD = 0.1
#: why the explicit engines do not train with an activity penalty
DECLINED = "an activity-sparsity penalty adds its gradient through autograd"
#: activations whose outputs lie in (0, 1), as the KL target needs
UNIT_INTERVAL = ("sigmoid", "hard_sigmoid")


class _AddGradient(torch.autograd.Function):
    """Identity forward; backward adds the activity penalty's gradient d(penalty)/ds."""

    @staticmethod
    def forward(ctx: Any, s: Tensor, extra: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(extra)
        return s.view_as(s)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (extra,) = ctx.saved_tensors
        return grad + extra, None


def penalty_value(s: Tensor, kind: str, weight: float, target: float) -> Tensor:
    """The penalty of one layer's outputs ``s`` (B, *) as a 0-dim tensor (the formulas above)."""
    s = s.flatten(1)  # (B, M)
    if kind == "l1":
        return weight * s.abs().sum(1).mean()
    rho, rho_hat = target, s.mean(0).clamp(1e-6, 1 - 1e-6)  # (M,)
    return weight * (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def penalty_gradient(s: Tensor, kind: str, weight: float, target: float) -> Tensor:
    """d(penalty)/ds (same shape as ``s``), in closed form (no second graph)."""
    batch = s.shape[0]
    if kind == "l1":
        return torch.sign(s) * (weight / batch)
    rho_hat = s.mean(0, keepdim=True).clamp(1e-6, 1 - 1e-6)  # (1, *)
    grad = (-target / rho_hat + (1 - target) / (1 - rho_hat)) * (weight / batch)  # (1, *)
    return grad.expand_as(s)


def hidden_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The top-level layers that own an activation (or are maxout), but the last: the hidden ones."""
    named = getattr(model, "named_layers", None)
    if named is None:
        raise TrainingError("an activity-sparsity penalty needs a capas Network (its hidden layers are named)")
    layers = [(name, layer) for name, layer in named() if isinstance(layer, (ActivatedLayer, Maxout))]
    if len(layers) < 2:
        raise TrainingError("an activity-sparsity penalty needs at least one hidden layer, e.g. 784-100-10")
    return layers[:-1]


class ActivitySparsity:
    """The penalty's hooks around a training forward, and the active-unit counts."""

    def __init__(self, model: nn.Module, kind: str, weight: float, target: float) -> None:
        self.layers = hidden_layers(model)
        self.kind, self.weight, self.target = kind, weight, target
        if kind == "kl":
            wrong = [
                n
                for n, layer in self.layers
                if getattr(getattr(layer, "activation", None), "name", None) not in UNIT_INTERVAL
            ]
            if wrong:
                raise TrainingError(
                    f"sparsity='kl' needs hidden outputs in (0, 1) (sigmoid units); {', '.join(wrong)} "
                    "are not: build with act='sigmoid' or use sparsity='l1'"
                )
        self._active: dict[str, Tensor] = {}
        self._seen: dict[str, int] = {}

    def _hook(self, name: str) -> Callable[[nn.Module, Any, Tensor], Tensor | None]:
        """A forward hook: count layer ``name``'s active units, attach the penalty's gradient."""

        def hook(module: nn.Module, args: Any, out: Tensor) -> Tensor | None:
            if not (module.training and torch.is_grad_enabled()):
                return None
            active = (out.detach().abs() > ACTIVE_THRESHOLD).sum()
            self._active[name] = self._active[name] + active if name in self._active else active
            self._seen[name] = self._seen.get(name, 0) + out.numel()
            if not self.weight:
                return None
            return _AddGradient.apply(out, penalty_gradient(out.detach(), self.kind, self.weight, self.target))

        return hook

    def wrap(self, forward: nn.Module) -> nn.Module:
        """``forward`` (the task's training module) with the hooks on during each call."""
        return _Hooked(forward, self)

    def epoch_metrics(self) -> dict[str, float]:
        """``active_units`` (percent over all hidden units) and per layer; then reset."""
        if not self._seen:
            return {}
        per_layer = {name: float(self._active[name]) for name in self._seen}
        total_active, total_seen = sum(per_layer.values()), sum(self._seen.values())
        metrics = {"active_units": 100.0 * total_active / total_seen}
        metrics.update({f"active_units/{n}": 100.0 * per_layer[n] / self._seen[n] for n in per_layer})
        self._active, self._seen = {}, {}
        return metrics


class _Hooked(nn.Module):
    """Runs the wrapped module with the activity hooks installed for the call only."""

    def __init__(self, inner: nn.Module, sparsity: ActivitySparsity) -> None:
        super().__init__()
        self.inner = inner
        self.sparsity = sparsity

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with ExitStack() as stack:
            for name, layer in self.sparsity.layers:
                stack.callback(layer.register_forward_hook(self.sparsity._hook(name)).remove)
            return self.inner(*args, **kwargs)


def activity_for(model: nn.Module, config: Any) -> ActivitySparsity | None:
    """The run's activity sparsity (None when ``config.sparsity`` is None); TrainingError when
    the explicit engine was asked for, or the model cannot take it."""
    if config.sparsity is None:
        if config.sparsity_weight:
            raise TrainingError("sparsity_weight needs sparsity='l1' or 'kl' (which activity penalty to weigh)")
        return None
    if config.engine in ("backprop", "fast"):
        raise TrainingError(f"engine='{config.engine}' cannot train with sparsity: {DECLINED}; use engine='auto'")
    return ActivitySparsity(model, config.sparsity, config.sparsity_weight, config.sparsity_target)
