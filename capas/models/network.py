"""``Network``: the module every spec builds, and ``build``, the one way to build it.

What ``forward`` returns: the output layer's activations s^L exactly as the slides define
them — softmax probabilities for ``cross_entropy``, sigmoid outputs for
``binary_cross_entropy``, the identity for ``mse``. ``logits(x)`` returns that layer's
pre-activation z^L; the trainer feeds it to a numerically stable loss
(``cross_entropy(logits)`` rather than ``log(softmax)``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from capas.errors import SpecError, TrainingError
from capas.layers import Activation, Dense, Dropout, Maxout, get_activation
from capas.layers.blocks import concat_inputs
from capas.layers.dense import ActivatedLayer
from capas.layers.init import check_scheme
from capas.layers.kinds import KINDS, describe
from capas.layers.sequence import PerStep
from capas.models.builder import Builder
from capas.models.modes import eval_mode
from capas.models.registry import register
from capas.models.spec_input import spec_text
from capas.notation import parse
from capas.objectives import LOSSES, canonical_loss

#: loss name -> the output activation it implies (softmax, sigmoid, linear), from the registry.
OUTPUT_FOR_LOSS = {name: info.output_activation for name, info in LOSSES.items()}
TASKS = ("classification", "regression")
CONFIG_FORMAT = 1
MODEL_KIND = "network"  # its name in capas.models.registry.MODELS and in model.json


@register(MODEL_KIND)
class Network(nn.Module):
    """A stack of named layers (``layers[i]`` is called ``layer_names()[i]``) built from a spec.

    ``sources[i]`` lists the earlier outputs (0 = the input, j = layer j's output) that
    layer i receives concatenated after its predecessor's output (the "+j" skips).
    """

    def __init__(
        self,
        layers: list[nn.Module],
        names: list[str],
        sources: list[tuple[int, ...]],
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        options: dict[str, Any],
        sequence: bool = False,
        sequence_length: int | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.names = tuple(names)
        self.sources = tuple(tuple(s) for s in sources)
        # Per sample; for a sequence (B, T, *F), with T at its fixed length, or 1 (an example
        # length) when any length is accepted: ``sequence_length`` None.
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.sequence = sequence
        self.sequence_length = sequence_length
        self.options = dict(options)  # spec (canonical), act, loss, output_act, init, task
        self.loss: str = options["loss"]
        self.task: str | None = options.get("task")  # classification | regression | None (by the loss)
        self._kept = {j for s in self.sources for j in s}

    def forward(self, x: Tensor) -> Tensor:
        """x (N, *input_shape) -> s^L (N, *output_shape), the output layer's activations."""
        return self._run(x, logits=False)

    def logits(self, x: Tensor) -> Tensor:
        """z^L (N, *output_shape): the pre-activation of the output layer (its input, when the
        last layer is a standalone activation); equal to ``forward`` for a linear output."""
        return self._run(x, logits=True)

    def training_module(self, from_logits: bool) -> nn.Module:
        """The module training runs (and DDP, ``torch.compile`` or AMP wrap): it shares this
        network's parameters and returns what the loss needs, z^L (``from_logits``, the
        cross-entropies) or s^L (squared errors on the slides' sigmoid/tanh outputs)."""
        return TrainingForward(self, from_logits)

    def _run(self, x: Tensor, logits: bool) -> Tensor:
        """The forward pass; with ``logits`` the last layer stops before its activation
        (``pre_activation`` of a Dense/Conv/Residual, the input of a standalone activation)."""
        x = self._check_input(x)
        kept = {0: x} if 0 in self._kept else {}
        last = len(self.layers)
        for index, layer in enumerate(self.layers, start=1):
            sources = self.sources[index - 1]
            if sources:
                x = concat_inputs([x, *(kept[j] for j in sources)], flatten=isinstance(layer, (Dense, Maxout)))
            if logits and index == last:
                if isinstance(layer, Activation):
                    return x
                if isinstance(layer, ActivatedLayer):
                    return layer.pre_activation(x)
            x = layer(x)
            if index in self._kept:
                kept[index] = x
        return x

    @torch.no_grad()
    def predict_proba(self, x: Tensor) -> Tensor:
        """The slides' outputs s^L (N, *output_shape) (softmax probabilities, sigmoid outputs,
        or the identity); eval mode, no gradients, ``x`` moved to the weights' device and dtype."""
        x = self._to_parameters(x)
        with eval_mode(self):
            return self(x)

    def decision(self) -> str:
        """How ``predict`` turns s^L into predictions: ``argmax``, ``threshold`` (s > 1/2) or
        ``identity`` (the outputs themselves).

        The loss's rule (``LOSSES[loss].decision``) unless ``task`` says otherwise: a
        classifier (trained on class labels) with K > 1 outputs decides by argmax whatever its
        loss (a squared-error net on the slides' codes, a sigmoid net trained on one-hot rows),
        as the trainer's accuracy does; a regression net returns its outputs.
        """
        width = self.output_shape[0] if len(self.output_shape) == 1 else None
        if self.task == "regression":
            return "identity"
        if self.task == "classification" and width is not None and width > 1:
            return "argmax"
        return LOSSES[self.loss].decision

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Class indices (N,) for a classifier (argmax; s > 1/2 for one sigmoid output), 0/1
        labels (N, k) for a multi-label sigmoid net, outputs (N, *output_shape) for regression
        (see :meth:`decision`); eval mode, no gradients. ``x`` is moved to the weights' device
        and dtype; the result stays there."""
        out = self.predict_proba(x)  # (N, *output_shape)
        rule = self.decision()
        if rule == "argmax":
            return out.argmax(dim=1)  # (N,)
        if rule == "threshold":
            labels = (out > 0.5).long()
            return labels[:, 0] if out.shape[1:] == (1,) else labels  # (N,) or (N, k) multi-label
        return out

    def _to_parameters(self, x: Tensor) -> Tensor:
        """``x`` (a tensor or array, any dtype) on the device and in the float dtype of the
        weights, so ``predict``/``hidden`` take CPU data for a CUDA or float64 model."""
        weight = next(self.parameters(), None)
        x = torch.as_tensor(x)
        if weight is None:
            return x if x.is_floating_point() else x.float()
        return x.to(device=weight.device, dtype=weight.dtype)

    def _check_input(self, x: Tensor) -> Tensor:
        if self.sequence:
            return self._check_sequence(x)
        if tuple(x.shape[1:]) == self.input_shape:
            return x
        if len(self.input_shape) == 1 and x.dim() > 2 and math.prod(x.shape[1:]) == self.input_shape[0]:
            return x.flatten(1)  # (N, features): an image fed to an MLP
        raise SpecError(
            f"this network expects inputs of shape (N, {', '.join(map(str, self.input_shape))}) "
            f"({describe(self.input_shape)}), got {tuple(x.shape)}; check the spec's first token"
        )

    def _check_sequence(self, x: Tensor) -> Tensor:
        """x (N, T, *features): any T >= 1, or exactly the fixed length; SpecError otherwise."""
        step = self.input_shape[1:]
        length = self.sequence_length
        if x.dim() == 2 + len(step) and tuple(x.shape[2:]) == step and x.shape[1] == (length or max(1, x.shape[1])):
            return x
        time = f"T{length or ''}"
        steps = f"exactly {length} time steps" if length else "T >= 1 time steps"
        raise SpecError(
            f"this network expects sequences of shape (N, {', '.join([time, *map(str, step)])}) ({steps} of "
            f"{describe(step)}), got {tuple(x.shape)}; check the spec's first token ({describe(step, time)})"
        )

    # ---- names -------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Stable top-level names (``dense1``, ``conv2``, ``pool1``, ``res1``...), one per layer."""
        return list(self.names)

    def named_layers(self, nested: bool = False) -> Iterator[tuple[str, nn.Module]]:
        """(name, layer) for every top-level layer; with ``nested``, also the layers inside
        blocks (``res1.dense2``, ``res1.proj``), right after their block."""
        for name, layer in zip(self.names, self.layers):
            yield name, layer
            if nested:
                yield from _inner_layers(name, layer)

    def layer(self, name: str) -> nn.Module:
        """The layer called ``name`` (top-level like ``dense2`` or nested like ``res1.dense2``)."""
        for full, layer in self.named_layers(nested=True):
            if name in (full, full.rsplit(".", 1)[-1]):
                return layer
        names = ", ".join(full for full, _ in self.named_layers(nested=True))
        raise SpecError(f"no layer named '{name}'; this network has: {names}")

    def hidden(self, x: Tensor, layer: str) -> Tensor:
        """The activations (N, *) of the named layer for inputs x (its last application, for
        a layer inside ``repN``; (N, T, *) on sequences); eval mode, no gradients."""
        module = self.layer(layer)
        x = self._to_parameters(x)
        captured: list[Tensor] = []
        handle = module.register_forward_hook(lambda m, args, out: captured.append(out))
        try:
            with eval_mode(self), torch.no_grad():
                self(x)
        finally:
            handle.remove()
        if self.sequence and all(module is not top for top in self.layers):
            return captured[-1].unflatten(0, x.shape[:2])  # inside a per-step block: (N*T, *) -> (N, T, *)
        return captured[-1]

    def is_plain_mlp(self) -> bool:
        """True iff the network is a chain of Dense/Maxout (and Dropout) layers without skips:
        the explicit BackProp engine's fast path."""
        return not self._kept and all(isinstance(layer, (Dense, Maxout, Dropout)) for layer in self.layers)

    # ---- config ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able description; ``Network.from_config`` rebuilds the same module (weights aside)."""
        return {"model": MODEL_KIND, "format": CONFIG_FORMAT, **self.options}

    @classmethod
    def from_config(cls, config: dict[str, Any], seed: int | None = None) -> Network:
        """Rebuild the network ``config()`` describes (fresh weights, from ``seed`` if given);
        SpecError for anything that is not such a config. ``"model"`` (``"network"``) is
        absent from configs written before the model registry; both are read."""
        keys = {"model", "format", "spec", "act", "loss", "output_act", "init", "task"}  # older configs lack "task"
        if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT or "spec" not in config:
            raise SpecError(f"not a capas model config (format {CONFIG_FORMAT} with a 'spec'): {config!r:.200}")
        if set(config) - keys:
            raise SpecError(f"unknown keys {sorted(set(config) - keys)} in a model config; it takes {sorted(keys)}")
        if config.get("model", MODEL_KIND) != MODEL_KIND:
            raise SpecError(f"model.json describes a '{config['model']}' model, not a '{MODEL_KIND}'")
        options = {k: v for k, v in config.items() if k not in ("model", "format")}
        if isinstance(options["spec"], str) and _token_output_activation(parse(options["spec"])) is not None:
            options.pop("output_act", None)  # the last token decides (older model.json files recorded the loss's)
        return build(options.pop("spec"), seed=seed, **options)

    def extra_repr(self) -> str:
        return f"spec='{self.options['spec']}', loss={self.loss}"


class TrainingForward(nn.Module):
    """``Network.training_module``: forward = the network's logits z^L or outputs s^L."""

    def __init__(self, network: Network, from_logits: bool) -> None:
        super().__init__()
        self.network = network
        self.from_logits = from_logits

    def forward(self, x: Tensor) -> Tensor:
        """x (N, *input_shape) -> z^L or s^L (N, *output_shape)."""
        return self.network.logits(x) if self.from_logits else self.network(x)


def _inner_layers(prefix: str, module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Named layers inside a block: the children of its ``body``/branches and its projection
    (of the block itself when it runs per time step)."""
    if isinstance(module, PerStep):
        module = module.inner
    bodies = [getattr(module, "body", None), *getattr(module, "branches", ())]
    for body in bodies:
        for name, layer in body.named_children() if isinstance(body, nn.Sequential) else ():
            yield f"{prefix}.{name}", layer
            yield from _inner_layers(f"{prefix}.{name}", layer)
    if getattr(module, "projection", None) is not None:
        yield f"{prefix}.proj", module.projection


def build(
    spec: str | list | dict,
    *,
    act: str | None = None,
    loss: str | None = None,
    output_act: str | None = None,
    init: str | None = None,
    seed: int | None = None,
    task: str | None = None,
) -> Network:
    """Build a ``Network`` from a spec string, a list of tokens/layer tables, or a ``[model]``
    table (``{"spec": ...}`` or ``{"layers": [...]}`` plus any of the options below).

    ``act`` (default ``relu``) is every hidden layer's activation unless a token says
    otherwise; ``loss`` (default ``cross_entropy``) is any loss of ``capas.objectives.LOSSES``
    (or an alias) and the output activation is ``output_act`` or the one the loss implies
    (``cross_entropy`` -> softmax, ``binary_cross_entropy`` -> sigmoid, the squared, absolute
    and Huber errors -> linear). ``task`` (``classification`` | ``regression`` | None) says
    what the outputs are for, and so what ``predict`` returns; None leaves it to the loss
    (the cross-entropies classify, the others regress), so a squared-error classifier needs
    ``task="classification"`` (``capas.fit`` sets it from class-labelled data). ``init``
    overrides every layer's initialisation scheme. With ``seed``, the initial weights depend
    only on the seed (the global torch generator is left as it was).

    An activation on the last token (``64-30-10:tanh``) is the output activation: the
    config records it, and ``output_act`` may only repeat it. The cross-entropies are
    computed from the logits of a softmax (``cross_entropy``) or sigmoid
    (``binary_cross_entropy``) output, so another output activation with them is a
    SpecError rather than a network whose outputs are not what its loss assumed.
    """
    text, table_options = spec_text(spec)
    explicit = output_act if output_act is not None else table_options.get("output_act")
    options = _resolve_options(
        {"act": act, "loss": loss, "output_act": output_act, "init": init, "seed": seed, "task": task}, table_options
    )
    parsed = parse(text)
    options["output_act"] = _output_activation(parsed, options["loss"], options["output_act"], explicit)
    seed = options.pop("seed")
    with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        try:
            built = Builder(parsed, options["act"], options["output_act"], options["init"]).build()
        except (MemoryError, RuntimeError) as err:  # torch's CPU/CUDA allocators raise RuntimeError
            if not isinstance(err, MemoryError) and "alloc" not in str(err):
                raise
            raise SpecError(
                f"not enough memory for the weights of '{parsed.canonical()}'; use fewer or smaller layers "
                "('capas summary' counts the parameters without allocating them)"
            ) from None
    config = {"spec": parsed.canonical(), **options}
    if parsed.sequence:  # shapes per sample, the time axis at its fixed length or 1
        steps = (parsed.length or 1,)
        return Network(
            built.layers,
            built.names,
            built.sources,
            steps + parsed.input_shape,
            steps + built.output_shape if built.time_out else built.output_shape,
            config,
            sequence=True,
            sequence_length=parsed.length,
        )
    return Network(built.layers, built.names, built.sources, parsed.input_shape, built.output_shape, config)


def _token_output_activation(parsed: Any) -> str | None:
    """The activation written on the last token (``d10:tanh``), when that layer owns its
    activation (a dense, conv or residual layer); None otherwise."""
    last = parsed.layers[-1]
    return last.activation if KINDS[last.kind].output_slot else None


def _output_activation(parsed: Any, loss: str, resolved: str, explicit: str | None) -> str:
    """The output activation the network really has (what its config records): the last
    token's, else ``resolved`` (``output_act`` or the loss's); SpecError when the token and
    an explicit ``output_act`` disagree, or when a cross-entropy would get an output that is
    not the softmax/sigmoid it is computed for."""
    token = _token_output_activation(parsed)
    if (
        token is not None
        and explicit is not None
        and get_activation(token).config() != get_activation(explicit).config()
    ):
        raise SpecError(
            f"the last token sets the output activation to {token} but output_act is {explicit}; give it once"
        )
    chosen = token or resolved
    needed = LOSSES[loss].output_activation
    name = get_activation(chosen).name
    if LOSSES[loss].from_logits and name != needed:
        source = f"the last token's ':{token}'" if token is not None else f"output_act {chosen}"
        raise SpecError(
            f"loss {loss} is computed from the logits of a {needed} output, but {source} gives {name} outputs; "
            f"drop it (the loss sets {needed}) or use a squared-error loss (mse, mse_half_sum) for {name} outputs"
        )
    return chosen


def _resolve_options(given: dict[str, Any], from_table: dict[str, Any]) -> dict[str, Any]:
    """Merge keyword and ``[model]``-table options, fill defaults and check every value."""
    options = dict(given)
    for key, value in from_table.items():
        if options[key] is not None and options[key] != value:
            raise SpecError(
                f"'{key}' is given twice with different values: {value!r} in the model table, {options[key]!r}"
            )
        options[key] = value
    options["act"] = options["act"] or "relu"
    try:
        options["loss"] = canonical_loss(options["loss"] or "cross_entropy")
    except TrainingError as err:
        raise SpecError(str(err)) from None
    options["output_act"] = options["output_act"] or OUTPUT_FOR_LOSS[options["loss"]]
    if options["task"] is not None and options["task"] not in TASKS:
        raise SpecError(f"'task' must be one of {', '.join(TASKS)} (or omitted), got {options['task']!r}")
    if options["task"] == "regression" and not LOSSES[options["loss"]].regression_ok:
        raise SpecError(
            f"loss {options['loss']} needs class labels, not real-valued targets; for regression use mse, mae or huber"
        )
    for key in ("act", "output_act"):
        if not isinstance(options[key], str):
            raise SpecError(f"'{key}' must be an activation name like 'tanh', got {options[key]!r}")
        get_activation(options[key])  # SpecError now if unknown
    if options["init"] is not None:
        check_scheme(options["init"] if isinstance(options["init"], str) else repr(options["init"]))
    seed = options["seed"]
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise SpecError(f"'seed' must be a non-negative integer, got {seed!r}")
    return options


def build_from_toml(source: str | Path) -> Network:
    """Build the ``[model]`` table of a TOML recipe (a path, or the TOML text itself)."""
    return build(read_model_table(source))


def read_model_table(source: str | Path) -> dict[str, Any]:
    """The ``[model]`` table of a TOML recipe (a path, or the TOML text itself); SpecError
    if the file is missing, is not TOML or has no such table."""
    import tomllib

    text, name = str(source), "the recipe"
    if isinstance(source, Path) or text.endswith(".toml"):
        name = f"the recipe {source}"
        try:
            text = Path(source).read_text()
        except OSError as err:
            raise SpecError(f"cannot read {name}: {err.strerror}") from None
    try:
        recipe = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{name} is not valid TOML: {err}") from None
    if not isinstance(recipe.get("model"), dict):
        raise SpecError(f'{name} has no [model] table; add [model] with spec = "784-30-10" or [[model.layers]]')
    return recipe["model"]
