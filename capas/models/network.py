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

from capas.errors import SpecError
from capas.layers import Activation, Dense, Dropout, Maxout, get_activation
from capas.layers.init import check_scheme
from capas.layers.blocks import concat_inputs
from capas.layers.dense import ActivatedLayer
from capas.models.builder import Builder, describe
from capas.models.modes import eval_mode
from capas.models.spec_input import spec_text
from capas.notation import parse

OUTPUT_FOR_LOSS = {
    "cross_entropy": "softmax",
    "binary_cross_entropy": "sigmoid",
    "mse": "linear",
}
CONFIG_FORMAT = 1


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
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.names = tuple(names)
        self.sources = tuple(tuple(s) for s in sources)
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.options = dict(options)  # spec (canonical), act, loss, output_act, init
        self.loss: str = options["loss"]
        self._kept = {j for s in self.sources for j in s}

    def forward(self, x: Tensor) -> Tensor:
        """x (N, *input_shape) -> s^L (N, *output_shape), the output layer's activations."""
        return self._run(x, logits=False)

    def logits(self, x: Tensor) -> Tensor:
        """z^L (N, *output_shape): the pre-activation of the output layer (its input, when the
        last layer is a standalone activation); equal to ``forward`` for a linear output."""
        return self._run(x, logits=True)

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
    def predict(self, x: Tensor) -> Tensor:
        """Class indices (N,) for classification, outputs (N, *output_shape) for regression;
        in eval mode (dropout off, running batch-norm statistics), without gradients. ``x``
        is moved to the weights' device and dtype; the result stays there."""
        x = self._to_parameters(x)
        with eval_mode(self):
            out = self(x)  # (N, *output_shape)
        if self.loss == "cross_entropy":
            return out.argmax(dim=1)  # (N,)
        if self.loss == "binary_cross_entropy":
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
        if tuple(x.shape[1:]) == self.input_shape:
            return x
        if len(self.input_shape) == 1 and x.dim() > 2 and math.prod(x.shape[1:]) == self.input_shape[0]:
            return x.flatten(1)  # (N, features): an image fed to an MLP
        raise SpecError(
            f"this network expects inputs of shape (N, {', '.join(map(str, self.input_shape))}) "
            f"({describe(self.input_shape)}), got {tuple(x.shape)}; check the spec's first token"
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
        a layer inside ``repN``); eval mode, no gradients."""
        module = self.layer(layer)
        x = self._to_parameters(x)
        captured: list[Tensor] = []
        handle = module.register_forward_hook(lambda m, args, out: captured.append(out))
        try:
            with eval_mode(self), torch.no_grad():
                self(x)
        finally:
            handle.remove()
        return captured[-1]

    def is_plain_mlp(self) -> bool:
        """True iff the network is a chain of Dense/Maxout (and Dropout) layers without skips:
        the explicit BackProp engine's fast path."""
        return not self._kept and all(isinstance(layer, (Dense, Maxout, Dropout)) for layer in self.layers)

    # ---- config ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able description; ``Network.from_config`` rebuilds the same module (weights aside)."""
        return {"format": CONFIG_FORMAT, **self.options}

    @classmethod
    def from_config(cls, config: dict[str, Any], seed: int | None = None) -> Network:
        """Rebuild the network ``config()`` describes (fresh weights, from ``seed`` if given);
        SpecError for anything that is not such a config."""
        keys = {"format", "spec", "act", "loss", "output_act", "init"}
        if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT or "spec" not in config:
            raise SpecError(f"not a capas model config (format {CONFIG_FORMAT} with a 'spec'): {config!r:.200}")
        if set(config) - keys:
            raise SpecError(f"unknown keys {sorted(set(config) - keys)} in a model config; it takes {sorted(keys)}")
        options = {k: v for k, v in config.items() if k != "format"}
        return build(options.pop("spec"), seed=seed, **options)

    def extra_repr(self) -> str:
        return f"spec='{self.options['spec']}', loss={self.loss}"


def _inner_layers(prefix: str, module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Named layers inside a block: the children of its ``body``/branches and its projection."""
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
) -> Network:
    """Build a ``Network`` from a spec string, a list of tokens/layer tables, or a ``[model]``
    table (``{"spec": ...}`` or ``{"layers": [...]}`` plus any of the options below).

    ``act`` (default ``relu``) is every hidden layer's activation unless a token says
    otherwise; the output activation is ``output_act`` or the one ``loss`` implies
    (``cross_entropy`` -> softmax, ``binary_cross_entropy`` -> sigmoid, ``mse`` -> linear).
    ``init`` overrides every layer's initialisation scheme. With ``seed``, the initial
    weights depend only on the seed (the global torch generator is left as it was).
    """
    text, table_options = spec_text(spec)
    options = _resolve_options({"act": act, "loss": loss, "output_act": output_act, "init": init, "seed": seed},
                               table_options)
    parsed = parse(text)
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
    return Network(built.layers, built.names, built.sources, parsed.input_shape, built.output_shape, config)


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
    options["loss"] = options["loss"] or "cross_entropy"
    if options["loss"] not in OUTPUT_FOR_LOSS:
        raise SpecError(f"unknown loss '{options['loss']}'; known losses: {', '.join(OUTPUT_FOR_LOSS)}")
    options["output_act"] = options["output_act"] or OUTPUT_FOR_LOSS[options["loss"]]
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
        raise SpecError(f"{name} has no [model] table; add [model] with spec = \"784-30-10\" or [[model.layers]]")
    return recipe["model"]
