"""Turn a parsed spec into modules, computing every layer's input shape on the way.

Shapes are computed with the course's output-length formula (``conv_output_length``) so
that a mismatch is reported before any tensor exists, naming both layers and shapes; the
summary then checks them against a real forward pass.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from torch import nn

from capas.errors import SpecError
from capas.layers import (
    BatchNorm,
    Conv,
    ConvMaxout,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    Maxout,
    Pool,
    SeparableConv,
    conv_output_length,
    get_activation,
)
from capas.layers.blocks import Concat, Repeat, Residual
from capas.notation import LayerSpec, Spec

Shape = tuple[int, ...]

NAME_PREFIX = {
    "dense": "dense",
    "maxout": "maxout",
    "conv": "conv",
    "separable_conv": "sepconv",
    "conv_maxout": "convmaxout",
    "max_pool": "pool",
    "avg_pool": "pool",
    "dropout": "drop",
    "batch_norm": "bn",
    "layer_norm": "ln",
    "flatten": "flat",
    "activation": "act",
    "residual": "res",
    "repeat": "rep",
    "concat": "cat",
}
_FLATTENING = {"dense", "maxout"}
_OUTPUT_SLOT = {"dense", "conv", "separable_conv", "residual", "activation"}  # can hold the output activation
_CONV_KINDS = {"conv", "separable_conv", "conv_maxout"}


def describe(shape: Shape) -> str:
    """'784 features', '6x28x28' — how shapes appear in messages."""
    return f"{shape[0]} features" if len(shape) == 1 else "x".join(map(str, shape))


@dataclass
class Built:
    """The top-level layers of a network with their names, skip sources and shapes."""

    layers: list[nn.Module]
    names: list[str]
    sources: list[tuple[int, ...]]
    output_shape: Shape


class Builder:
    """Builds the layers of one ``Spec``; ``act`` for hidden layers, ``output_act`` for the last."""

    def __init__(self, spec: Spec, act: str, output_act: str, init: str | None) -> None:
        self.spec, self.act, self.output_act, self.init = spec, act, output_act, init
        self.counts: Counter[str] = Counter()

    def build(self) -> Built:
        """Every top-level layer, named and shape-checked, plus a standalone output activation
        when the last layer has no slot for one (pooling, maxout, a ``cat`` or ``rep`` block)."""
        spec = self.spec
        outputs: list[tuple[str, Shape]] = [("the input", spec.input_shape)]
        built = Built([], [], [], spec.input_shape)
        for index, layer in enumerate(spec.layers):
            is_output = index == len(spec.layers) - 1
            shape = self._skip_input(layer, outputs)
            name, module, shape = self.layer(layer, shape, outputs[-1][0], is_output)
            built.layers.append(module)
            built.names.append(name)
            built.sources.append(layer.sources)
            outputs.append((f"{name} ({layer.token()})", shape))
        if spec.layers[-1].kind not in _OUTPUT_SLOT and get_activation(self.output_act).name != "linear":
            built.layers.append(get_activation(self.output_act))
            built.names.append(self._name("activation"))
            built.sources.append(())
        built.output_shape = outputs[-1][1]
        return built

    def _skip_input(self, layer: LayerSpec, outputs: list[tuple[str, Shape]]) -> Shape:
        """The input shape of ``layer``: the previous output, concatenated with its skips."""
        shapes = [outputs[-1]] + [outputs[i] for i in layer.sources]
        if len(shapes) == 1:
            return shapes[0][1]
        if layer.kind in _FLATTENING:
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
        prefix = NAME_PREFIX[kind]
        self.counts[prefix] += 1
        return f"{prefix}{self.counts[prefix]}"

    def sequence(self, layers: tuple[LayerSpec, ...], shape: Shape, before: str) -> tuple[nn.Sequential, Shape]:
        """A block body: named children, hidden activations throughout."""
        body = nn.Sequential()
        for layer in layers:
            name, module, shape = self.layer(layer, shape, before, is_output=False)
            body.add_module(name, module)
            before = f"{name} ({layer.token()})"
        return body, shape

    def layer(self, layer: LayerSpec, shape: Shape, before: str, is_output: bool) -> tuple[str, nn.Module, Shape]:
        """(name, module, output shape) for one layer whose input has ``shape``."""
        name = self._name(layer.kind)
        hidden = "linear" if layer.kind == "residual" else self.act  # a residual sum stays linear by default
        activation = layer.activation or (self.output_act if is_output else hidden)
        try:
            module, out = self._make(layer, shape, before, activation, name)
        except SpecError as err:
            if "\n" in str(err):  # already points at a token
                raise
            raise self.spec.error(layer, f"{name}: {err}") from None
        return name, module, out

    def _make(self, layer: LayerSpec, shape: Shape, before: str, activation: str, name: str) -> tuple[nn.Module, Shape]:
        kind, sizes = layer.kind, layer.sizes
        if kind == "dense":
            return Dense(math.prod(shape), sizes[0], activation, init=self.init), (sizes[0],)
        if kind == "maxout":
            pieces = sizes[1] if len(sizes) > 1 else 2
            return Maxout(math.prod(shape), sizes[0], pieces, init=self.init), (sizes[0],)
        if kind in _CONV_KINDS or kind in ("max_pool", "avg_pool"):
            return self._windowed(layer, shape, before, activation)
        if kind == "dropout":
            return Dropout(layer.rate), shape
        if kind == "batch_norm":
            return BatchNorm(shape[0]), shape
        if kind == "layer_norm":
            return LayerNorm(list(shape)), shape
        if kind == "flatten":
            return Flatten(), (math.prod(shape),)
        if kind == "activation":
            return get_activation(layer.activation), shape
        if kind == "residual":
            return self._residual(layer, shape, before, activation)
        if kind == "repeat":
            body, out = self.sequence(layer.branches[0], shape, before)
            if out != shape:
                raise SpecError(
                    f"rep{layer.times}(...) applies the same layers {layer.times} times, so they must keep the shape, "
                    f"but they map {describe(shape)} (from {before}) to {describe(out)}"
                )
            return Repeat(body, layer.times), shape
        return self._concat(layer, shape, before)

    def _windowed(self, layer: LayerSpec, shape: Shape, before: str, activation: str) -> tuple[nn.Module, Shape]:
        """Convolutions and pooling: sizes read per the input rank, output by the formula."""
        kind, sizes = layer.kind, layer.sizes
        if len(shape) == 1:
            hint = f"start the spec with e.g. 1x{shape[0]} for a 1-D signal" if before == "the input" else (
                "convolve and pool before the dense layers")
            raise SpecError(
                f"'{layer.token()}' needs a signal (CxL) or image (CxHxW) input, but {before} gives a vector "
                f"of {shape[0]} features; {hint}"
            )
        dims = len(shape) - 1
        spatial = shape[1:]
        if kind in ("max_pool", "avg_pool"):
            window = sizes * dims if len(sizes) == 1 else sizes
            extra = 0
        else:
            extra = 2 if kind == "conv_maxout" else 1
            window = sizes[:-extra]
        if len(window) != dims:
            want = {1: "K", 2: "KxK"}[dims]
            raise SpecError(
                f"'{layer.token()}' has a {len(window)}-D window but {before} gives {describe(shape)}, "
                f"a {dims}-D input: write the window as {want}"
            )
        stride = layer.stride or (1 if extra else None)
        dilation, padding = layer.dilation or 1, 0 if layer.padding is None else layer.padding
        out_spatial = tuple(
            conv_output_length(n, k, stride or k, dilation, padding) for n, k in zip(spatial, window)
        )
        if padding == "same" and stride > 1:
            raise SpecError(f"'{layer.token()}' needs stride 1 with :same padding; write the padding as :pN instead")
        if min(out_spatial) < 1:
            size = "x".join(map(str, window))
            if extra:
                size += f" (dilation {dilation}, padding {padding})"
            raise SpecError(
                f"'{layer.token()}' does not fit: window {size} is larger than the {describe(shape)} output of "
                f"{before}; use a smaller window{', padding (:same)' if extra else ''} or fewer reductions before it"
            )
        args = dict(kernel_size=window, stride=stride, dilation=dilation, padding=padding, dims=dims)
        if kind == "conv":
            module = Conv(shape[0], sizes[-1], activation=activation, init=self.init, **args)
        elif kind == "separable_conv":
            module = SeparableConv(shape[0], sizes[-1], activation=activation, init=self.init, **args)
        elif kind == "conv_maxout":
            module = ConvMaxout(shape[0], sizes[-2], pieces=sizes[-1], init=self.init, **args)
        else:
            module = Pool("max" if kind == "max_pool" else "avg", window, stride, dims)
        channels = shape[0] if kind in ("max_pool", "avg_pool") else sizes[-extra]
        return module, (channels, *out_spatial)

    def _residual(self, layer: LayerSpec, shape: Shape, before: str, activation: str) -> tuple[nn.Module, Shape]:
        """f(x) + x; a linear (vectors) or strided 1x1-conv (maps) projection if shapes differ."""
        body, out = self.sequence(layer.branches[0], shape, before)
        projection = None
        if out != shape:
            if len(out) != len(shape):
                raise SpecError(
                    f"res(...) turns {describe(shape)} (from {before}) into {describe(out)}, a different rank; "
                    "add 'flat' before the block or keep the rank inside it"
                )
            if len(shape) == 1:
                projection = Dense(shape[0], out[0], "linear", init=self.init)
            else:
                strides = [_stride_between(n, m) for n, m in zip(shape[1:], out[1:])]
                if None in strides:
                    raise SpecError(
                        f"res(...) turns {describe(shape)} (from {before}) into {describe(out)}; no strided 1x1 "
                        "projection maps one onto the other: use :same padding inside the block"
                    )
                projection = Conv(shape[0], out[0], 1, stride=strides, dims=len(shape) - 1, init=self.init)
        return Residual(body, projection, activation), out

    def _concat(self, layer: LayerSpec, shape: Shape, before: str) -> tuple[nn.Module, Shape]:
        branches, outs = [], []
        for branch in layer.branches:
            body, out = self.sequence(branch, shape, before)
            branches.append(body)
            outs.append(out)
        if any(len(out) != len(outs[0]) or out[1:] != outs[0][1:] for out in outs):
            shapes = ", ".join(describe(out) for out in outs)
            raise SpecError(
                f"cat(...) branches give {shapes}; to concatenate, all but the first (channel) size must agree "
                "(use :same padding, or matching strides)"
            )
        return Concat(branches), (sum(out[0] for out in outs), *outs[0][1:])


def _stride_between(n_in: int, n_out: int) -> int | None:
    """The stride s with floor((n_in - 1) / s) + 1 == n_out, if any (a 1x1 convolution)."""
    for stride in range(1, n_in + 1):
        if (n_in - 1) // stride + 1 == n_out:
            return stride
    return None
