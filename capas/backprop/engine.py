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
from functools import partial

import torch
from torch import Tensor, nn

from capas.backprop.outputs import OutputRule
from capas.layers.activations import Activation
from capas.layers.dense import Dense, Maxout
from capas.layers.norm import Dropout, Flatten
from capas.models.protocol import layer_names
from capas.objectives import add_penalty_gradients

_aten = torch.ops.aten
_KEPT_BATCH_SIZES = 4


def _forward_fast(name: str, z: Tensor, s: Tensor) -> Callable[[], object] | None:
    """In-place ``s = g(z)`` for the common activations (else the module is called)."""
    if name == "sigmoid":
        return partial(torch.sigmoid, z, out=s)
    if name == "tanh":
        return partial(torch.tanh, z, out=s)
    if name == "relu":
        return partial(torch.clamp, z, min=0, out=s)
    if name == "softmax":  # over the last dimension, as ``Softmax.forward``
        return partial(_aten._softmax.out, z, -1, False, out=s)
    return None


def _backward_fast(name: str, z: Tensor, s: Tensor, e: Tensor, delta: Tensor) -> Callable[[], object] | None:
    """In-place ``delta = g'(z) * e`` in one fused kernel: s(1-s), 1-s^2, [z > 0]."""
    if name == "sigmoid":
        return partial(_aten.sigmoid_backward.grad_input, e, s, grad_input=delta)
    if name == "tanh":
        return partial(_aten.tanh_backward.grad_input, e, s, grad_input=delta)
    if name == "relu":
        return partial(_aten.threshold_backward.grad_input, e, z, 0, grad_input=delta)
    return None


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
    names = layer_names(model)
    plans: list[LayerPlan] = []
    pending_dropout = 0.0
    for index, module in enumerate(modules):
        name = names[index] if names is not None else f"{type(module).__name__.lower()}{index + 1}"
        if isinstance(module, Flatten):
            continue
        if isinstance(module, Dropout):
            if module.classic:
                raise ValueError(f"dropout before '{name}' is classic (test outputs times 1 - p), not inverted")
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
    """Every tensor one step of batch size ``B`` writes, allocated once, and the per-layer
    forward/backward closures that write them (built once: a step is then a few Python
    calls around the tensor ops, which matters at B = 1)."""

    def __init__(self, net: DeltaRuleNet, batch: int) -> None:
        plans, like = net.plans, net.plans[0].weight
        empty = lambda *shape: torch.empty(shape, dtype=like.dtype, device=like.device)  # noqa: E731
        self.target = empty(batch, plans[-1].out_features)  # (B, M_L)
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
        self.inputs: list[Tensor | None] = [None] * len(plans)  # what each layer multiplied: s^(l-1) (* m)
        self.output = self.delta[-1] if net.rule.writes_delta else self.error[-1]  # where the loss writes
        self.forwards = [self._forward(net, l, plan) for l, plan in enumerate(plans)]
        self.backwards = [self._backward(net, l, plan, batch) for l, plan in reversed(list(enumerate(plans)))]

    def _forward(self, net: DeltaRuleNet, l: int, plan: LayerPlan) -> Callable[[Tensor], Tensor]:
        """``s^(l-1) -> s^l`` for layer ``l``, recording its (dropped-out) input."""
        z, s, mask, dropped, inputs = self.z[l], self.s[l], self.mask[l], self.dropped[l], self.inputs
        bias, weight_t, keep = plan.bias, plan.weight.t(), 1.0 - plan.dropout  # (in, rows) view
        activate: Callable[[], object] | None
        if plan.pieces > 1:
            pieces, argmax = z.view(z.shape[0], plan.out_features, plan.pieces), self.argmax[l]  # (B, M_l, k)
            activate = partial(torch.max, pieces, 2, out=(s, argmax))
        elif plan.linear:
            activate = None  # s is z
        elif (fast := _forward_fast(plan.activation.name, z, s)) is not None:
            activate = fast
        else:
            activate = lambda: s.copy_(plan.activation(z))  # noqa: E731

        def forward(inp: Tensor) -> Tensor:
            if mask is not None and net.training:
                mask.bernoulli_(keep, generator=net.generator).div_(keep)  # (B, in) in {0, 1/keep}
                inp = torch.mul(inp, mask, out=dropped)
            inputs[l] = inp
            if bias is None:
                torch.mm(inp, weight_t, out=z)  # (B, rows)
            else:
                torch.addmm(bias, inp, weight_t, out=z)  # (B, rows)
            if activate is not None:
                activate()
            return s

        return forward

    def _backward(self, net: DeltaRuleNet, l: int, plan: LayerPlan, batch: int) -> Callable[[float | None], None]:
        """delta^l from e^l, e^(l-1) = delta^l W^l, then grads (or the fused update)."""
        z, s, e, delta, mask, inputs = self.z[l], self.s[l], self.error[l], self.delta[l], self.mask[l], self.inputs
        delta_t, ones, below = delta.t(), self.ones, self.error[l - 1] if l > 0 else None  # (rows, B) view
        weight, bias = plan.weight, plan.bias
        grad_w, grad_b = net.grads[l]
        scale = -1.0 / batch
        local: Callable[[], object] | None
        if (l == len(net.plans) - 1 and net.rule.writes_delta) or plan.linear:
            local = None  # the loss wrote delta^L (softmax/sigmoid + cross-entropy), or e is delta
        elif plan.pieces > 1:  # gradient flows only to the winning piece
            pieces = delta.view(batch, plan.out_features, plan.pieces)  # (B, M_l, k)
            winner, sent = self.argmax[l].unsqueeze(2), e.unsqueeze(2)  # (B, M_l, 1) views
            local = lambda: pieces.zero_().scatter_(2, winner, sent)  # noqa: E731
        elif (fast := _backward_fast(plan.activation.name, z, s, e, delta)) is not None:
            local = fast
        elif plan.activation.elementwise:
            local = lambda: torch.mul(e, plan.activation.derivative(z, s), out=delta)  # noqa: E731
        else:  # softmax with a squared error: J^T e, J = diag(s) - s s^T is symmetric
            local = lambda: delta.copy_(plan.activation.jacobian_vector_product(s, e))  # noqa: E731

        def backward(descend: float | None) -> None:
            if local is not None:
                local()
            if below is not None:  # before W^l changes, when the update is fused
                torch.mm(delta, weight, out=below)  # (B, M_(l-1)) = delta^l W^l
                if mask is not None and net.training:
                    below.mul_(mask)
            inp = inputs[l]
            if descend is None:
                grad_w.addmm_(delta_t, inp, beta=0, alpha=scale)  # -(1/B) delta^T s^(l-1)
                if grad_b is not None:
                    grad_b.addmv_(delta_t, ones, beta=0, alpha=scale)  # -(1/B) sum_n delta_n
            else:
                weight.addmm_(delta_t, inp, alpha=-descend * scale)  # W -= rho dE/dW
                if bias is not None:
                    bias.addmv_(delta_t, ones, alpha=-descend * scale)

        return backward


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
        self.grads = [(torch.zeros_like(p.weight), None if p.bias is None else torch.zeros_like(p.bias)) for p in plans]
        self._buffers: dict[int, _Buffers] = {}
        self.last: _Buffers | None = None

    def buffers(self, batch: int) -> _Buffers:
        """The buffers for batch size ``batch`` (allocated on first use; the few most recent
        sizes are kept: an epoch has at most two, a curriculum's full batches one per epoch)."""
        found = self._buffers.get(batch)
        if found is None:
            if len(self._buffers) >= _KEPT_BATCH_SIZES:
                del self._buffers[next(iter(self._buffers))]  # the oldest size
            found = self._buffers[batch] = _Buffers(self, batch)
        return found

    def gradients(self, x: Tensor, y: Tensor, descend: float | None = None, penalize: bool = True) -> Tensor:
        """Forward, output error, backward for ``x (B, *)`` and targets ``y``; fills ``grads``.

        ``y`` is ``(B,)`` class indices or ``(B, K)`` targets. With ``descend = rho`` the
        gradients are not stored but applied at once, ``theta -= rho dE/dtheta`` (the
        slides' update fused into the same matrix product; no penalties then). Returns
        the data loss E (0-dim; penalties are in the gradients, not in E). With
        ``penalize=False`` the penalty's gradient is left for ``add_penalty_gradients``
        (the stepper records the data loss's gradient norms in between).
        """
        buf = self.buffers(x.shape[0])
        out = x if x.dim() == 2 else x.reshape(x.shape[0], -1)  # (B, M_0)
        for forward in buf.forwards:
            out = forward(out)  # s^l (B, M_l)
        loss = self.rule(buf.z[-1], out, self.rule.target(y, buf.target), buf.output)
        for backward in buf.backwards:
            backward(descend)
        if penalize and descend is None and (self.l1 or self.l2):
            self.add_penalty_gradients()
        self.last = buf
        return loss

    def add_penalty_gradients(self) -> None:
        """dE/dtheta += l2 theta + l1 sign(theta), the gradients of the trainer's penalty
        ``l2/2 sum theta^2 + l1 sum |theta|`` (weights; biases too with ``regularize_bias``)."""
        pairs = []
        for plan, grads in zip(self.plans, self.grads):
            pairs.append((plan.weight, grads[0]))
            if self.regularize_bias and plan.bias is not None:
                pairs.append((plan.bias, grads[1]))
        add_penalty_gradients(pairs, self.l2, self.l1)
