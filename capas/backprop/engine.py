"""The slides' delta rule for a chain of ``Dense``/``Maxout`` layers, vectorised, no autograd.

For a batch ``X (B, M_0)`` and layers ``l = 1..L`` with ``Theta^l = (W^l (M_l, M_{l-1}), b^l (M_l,))``
(course file 001, "Ecuaciones BackProp", one row per sample)::

    forward    phi^l = s^(l-1) W^l^T + b^l                  (B, M_l)     s^0 = X
               s^l   = g(phi^l)                             (B, M_l)
    backward   delta^L = g'(phi^L) * e^L                    e^L = -dq_n/ds^L, e.g. t - s^L
               delta^l = g'(phi^l) * (delta^(l+1) W^(l+1))  (B, M_l)
    gradient   dE/dW^l = -(1/B) delta^l^T s^(l-1)           (M_l, M_(l-1))
               dE/db^l = -(1/B) sum_n delta^l_n             (M_l,)

``delta`` keeps the slides' sign (``delta = -dq_n/dphi`` for one sample ``n``), so the
batch update ``Delta Theta^l = -rho dE/dTheta^l = (rho/B) sum_n delta^l_n s^(l-1)_n`` is the
slides' ``(rho/N) sum_n delta s``. A maxout unit routes its delta to the piece that won the
max; an inverted-dropout mask ``m`` on a layer's input scales both ``s^(l-1)`` and the error
sent back through it. Every buffer is allocated once per batch size and every step writes
into it (``out=`` and in-place ops), which is what makes small MLPs fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from capas.backprop.outputs import OutputRule
from capas.layers.activations import Activation
from capas.layers.dense import Dense, Maxout
from capas.layers.norm import Dropout, Flatten

_aten = torch.ops.aten
_KEPT_BATCH_SIZES = 4


def _forward_fast(name: str) -> Callable[[Tensor, Tensor], None] | None:
    """In-place ``s = g(z)`` for the common activations (else the module is called)."""
    return {
        "sigmoid": lambda z, s: torch.sigmoid(z, out=s),
        "tanh": lambda z, s: torch.tanh(z, out=s),
        "relu": lambda z, s: torch.clamp(z, min=0, out=s),
    }.get(name)


def _backward_fast(name: str) -> Callable[[Tensor, Tensor, Tensor, Tensor], None] | None:
    """In-place ``delta = g'(z) * e`` with one fused kernel: s(1-s), 1-s^2, [z > 0]."""
    return {
        "sigmoid": lambda z, s, e, out: _aten.sigmoid_backward.grad_input(e, s, grad_input=out),
        "tanh": lambda z, s, e, out: _aten.tanh_backward.grad_input(e, s, grad_input=out),
        "relu": lambda z, s, e, out: _aten.threshold_backward.grad_input(e, z, 0, grad_input=out),
    }.get(name)


@dataclass
class LayerPlan:
    """One weight layer of the chain, with views of the model's own parameters."""

    name: str
    weight: Tensor  # (rows, in) detached view: in-place updates change the model
    bias: Tensor | None  # (rows,)
    activation: Activation | None  # None for maxout
    pieces: int  # 1 for Dense
    dropout: float  # inverted-dropout probability on this layer's input (0: none)

    @property
    def linear(self) -> bool:
        """g(z) = z: then s^l is phi^l and delta^l is e^l (one buffer each, no copies)."""
        return self.activation is not None and self.activation.name == "linear"

    @property
    def rows(self) -> int:
        return self.weight.shape[0]

    @property
    def out_features(self) -> int:
        return self.rows // self.pieces


def plan_layers(model: nn.Module) -> list[LayerPlan]:
    """The chain of weight layers of ``model`` (``model.layers`` or its children).

    Raises ``ValueError`` with the reason when the chain is not a plain MLP; the caller
    (``capas.backprop.supports``) turns it into a message.
    """
    modules = list(getattr(model, "layers", None) or model.children())
    names = list(model.layer_names()) if hasattr(model, "layer_names") else None
    plans: list[LayerPlan] = []
    pending_dropout = 0.0
    for index, module in enumerate(modules):
        name = names[index] if names is not None else f"{type(module).__name__.lower()}{index + 1}"
        if isinstance(module, Flatten):
            continue
        if isinstance(module, Dropout):
            if pending_dropout:
                raise ValueError(f"two Dropout layers in a row before '{name}'")
            pending_dropout = float(module.p)
            continue
        if isinstance(module, Dense):
            activation = module.activation
            if not activation.elementwise and index != len(modules) - 1:
                raise ValueError(f"'{name}' uses {activation.name}, which the engine supports only at the output")
            pieces = 1
        elif isinstance(module, Maxout):
            activation, pieces = None, module.pieces
        else:
            raise ValueError(f"layer '{name}' ({type(module).__name__}) is not Dense, Maxout, Dropout or Flatten")
        bias = None if module.bias is None else module.bias.detach()
        plans.append(LayerPlan(name, module.weight.detach(), bias, activation, pieces, pending_dropout))
        pending_dropout = 0.0
    if pending_dropout:
        raise ValueError("a Dropout layer after the last weight layer has nothing to drop")
    if not plans:
        raise ValueError("the model has no Dense or Maxout layer")
    return plans


class _Buffers:
    """Every tensor one step of batch size ``B`` writes, allocated once."""

    def __init__(self, plans: list[LayerPlan], batch: int, like: Tensor, outputs: int) -> None:
        empty = lambda *shape: torch.empty(shape, dtype=like.dtype, device=like.device)  # noqa: E731
        first = plans[0].weight.shape[1]
        self.x = empty(batch, first)  # (B, M_0) gathered inputs (run_epoch)
        self.target = empty(batch, outputs)  # (B, M_L)
        self.ones = torch.ones(batch, dtype=like.dtype, device=like.device)  # (B,) for bias sums
        self.z = [empty(batch, p.rows) for p in plans]  # phi^l (B, rows)
        self.s = [z if p.linear else empty(batch, p.out_features) for p, z in zip(plans, self.z)]  # s^l (B, M_l)
        self.delta = [empty(batch, p.rows) for p in plans]  # delta^l (B, rows)
        self.error = [d if p.linear else empty(batch, p.out_features) for p, d in zip(plans, self.delta)]  # e^l
        self.mask = [empty(batch, p.weight.shape[1]) if p.dropout else None for p in plans]  # (B, in)
        self.dropped = [empty(batch, p.weight.shape[1]) if p.dropout else None for p in plans]  # s * m
        self.argmax = [
            torch.empty(batch, p.out_features, dtype=torch.long, device=like.device) if p.pieces > 1 else None
            for p in plans
        ]  # (B, M_l) winning piece of each maxout unit
        self.delta_t = [d.t() for d in self.delta]  # (rows, B) views, made once


class DeltaRuleNet:
    """Forward and backward passes of the delta rule over ``plans``, filling ``grads``.

    ``grads[l] = (dE/dW^l, dE/db^l)`` (shapes of the parameters) for the objective
    ``E = (1/B) sum_n q_n + penalty`` of the last call to ``gradients``.
    """

    def __init__(
        self,
        plans: list[LayerPlan],
        rule: OutputRule,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        regularize_bias: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.plans = plans
        self.rule = rule
        self.l1 = l1
        self.l2 = l2
        self.regularize_bias = regularize_bias
        self.generator = generator
        self.training = True
        weight = plans[0].weight
        self.grads = [
            (torch.zeros_like(p.weight), None if p.bias is None else torch.zeros_like(p.bias)) for p in plans
        ]
        self._weight_t = [p.weight.t() for p in plans]  # (in, rows) views, made once
        self._forward = [None if p.activation is None else _forward_fast(p.activation.name) for p in plans]
        self._backward = [None if p.activation is None else _backward_fast(p.activation.name) for p in plans]
        self._buffers: dict[int, _Buffers] = {}
        self._like = weight
        self.last: _Buffers | None = None

    def buffers(self, batch: int) -> _Buffers:
        """The buffers for batch size ``batch`` (allocated on first use; the few most recent
        sizes are kept: an epoch has at most two, a curriculum's full batches one per epoch)."""
        found = self._buffers.get(batch)
        if found is None:
            if len(self._buffers) >= _KEPT_BATCH_SIZES:
                del self._buffers[next(iter(self._buffers))]  # the oldest size
            found = _Buffers(self.plans, batch, self._like, self.plans[-1].out_features)
            self._buffers[batch] = found
        return found

    def gradients(self, x: Tensor, y: Tensor, descend: float | None = None) -> Tensor:
        """Forward, output error, backward for ``x (B, *)`` and targets ``y``; fills ``grads``.

        ``y`` is ``(B,)`` class indices or ``(B, K)`` targets. With ``descend = rho`` the
        gradients are not stored but applied at once, ``theta -= rho dE/dtheta`` (the
        slides' update fused into the same matrix product; no penalties then). Returns
        the data loss E (0-dim; penalties are in the gradients, not in E).
        """
        batch = x.shape[0]
        buf = self.buffers(batch)
        if x.dim() != 2:
            x = x.reshape(batch, -1)  # (B, M_0)
        s_out = self.forward(x, buf)
        t = self.rule.target(y, buf.target)  # (B, K)
        out = buf.delta[-1] if self.rule.writes_delta else buf.error[-1]
        loss = self.rule(buf.z[-1], s_out, t, out)
        self.backward(x, buf, self.rule.writes_delta, descend)
        if descend is None and (self.l1 or self.l2):
            self.add_penalty_gradients()
        self.last = buf
        return loss

    def add_penalty_gradients(self) -> None:
        """dE/dtheta += l2 theta + l1 sign(theta), the gradients of the trainer's penalty
        ``l2/2 sum theta^2 + l1 sum |theta|`` (weights; biases too with ``regularize_bias``)."""
        for plan, grads in zip(self.plans, self.grads):
            tensors = [(plan.weight, grads[0])]
            if self.regularize_bias and plan.bias is not None:
                tensors.append((plan.bias, grads[1]))
            for theta, grad in tensors:
                if self.l2:
                    grad.add_(theta, alpha=self.l2)
                if self.l1:
                    grad.add_(torch.sign(theta), alpha=self.l1)

    def forward(self, x: Tensor, buf: _Buffers) -> Tensor:
        """s^L for inputs ``x (B, M_0)``; dropout masks are drawn when ``training``."""
        inp = x
        for l, plan in enumerate(self.plans):
            if plan.dropout and self.training:
                keep = 1.0 - plan.dropout
                buf.mask[l].bernoulli_(keep, generator=self.generator).div_(keep)  # (B, in) in {0, 1/keep}
                inp = torch.mul(inp, buf.mask[l], out=buf.dropped[l])
            z, s = buf.z[l], buf.s[l]
            if plan.bias is None:
                torch.mm(inp, self._weight_t[l], out=z)  # (B, rows)
            else:
                torch.addmm(plan.bias, inp, self._weight_t[l], out=z)  # (B, rows)
            if plan.pieces > 1:
                torch.max(z.view(z.shape[0], plan.out_features, plan.pieces), 2, out=(s, buf.argmax[l]))
            elif plan.linear:
                pass  # s is z
            elif self._forward[l] is not None:
                self._forward[l](z, s)
            else:
                s.copy_(plan.activation(z))
            inp = s
        return inp

    def backward(self, x: Tensor, buf: _Buffers, output_is_delta: bool, descend: float | None = None) -> None:
        """Deltas from the output error in ``buf.error[-1]`` (or ``buf.delta[-1]``), then
        grads (or, with ``descend``, the update ``theta -= descend * grad`` in place)."""
        scale = -1.0 / x.shape[0]
        for l in range(len(self.plans) - 1, -1, -1):
            plan = self.plans[l]
            z, s, e, delta = buf.z[l], buf.s[l], buf.error[l], buf.delta[l]
            if (l == len(self.plans) - 1 and output_is_delta) or plan.linear:
                pass  # the loss wrote delta^L itself (softmax/sigmoid + cross-entropy: t - s), or e is delta
            elif plan.pieces > 1:
                delta.zero_()  # gradient flows only to the winning piece
                delta.view(-1, plan.out_features, plan.pieces).scatter_(2, buf.argmax[l].unsqueeze(2), e.unsqueeze(2))
            elif self._backward[l] is not None:
                self._backward[l](z, s, e, delta)
            elif plan.activation.elementwise:
                torch.mul(e, plan.activation.derivative(z, s), out=delta)
            else:
                delta.copy_(plan.activation.jacobian_vector_product(s, e))  # softmax: J^T e, J symmetric
            if l > 0:  # before W^l changes, when the update is fused
                below = buf.error[l - 1]
                torch.mm(delta, plan.weight, out=below)  # (B, M_(l-1)) = delta^l W^l
                if plan.dropout and self.training:
                    below.mul_(buf.mask[l])
            inp = x if l == 0 else buf.s[l - 1]
            if plan.dropout and self.training:
                inp = buf.dropped[l]
            if descend is None:
                grad_w, grad_b, beta, alpha = *self.grads[l], 0, scale
            else:
                grad_w, grad_b, beta, alpha = plan.weight, plan.bias, 1, -descend * scale
            grad_w.addmm_(buf.delta_t[l], inp, beta=beta, alpha=alpha)  # -(1/B) delta^T s^(l-1)
            if grad_b is not None:
                grad_b.addmv_(buf.delta_t[l], buf.ones, beta=beta, alpha=alpha)  # -(1/B) sum_n delta_n
