"""Warnings while training: vanishing/exploding gradients, saturated units, dead ReLUs.

The course's "speed of learning" figure (file 004, Nielsen ch. 5) shows the first hidden
layer of a deep sigmoid net learning ~100x slower than the last: each layer multiplies the
error signal by ``s'(z) <= 1/4``. :class:`GradientMonitor` watches for that and its cousins
and warns once per kind, with the usual remedy:

=================  ============================================  ==================================
kind               condition                                     hint
=================  ============================================  ==================================
vanishing          ||dE/dW_first|| / ||dE/dW_last|| < 1e-2 (*)   ReLU, He/Glorot init, normalisation
exploding          that ratio > 1e2 (*), or a norm is inf/NaN    clipping, lower LR, normalisation
tiny               some layer's norm < 1e-7 (*)                  ReLU, better init, higher LR
huge               some layer's norm > 1e3                       gradient clipping, lower LR
saturated          > 30% of a sigmoid/tanh layer's outputs       Glorot init, standardised inputs,
                   within 1% of its range of its bounds on a     ReLU, lower LR
                   probe batch (*)
dead_relu          > 20% of a ReLU layer's units never active    lower LR, He init, leaky ReLU
=================  ============================================  ==================================

(*) only in the first 10 epochs. The output layer's activation is never checked (confident softmax/sigmoid outputs are
the goal, not a problem).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from capas.errors import CapasWarning
from capas.layers.activations import Activation
from capas.models.modes import eval_mode
from capas.train.callbacks import Callback

GRAD_PREFIX = "grad_norm/"
SPEED_PREFIX = "speed/"
BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0)}
PROBE_SIZE = 256

HINTS = {
    "vanishing": "use ReLU hidden units, He/Glorot initialisation, batch normalisation, or pre-training",
    "exploding": "clip gradients (clip_norm), lower the learning rate, or add normalisation",
    "tiny": "use ReLU hidden units, He/Glorot initialisation, or a higher learning rate",
    "huge": "clip gradients (clip_norm) or lower the learning rate",
    "saturated": "use Glorot initialisation, standardised inputs, ReLU units, or a lower learning rate",
    "dead_relu": "lower the learning rate, use He initialisation, or leaky_relu/elu",
}


@dataclass(frozen=True)
class Finding:
    """One problem seen: its kind (a key of ``HINTS``), what was seen, and when."""

    kind: str
    message: str
    epoch: int | None = None

    @property
    def hint(self) -> str:
        return HINTS[self.kind]

    def __str__(self) -> str:
        where = f"epoch {self.epoch}: " if self.epoch is not None else ""
        return f"{where}{self.message}; hint: {self.hint}"


@dataclass(frozen=True)
class Thresholds:
    """When each finding fires (see the module table)."""

    vanishing_ratio: float = 1e-2
    exploding_ratio: float = 1e2
    tiny_norm: float = 1e-7
    huge_norm: float = 1e3
    saturation_margin: float = 0.01
    saturated_fraction: float = 0.3
    dead_fraction: float = 0.2


def gradient_findings(norms: Mapping[str, float], thresholds: Thresholds = Thresholds(),
                      epoch: int | None = None, early: bool = True) -> list[Finding]:
    """Findings from per-layer gradient norms, given in network order (first layer first).

    With ``early=False`` (later in training) only non-finite and huge norms count: near a
    minimum every gradient shrinks, so ratios and tiny norms say nothing then.
    """
    if not norms:
        return []
    names, values = list(norms), [float(v) for v in norms.values()]
    findings = []
    bad = [n for n, v in zip(names, values) if not math.isfinite(v)]
    if bad:
        findings.append(Finding("exploding", f"non-finite gradient norm in {', '.join(bad)}", epoch))
        return findings
    if early and len(values) >= 2 and values[-1] > 0:
        ratio = values[0] / values[-1]
        pair = f"||dE/dW|| of {names[0]} / {names[-1]} = {values[0]:.3g} / {values[-1]:.3g} = {ratio:.3g}"
        if ratio < thresholds.vanishing_ratio:
            findings.append(Finding("vanishing", f"vanishing gradient: {pair}", epoch))
        elif ratio > thresholds.exploding_ratio:
            findings.append(Finding("exploding", f"exploding gradient: {pair}", epoch))
    tiny = [f"{n}={v:.2g}" for n, v in zip(names, values) if early and v < thresholds.tiny_norm]
    huge = [f"{n}={v:.2g}" for n, v in zip(names, values) if v > thresholds.huge_norm]
    if tiny:
        findings.append(Finding("tiny", f"tiny gradient norms ({', '.join(tiny)})", epoch))
    if huge:
        findings.append(Finding("huge", f"huge gradient norms ({', '.join(huge)})", epoch))
    return findings


def loss_gradient_norms(model: nn.Module, x: Tensor, y: Tensor,
                        loss: str | None = None) -> dict[str, tuple[float, float]]:
    """(||dC0/dW||, ||dC0/db||) per weighted top-level layer at the current weights.

    ``C0`` is the data loss alone (mean over ``x (N, *)``, no penalty): a weight penalty's
    gradient ``lambda W`` would hide a vanishing gradient. The bias norm is Nielsen's
    "speed of learning" (``||delta^l||`` averaged over the samples); weights of a layer (and
    of the blocks inside it) are taken together, as are its biases. Eval mode.
    """
    from capas.train.losses import Loss

    by_layer = {name: ([p for n, p in layer.named_parameters() if n.split(".")[-1] == "weight"],
                       [p for n, p in layer.named_parameters() if n.split(".")[-1] == "bias"])
                for name, layer in zip(model.layer_names(), model.layers)}
    by_layer = {name: wb for name, wb in by_layer.items() if wb[0]}
    flat = [p for weights, biases in by_layer.values() for p in (*weights, *biases)]
    frozen = [p for p in flat if not p.requires_grad]  # frozen layers still have a gradient to measure
    try:
        for p in frozen:
            p.requires_grad_(True)
        loss_fn = Loss(loss or model.loss, num_classes=getattr(model, "output_shape", (None,))[0])
        with eval_mode(model):
            output = model.logits(x) if loss_fn.from_logits else model(x)  # (N, K)
            grads = iter(torch.autograd.grad(loss_fn(output, y), flat, allow_unused=True))
    finally:
        for p in frozen:
            p.requires_grad_(False)
    norms = {}
    for name, (weights, biases) in by_layer.items():
        w = [next(grads) for _ in weights]
        b = [next(grads) for _ in biases]
        norms[name] = (_joint_norm(w), _joint_norm(b))
    return norms


def _joint_norm(grads: list[Tensor | None]) -> float:
    """L2 norm of several gradients taken as one vector (unused ones count as zero)."""
    squares = [g.double().pow(2).sum() for g in grads if g is not None]
    return math.sqrt(float(sum(squares))) if squares else 0.0


def hidden_activations(model: nn.Module, x: Tensor) -> list[tuple[str, str, Tensor]]:
    """(layer, activation name, outputs ``(N, units, *)``) of every hidden activation on ``x``.

    Outputs are caught with forward hooks on the :class:`Activation` modules, so any
    architecture works; activations inside the last top-level layer are left out.
    """
    layers = list(getattr(model, "layers", [model]))
    hidden = layers[:-1] if len(layers) > 1 else []
    names = list(model.layer_names()) if hasattr(model, "layer_names") else [str(i) for i in range(len(layers))]
    caught: list[tuple[str, str, Tensor]] = []
    handles = []
    for layer_name, layer in zip(names, hidden):
        for module in layer.modules():
            if isinstance(module, Activation):
                hook = _catcher(caught, layer_name, module.name)
                handles.append(module.register_forward_hook(hook))
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return caught


def _catcher(caught: list, layer_name: str, act_name: str):
    def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        caught.append((layer_name, act_name, output.detach()))
    return hook


def activation_findings(model: nn.Module, x: Tensor, thresholds: Thresholds = Thresholds(),
                        epoch: int | None = None, saturation: bool = True) -> list[Finding]:
    """Saturated sigmoid/tanh layers (unless ``saturation=False``) and dead ReLU units on a probe batch ``x (N, *)``."""
    findings = []
    for layer, act, s in hidden_activations(model, x):
        if act in BOUNDS and saturation:
            lo, hi = BOUNDS[act]
            margin = thresholds.saturation_margin * (hi - lo)
            fraction = ((s <= lo + margin) | (s >= hi - margin)).float().mean().item()
            if fraction > thresholds.saturated_fraction:
                findings.append(Finding("saturated", f"{fraction:.0%} of {layer}'s {act} outputs are saturated "
                                        f"(within {margin:g} of {lo:g} or {hi:g}), so s'(z) ~ 0 there", epoch))
        elif act == "relu":
            per_unit = s.transpose(0, 1).flatten(1)  # (units, N * positions)
            dead = (per_unit <= 0).all(dim=1)  # (units,)
            fraction = dead.float().mean().item()
            if fraction > thresholds.dead_fraction:
                findings.append(Finding("dead_relu", f"{int(dead.sum())} of {dead.numel()} ReLU units of {layer} "
                                        f"are never active on a probe batch of {s.shape[0]}", epoch))
    return findings


def _training_inputs(trainer, targets: bool = False) -> Tensor:
    """The trainer's training inputs (on its device), else its data's, else a loader's first batch;
    with ``targets``, the matching labels/targets instead."""
    name = "y_train" if targets else "x_train"
    for x in (getattr(trainer, name, None), getattr(trainer.data, name, None)):
        if x is not None:
            return x
    batch = next(iter(trainer.data.loader))[1 if targets else 0]
    return trainer.on_device(batch)  # the model's device and floating dtype


class SpeedOfLearning(Callback):
    """Nielsen's "speed of learning" after every epoch: ``||dC0/db^l||`` of each layer.

    ``C0`` is the data loss (no penalty) on a fixed probe of the first ``probe_size``
    training samples, so an L2 term cannot mask a vanishing gradient. Each epoch's history
    record gets ``speed/<layer>``; the ``gradients`` plot draws them next to ``grad_norm``.
    Costs one forward and backward pass over the probe per epoch.
    """

    name = "speed_of_learning"

    def __init__(self, probe_size: int = 1000):
        self.probe_size = probe_size

    def on_fit_begin(self, trainer) -> None:
        self.x = _training_inputs(trainer)[: self.probe_size]
        self.y = _training_inputs(trainer, targets=True)[: self.probe_size]

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        loss = getattr(getattr(trainer, "loss", None), "name", None)
        for layer, (_, bias_norm) in loss_gradient_norms(trainer.model, self.x, self.y, loss).items():
            record[SPEED_PREFIX + layer] = bias_norm


class GradientMonitor(Callback):
    """Warns (``CapasWarning``, once per kind) about gradient and activation problems.

    Gradient norms come from each epoch's history record (``grad_norm/<layer>``); unit
    saturation and dead ReLUs are checked on a probe batch (``probe``, else the first 256
    training inputs) before training and after epochs 1, 2, 4, 8, ... . Gradient ratios,
    tiny norms and saturation count only in the first ``early_epochs``: there they stall
    learning, while near a minimum every gradient shrinks and a net that has learnt often
    saturates on purpose (sharp decisions). Every finding, warned or not, is kept in
    ``findings``.
    """

    name = "gradient_monitor"

    def __init__(self, probe: Tensor | None = None, thresholds: Thresholds = Thresholds(), emit: bool = True,
                 early_epochs: int = 10):
        self.probe = probe
        self.thresholds = thresholds
        self.early_epochs = early_epochs
        self.emit = emit
        self.findings: list[Finding] = []
        self.warned: set[str] = set()

    def on_fit_begin(self, trainer) -> None:
        if self.probe is None:
            self.probe = _training_inputs(trainer)[:PROBE_SIZE]
        self._check_activations(trainer.model, None)

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        norms = {k[len(GRAD_PREFIX):]: v for k, v in record.items() if k.startswith(GRAD_PREFIX)}
        self._report(gradient_findings(norms, self.thresholds, epoch, early=epoch <= self.early_epochs))
        if epoch >= 1 and epoch & (epoch - 1) == 0:  # 1, 2, 4, 8, ...
            self._check_activations(trainer.model, epoch)

    def _check_activations(self, model: nn.Module, epoch: int | None) -> None:
        device = next(model.parameters()).device
        early = epoch is None or epoch <= self.early_epochs
        self._report(activation_findings(model, self.probe.to(device), self.thresholds, epoch, saturation=early))

    def _report(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.findings.append(finding)
            if self.emit and finding.kind not in self.warned:
                self.warned.add(finding.kind)
                warnings.warn(str(finding), CapasWarning, stacklevel=3)
