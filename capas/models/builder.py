"""Turn a parsed spec into modules, computing every layer's input shape on the way.

Each token is built by its kind's record (``capas.layers.kinds.KINDS``): the builder only
names layers, resolves activations, wires skips and blocks, and checks shapes. Shapes are
computed with the course's output-length formula (``conv_output_length``) so that a
mismatch is reported before any tensor exists, naming both layers and shapes; the summary
then checks them against a real forward pass.

On a sequence input (``Tx28``) every layer is built for the shape of one time step and
wrapped in ``PerStep``, which runs it at each step: (B, T, *F) -> (B, T, *F'), except the
layers that read time themselves (``reads_time``: the recurrent kinds); after a many-to-one
``last`` (``ends_time``) layers see one vector per sequence again. Skips are refused on
sequences (they would concatenate along time).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from torch import nn

from capas.errors import SpecError
from capas.layers import get_activation
from capas.layers.kinds import KINDS, BuildContext, Shape, describe
from capas.layers.recurrent_kinds import check_not_in_block
from capas.layers.sequence import per_step
from capas.notation import LayerSpec, Spec


@dataclass
class Built:
    """The top-level layers of a network with their names, skip sources and shapes
    (``output_shape`` per sample; per time step for a sequence input)."""

    layers: list[nn.Module]
    names: list[str]
    sources: list[tuple[int, ...]]
    output_shape: Shape
    time_out: bool = False  # the output still has a time axis (no many-to-one ``last`` token)


class Builder:
    """Builds the layers of one ``Spec``; ``act`` for hidden layers, ``output_act`` for the last."""

    def __init__(self, spec: Spec, act: str, output_act: str, init: str | None) -> None:
        self.spec, self.act, self.output_act, self.init = spec, act, output_act, init
        self.counts: Counter[str] = Counter()
        self.time = spec.time  # the time axis while layers still see one ('last' ends it)

    def build(self) -> Built:
        """Every top-level layer, named and shape-checked, plus a standalone output activation
        when the last layer has no slot for one (pooling, maxout, a ``cat`` or ``rep`` block)."""
        spec = self.spec
        outputs: list[tuple[str, Shape]] = [("the input", spec.input_shape)]
        built = Built([], [], [], spec.input_shape)
        for index, layer in enumerate(spec.layers):
            is_output = index == len(spec.layers) - 1
            shape = self._skip_input(layer, outputs)
            per_step_layer = self.time is not None
            name, module, shape = self.layer(layer, shape, outputs[-1][0], is_output)
            reads_time = getattr(module, "reads_time", False)  # recurrent layers consume the time axis
            built.layers.append(per_step(module) if per_step_layer and not reads_time else module)
            if getattr(module, "ends_time", False):
                self.time = None
            built.names.append(name)
            built.sources.append(layer.sources)
            outputs.append((f"{name} ({layer.token()})", shape))
        if not KINDS[spec.layers[-1].kind].output_slot and get_activation(self.output_act).name != "linear":
            activation = get_activation(self.output_act)
            built.layers.append(per_step(activation) if self.time is not None else activation)
            built.names.append(self._name("activation"))
            built.sources.append(())
        built.output_shape = outputs[-1][1]
        built.time_out = self.time is not None
        return built

    def _skip_input(self, layer: LayerSpec, outputs: list[tuple[str, Shape]]) -> Shape:
        """The input shape of ``layer``: the previous output, concatenated with its skips."""
        shapes = [outputs[-1]] + [outputs[i] for i in layer.sources]
        if len(shapes) == 1:
            return shapes[0][1]
        if self.spec.sequence:
            raise self.spec.error(
                layer, f"skips '+i' are not supported on a sequence input ({self.spec.time}x...) yet; remove them"
            )
        if KINDS[layer.kind].flattens:
            return (sum(math.prod(shape) for _, shape in shapes),)
        first_name, first = shapes[0]
        for other_name, other in shapes[1:]:
            if other[1:] != first[1:]:
                raise self.spec.error(
                    layer,
                    f"cannot concatenate {first_name} ({describe(first)}) with {other_name} ({describe(other)}): "
                    "only the first (channel) size may differ; skip into a dense layer, or pad/pool to match",
                )
        return (sum(shape[0] for _, shape in shapes), *first[1:])

    def _name(self, kind: str) -> str:
        prefix = KINDS[kind].prefix
        self.counts[prefix] += 1
        return f"{prefix}{self.counts[prefix]}"

    def body(self, layers: tuple[LayerSpec, ...], shape: Shape, before: str) -> tuple[nn.Sequential, Shape]:
        """A block body: named children, hidden activations throughout."""
        body = nn.Sequential()
        for layer in layers:
            name, module, shape = self.layer(layer, shape, before, is_output=False)
            check_not_in_block(module, f"{name} ({layer.token()})")
            body.add_module(name, module)
            before = f"{name} ({layer.token()})"
        return body, shape

    def layer(self, layer: LayerSpec, shape: Shape, before: str, is_output: bool) -> tuple[str, nn.Module, Shape]:
        """(name, module, output shape) for one layer whose input has ``shape``."""
        kind = KINDS[layer.kind]
        name = self._name(layer.kind)
        hidden = kind.hidden_activation or self.act  # a residual sum stays linear by default
        activation = layer.activation or (self.output_act if is_output else hidden)
        context = BuildContext(activation, before, self.init, self.time, self.body)
        try:
            module, out = kind.build(layer, shape, context)
        except SpecError as err:
            if "\n" in str(err):  # already points at a token
                raise
            raise self.spec.error(layer, f"{name}: {err}") from None
        return name, module, out
