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
from capas.models.protocol import layer_names
from capas.train.callbacks import Callback

GRAD_PREFIX = "grad_norm/"
SPEED_PREFIX = "speed/"
BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0)}
PROBE_SIZE = 256  # samples of the activation probe
PROBE_CHUNK = 64  # samples per probe forward pass, which bounds the probe's memory

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


def gradient_findings(
    norms: Mapping[str, float], thresholds: Thresholds = Thresholds(), epoch: int | None = None, early: bool = True
) -> list[Finding]:
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


def loss_gradient_norms(
    model: nn.Module, x: Tensor, y: Tensor, loss: str | None = None
) -> dict[str, tuple[float, float]]:
    """(||dC0/dW||, ||dC0/db||) per weighted top-level layer at the current weights.

    ``C0`` is the data loss alone (mean over ``x (N, *)``, no penalty): a weight penalty's
    gradient ``lambda W`` would hide a vanishing gradient. The bias norm is Nielsen's
    "speed of learning" (``||delta^l||`` averaged over the samples); weights of a layer (and
    of the blocks inside it) are taken together, as are its biases. Eval mode.
    """
    from capas.objectives import Loss

    by_layer = {
        name: (
            [p for n, p in layer.named_parameters() if n.split(".")[-1] == "weight"],
            [p for n, p in layer.named_parameters() if n.split(".")[-1] == "bias"],
        )
        for name, layer in zip(model.layer_names(), model.layers)
    }
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


def _hidden_activation_modules(model: nn.Module) -> list[tuple[str, Activation]]:
    """(layer name, module) of every :class:`Activation` inside a hidden top-level layer, in order."""
    layers = list(getattr(model, "layers", [model]))
    hidden = layers[:-1] if len(layers) > 1 else []
    names = layer_names(model) or [str(i) for i in range(len(layers))]
    return [
        (layer_name, module)
        for layer_name, layer in zip(names, hidden)
        for module in layer.modules()
        if isinstance(module, Activation)
    ]


def hidden_activations(model: nn.Module, x: Tensor) -> list[tuple[str, str, Tensor]]:
    """(layer, activation name, outputs ``(N, units, *)``) of every hidden activation on ``x``.

    Outputs are caught with forward hooks on the :class:`Activation` modules, so any
    architecture works; activations inside the last top-level layer are left out. Keeps
    every output: for a large probe, :func:`activation_findings` streams statistics instead.
    """
    caught: list[tuple[str, str, Tensor]] = []
    handles = [
        module.register_forward_hook(_catcher(caught, layer_name, module.name))
        for layer_name, module in _hidden_activation_modules(model)
    ]
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


class _Tally:
    """Running statistics of one hidden activation over the chunks of a probe, kept on the device.

    Bounded activations (sigmoid, tanh, softsign) count outputs within ``margin`` of a bound;
    ReLUs keep, per unit (a dense unit or a conv channel), whether it was ever > 0.
    """

    def __init__(self, layer: str, act: str, margin: float | None):
        self.layer, self.act = layer, act
        self.margin = margin  # None: no saturation count (a ReLU)
        self.saturated: Tensor | None = None  # 0-dim int64 count of saturated outputs
        self.elements = 0
        self.fired: Tensor | None = None  # (units,) bool

    def __call__(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        s = output.detach()  # (B, units, *positions)
        if self.margin is not None:
            lo, hi = BOUNDS[self.act]
            count = ((s <= lo + self.margin) | (s >= hi - self.margin)).sum()
            self.saturated = count if self.saturated is None else self.saturated + count
            self.elements += s.numel()
        else:
            fired = (s > 0).transpose(0, 1).flatten(1).any(dim=1)  # (units,)
            self.fired = fired if self.fired is None else self.fired | fired

    @property
    def seen(self) -> bool:
        """Whether the activation ran on the probe (a branch may not)."""
        return self.saturated is not None or self.fired is not None

    def value(self) -> Tensor:
        """The saturated count, or the number of units that never fired (0-dim)."""
        return self.saturated if self.margin is not None else (~self.fired).sum()


def activation_findings(
    model: nn.Module,
    x: Tensor,
    thresholds: Thresholds = Thresholds(),
    epoch: int | None = None,
    saturation: bool = True,
    chunk: int = PROBE_CHUNK,
) -> list[Finding]:
    """Saturated sigmoid/tanh layers (unless ``saturation=False``) and dead ReLU units on a probe ``x (N, *)``.

    The probe goes through the model ``chunk`` samples at a time with one forward hook per
    checked activation, which reduces each output to a count as it passes (nothing is kept,
    so the probe's memory is that of one ``chunk``-sample no-grad forward); the hooks are
    removed before returning, and the device is read once. Nothing runs when no hidden
    activation needs a check (a sigmoid net once ``saturation`` is off).
    """
    tallies, handles = [], []
    for layer, module in _hidden_activation_modules(model):
        if module.name in BOUNDS and saturation:
            lo, hi = BOUNDS[module.name]
            tally = _Tally(layer, module.name, thresholds.saturation_margin * (hi - lo))
        elif module.name == "relu":
            tally = _Tally(layer, module.name, None)
        else:
            continue
        tallies.append(tally)
        handles.append(module.register_forward_hook(tally))
    if not tallies or len(x) == 0:
        return []
    try:
        with eval_mode(model), torch.no_grad():
            for start in range(0, len(x), chunk):
                model(x[start : start + chunk])
    finally:
        for handle in handles:
            handle.remove()
    tallies = [tally for tally in tallies if tally.seen]
    if not tallies:
        return []
    values = torch.stack([tally.value() for tally in tallies]).tolist()  # the one device read
    findings = []
    for tally, value in zip(tallies, values):
        if tally.margin is not None:
            lo, hi = BOUNDS[tally.act]
            fraction = value / tally.elements
            if fraction > thresholds.saturated_fraction:
                findings.append(
                    Finding(
                        "saturated",
                        f"{fraction:.0%} of {tally.layer}'s {tally.act} outputs are "
                        f"saturated (within {tally.margin:g} of {lo:g} or {hi:g}), so s'(z) ~ 0 there",
                        epoch,
                    )
                )
        else:
            units = tally.fired.numel()
            if value / units > thresholds.dead_fraction:
                findings.append(
                    Finding(
                        "dead_relu",
                        f"{value} of {units} ReLU units of {tally.layer} are never active on a probe batch of {len(x)}",
                        epoch,
                    )
                )
    return findings


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
        probe = trainer.task.probe(self.probe_size)  # the first training samples, on the device
        self.x, self.y = probe.x, probe.y

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

    Cost (on by default, so it must stay small): no hook stays installed across training
    steps; the gradient checks read the history record the trainer already wrote; each
    activation check is one no-grad pass over the probe (in chunks of ``PROBE_CHUNK``), about
    256 / (3 N) of an epoch over N samples, at ``log2(epochs) + 2`` points of a fit.
    """

    name = "gradient_monitor"

    def __init__(
        self,
        probe: Tensor | None = None,
        thresholds: Thresholds = Thresholds(),
        emit: bool = True,
        early_epochs: int = 10,
    ):
        self.probe = probe
        self.thresholds = thresholds
        self.early_epochs = early_epochs
        self.emit = emit
        self.findings: list[Finding] = []
        self.warned: set[str] = set()

    def on_fit_begin(self, trainer) -> None:
        if self.probe is None:
            self.probe = trainer.task.probe(PROBE_SIZE).x  # the first training inputs, on the device
        self._check_activations(trainer.model, None)

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        norms = {k[len(GRAD_PREFIX) :]: v for k, v in record.items() if k.startswith(GRAD_PREFIX)}
        self._report(gradient_findings(norms, self.thresholds, epoch, early=epoch <= self.early_epochs))
        if epoch >= 1 and epoch & (epoch - 1) == 0:  # 1, 2, 4, 8, ...
            self._check_activations(trainer.model, epoch)

    def _check_activations(self, model: nn.Module, epoch: int | None) -> None:
        self.probe = self.probe.to(next(model.parameters()).device)  # moved once, not at every check
        early = epoch is None or epoch <= self.early_epochs
        self._report(activation_findings(model, self.probe, self.thresholds, epoch, saturation=early))

    def _report(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.findings.append(finding)
            if self.emit and finding.kind not in self.warned:
                self.warned.add(finding.kind)
                warnings.warn(str(finding), CapasWarning, stacklevel=3)
