"""The layer-kind registry: one :class:`LayerKind` record per kind of layer.

Everything capas knows about a kind lives in its record: how its token is written
(``d30``, ``c5x5x6``, ``bn``, ``drop0.5``, ``res(...)``), the ``:option`` keys it accepts,
its layer-name prefix (``dense1``, ``pool2``), whether it flattens its input, whether it
can hold the network's output activation, its list/TOML table form, and how to build its
module from a parsed token and an input shape. The notation parser
(``capas.notation``), the list/TOML forms (``capas.models.spec_input``), the builder and
``Network.layer_names()`` all read :data:`KINDS`, so adding a kind (a recurrent ``elman``
or ``lstm`` next) is one :func:`register_kind` call in one file.

Shapes here are per sample, without the batch axis: ``(features,)``, ``(C, L)`` or
``(C, H, W)``. On a sequence input (``Tx28``) the builder passes each kind the shape of
one time step and runs its module at every step (``capas.layers.sequence.PerStep``);
``BuildContext.time`` then names the time axis for messages.

This module reads a parsed token (``capas.notation.LayerSpec``) only through its
attributes (``sizes``, ``stride``, ``activation``, ``branches``...): ``layers`` sits
below ``notation`` and imports nothing above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from capas.errors import SpecError
from capas.layers.activations import get_activation
from capas.layers.blocks import Concat, Repeat, Residual
from capas.layers.conv import (
    Conv,
    ConvMaxout,
    DepthwiseConv,
    GlobalAvgPool,
    Pool,
    SeparableConv,
    conv_output_length,
)
from capas.layers.dense import Dense, Maxout, SharedDense
from capas.layers.lenet import PartialConv, RBFOutput, Subsampling
from capas.layers.local import LocallyConnected
from capas.layers.norm import BatchNorm, Dropout, Flatten, LayerNorm

Shape = tuple[int, ...]
FORMS = ("sizes", "bare", "rate", "activation", "block")


def describe(shape: Shape, time: str | None = None) -> str:
    """'784 features', '6x28x28', 'Tx28' (one step of 28 features of a sequence) — how
    shapes appear in messages; ``time`` is the time axis' text ('T', 'T50') on sequences."""
    if time:
        return "x".join([time, *map(str, shape)])
    return f"{shape[0]} features" if len(shape) == 1 else "x".join(map(str, shape))


def format_rate(rate: float) -> str:
    """A dropout rate as plain decimals ('0.00001', never '1e-05', which has a dash)."""
    return f"{rate:.12f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class BuildContext:
    """What a kind's ``build`` needs beyond its token and input shape.

    ``activation``: the layer's activation, resolved (its ``:act`` option, the output
    activation for the last layer, else the hidden one); ``before``: what feeds the layer,
    for messages ('the input', 'dense1 (d30)'); ``init``: the initialisation override;
    ``time``: the time axis' text ('T', 'T50') when the network reads sequences (shapes are
    then per step), else None; ``body(layers, shape, before) -> (nn.Sequential, shape)``:
    builds a block's inner layers through the builder (named, shape-checked).
    """

    activation: str
    before: str
    init: str | None
    time: str | None
    body: Callable[[Sequence[Any], Shape, str], tuple[nn.Sequential, Shape]]

    def describe(self, shape: Shape) -> str:
        return describe(shape, self.time)


Build = Callable[[Any, Shape, BuildContext], tuple[nn.Module, Shape]]
TableHead = Callable[[dict[str, Any], int, Callable[[Any], str]], str]


@dataclass(frozen=True)
class LayerKind:
    """One kind of layer; see the module docstring.

    ``form`` says how its token reads: ``sizes`` (``token`` then ``counts`` "x"-separated
    integers: ``d30``, ``c5x5x6``), ``bare`` (exactly ``token``: ``bn``), ``rate``
    (``token`` then a probability: ``drop0.5``), ``activation`` (an activation name) or
    ``block`` (``token(...)``, ``token`` + a count when ``counts`` is (1,): ``rep3(...)``;
    ``branches``: several ','-separated branches, as ``cat``). ``syntax`` is the hint shown
    for badly written sizes, ``usage`` the kind's entry in the list of known layers.
    ``options``: the ``:option`` keys it accepts (``stride``, ``dilation``, ``padding``,
    ``activation``). ``prefix``: the layer-name prefix. ``flattens``: it reads its input
    as one vector (skips into it are flattened). ``output_slot``: it owns an activation that
    can be the network's output activation (otherwise a standalone one is appended).
    ``hidden_activation``: its activation when none is given and it is not the output
    layer (None: the network's ``act``). ``table_keys``/``table_required``/``table_head``:
    its list/TOML table form (``{type = "dense", units = 30}``) and how a table becomes its
    token (``table_head(table, dims, entry)``; ``dims`` is the input's spatial rank and
    ``entry`` turns a nested layer into its token). ``build(layer, shape, context)``
    returns its module and output shape for an input of ``shape`` (SpecError if it does not
    fit).
    """

    name: str
    token: str
    build: Build
    table_head: TableHead
    prefix: str
    form: str = "sizes"
    counts: tuple[int, ...] = ()
    options: frozenset[str] = frozenset()
    flattens: bool = False
    output_slot: bool = False
    hidden_activation: str | None = None
    branches: bool = False
    syntax: str = ""
    usage: str = ""
    table_keys: frozenset[str] = field(default_factory=frozenset)
    table_required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise SpecError(f"layer kind '{self.name}': form must be one of {', '.join(FORMS)}, got '{self.form}'")


KINDS: dict[str, LayerKind] = {}


def register_kind(kind: LayerKind) -> LayerKind:
    """Add ``kind`` to :data:`KINDS`; SpecError if its name, token or name prefix is taken."""
    for other in KINDS.values():
        if kind.name == other.name or (kind.token and kind.token == other.token):
            raise SpecError(f"layer kind '{kind.name}': its name or token '{kind.token}' is taken by '{other.name}'")
    KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> LayerKind:
    """Remove and return the kind called ``name`` (KeyError if there is none)."""
    return KINDS.pop(name)


def get_kind(name: str) -> LayerKind:
    """The record of kind ``name``; SpecError naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise SpecError(f"unknown layer kind '{name}'; known kinds: {', '.join(KINDS)}") from None


# ---- list/TOML table forms ------------------------------------------------------------


def table_ints(value: Any, key: str) -> list[int]:
    """``value`` (an int or a list of them, each >= 0, no bools) as a list; SpecError otherwise."""
    values = [value] if isinstance(value, int) else value
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise SpecError(f"'{key}' must be a non-negative integer or a list of them, got {value!r}")
    return values


def _units_head(token: str) -> TableHead:
    def head(table: dict[str, Any], dims: int, entry: Callable[[Any], str]) -> str:
        sizes = [table["units"]] + ([table["pieces"]] if "pieces" in table else [])
        return token + "x".join(map(str, sizes))

    return head


def _window_head(token: str, pool: bool) -> TableHead:
    """Convolutions and pooling: a one-integer kernel K means KxK on an image input."""

    def head(table: dict[str, Any], dims: int, entry: Callable[[Any], str]) -> str:
        key = "kernel" if "kernel" in table else "size"
        window = table_ints(table.get("kernel", table.get("size")), key)
        window = window * max(dims, 1) if len(window) == 1 and not pool else window
        counts = [table["filters"]] if "filters" in table else []
        counts += [table["pieces"]] if token == "cmx" else []
        return token + "x".join(str(n) for n in [*window, *counts])

    return head


def _fixed_head(text: str) -> TableHead:
    return lambda table, dims, entry: text


def _body_head(table: dict[str, Any], dims: int, entry: Callable[[Any], str], kind: str) -> str:
    layers = table.get("layers")
    if not isinstance(layers, list):
        raise SpecError(f"a {kind} table needs layers = [...] (a list of layers)")
    name = "res" if kind == "residual" else f"rep{table.get('times')}"
    return f"{name}(" + " ".join(entry(item) for item in layers) + ")"


def _concat_head(table: dict[str, Any], dims: int, entry: Callable[[Any], str]) -> str:
    branches = table.get("branches")
    if not isinstance(branches, list) or not all(isinstance(b, list) for b in branches):
        raise SpecError("a concat table needs branches = [[layers...], [layers...]]")
    return "cat(" + ", ".join(" ".join(entry(item) for item in branch) for branch in branches) + ")"


# ---- builds ---------------------------------------------------------------------------


def _build_dense(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    units = layer.sizes[0]
    if getattr(layer, "share", None):  # d300:share150 (partial weight sharing, capas.layers.dense.SharedDense)
        return SharedDense(math.prod(shape), units, layer.share, context.activation, init=context.init), (units,)
    return Dense(math.prod(shape), units, context.activation, init=context.init), (units,)


def _dense_head(table: dict[str, Any], dims: int, entry: Callable[[Any], str]) -> str:
    """``{type = "dense", units = 300, share = 150}`` -> ``d300:share150``."""
    share = table.get("share")
    if share is not None and (not isinstance(share, int) or isinstance(share, bool)):
        raise SpecError(f"'share' must be an integer number of units, got {share!r}")
    return _units_head("d")(table, dims, entry) + (f":share{share}" if share is not None else "")


def _build_maxout(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    sizes = layer.sizes
    pieces = sizes[1] if len(sizes) > 1 else 2
    return Maxout(math.prod(shape), sizes[0], pieces, init=context.init), (sizes[0],)


#: windowed kinds read like pooling: one size K means KxK on an image, no filter count
_POOL_LIKE = frozenset({"max_pool", "avg_pool", "subsampling"})


def _window_and_extra(layer: Any, dims: int) -> tuple[tuple[int, ...], int]:
    """(window, number of trailing counts) of a windowed token on a ``dims``-D input."""
    kind, sizes = layer.kind, layer.sizes
    if kind in _POOL_LIKE:
        return (sizes * dims if len(sizes) == 1 else sizes), 0
    if kind == "depthwise_conv":  # dwK / dwKxK, or with a trailing depth multiplier
        extra = len(sizes) - dims if len(sizes) in (dims, dims + 1) else 1
        return sizes[: len(sizes) - extra], extra
    extra = 2 if kind == "conv_maxout" else 1
    return sizes[:-extra], extra


def _strides(layer: Any, window: tuple[int, ...], dims: int, pool: bool) -> tuple[int, ...]:
    """The per-axis stride: ``:s2`` on every axis, ``:s2x1`` per axis; default 1 (pooling: the window)."""
    stride = layer.stride
    if stride is None:
        return window if pool else (1,) * dims
    strides = stride if isinstance(stride, tuple) else (stride,) * dims
    if len(strides) != dims:
        raise SpecError(
            f"'{layer.token()}' has {len(strides)} strides for a {dims}-D input; write :sN or one per axis, "
            f"e.g. :s{'x'.join(['2'] * dims)}"
        )
    return strides


def _build_windowed(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    """Convolutions and pooling: sizes read per the input rank, output by the formula."""
    kind, sizes, before = layer.kind, layer.sizes, context.before
    pool = kind in _POOL_LIKE
    if len(shape) == 1:
        if context.time:
            hint = f"write the input as {context.time}x1x{shape[0]} for a 1-D signal at every step"
        elif before == "the input":
            hint = f"start the spec with e.g. 1x{shape[0]} for a 1-D signal"
        else:
            hint = "convolve and pool before the dense layers"
        raise SpecError(
            f"'{layer.token()}' needs a signal (CxL) or image (CxHxW) input, but {before} gives a vector "
            f"of {shape[0]} features; {hint}"
        )
    dims = len(shape) - 1
    spatial = shape[1:]
    window, extra = _window_and_extra(layer, dims)
    if len(window) != dims:
        want = {1: "K", 2: "KxK"}[dims]
        raise SpecError(
            f"'{layer.token()}' has a {len(window)}-D window but {before} gives {context.describe(shape)}, "
            f"a {dims}-D input: write the window as {want}"
        )
    strides = _strides(layer, window, dims, pool)
    dilation, padding = layer.dilation or 1, 0 if layer.padding is None else layer.padding
    out_spatial = tuple(conv_output_length(n, k, s, dilation, padding) for n, k, s in zip(spatial, window, strides))
    if padding == "same" and max(strides) > 1:
        raise SpecError(f"'{layer.token()}' needs stride 1 with :same padding; write the padding as :pN instead")
    if min(out_spatial) < 1:
        size = "x".join(map(str, window))
        if not pool:
            size += f" (dilation {dilation}, padding {padding})"
        raise SpecError(
            f"'{layer.token()}' does not fit: window {size} is larger than the {context.describe(shape)} output of "
            f"{before}; use a smaller window{', padding (:same)' if not pool else ''} or fewer reductions before it"
        )
    act, init = context.activation, context.init
    args = {"kernel_size": window, "stride": strides, "dilation": dilation, "padding": padding, "dims": dims}
    channels = shape[0] if pool else sizes[-extra] if extra else shape[0]
    if kind == "conv":
        module = Conv(shape[0], sizes[-1], activation=act, init=init, **args)
    elif kind == "separable_conv":
        module = SeparableConv(shape[0], sizes[-1], activation=act, init=init, **args)
    elif kind == "conv_maxout":
        module = ConvMaxout(shape[0], sizes[-2], pieces=sizes[-1], init=init, **args)
        channels = sizes[-2]
    elif kind == "depthwise_conv":
        multiplier = sizes[-1] if extra else 1
        module = DepthwiseConv(shape[0], depth_multiplier=multiplier, activation=act, init=init, **args)
        channels = shape[0] * multiplier
    elif kind == "local":
        module = LocallyConnected(shape[0], sizes[-1], spatial, window, strides, act, dims, init)
    elif kind == "partial_conv":
        module = PartialConv(shape[0], sizes[-1], window, None, strides, padding, act, dims, init)
    elif kind == "subsampling":
        module = Subsampling(shape[0], window, act, dims)
    else:
        module = Pool("max" if kind == "max_pool" else "avg", window, strides, dims)
    return module, (channels, *out_spatial)


def _build_global_pool(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    if len(shape) == 1:
        raise SpecError(
            f"'gap' averages each map of a CxL or CxHxW input, but {context.before} gives a vector of "
            f"{shape[0]} features; put it after a convolution"
        )
    return GlobalAvgPool(len(shape) - 1), (shape[0],)


def _build_rbf(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    units = layer.sizes[0]
    return RBFOutput(math.prod(shape), units), (units,)


def _depthwise_head(table: dict[str, Any], dims: int, entry: Callable[[Any], str]) -> str:
    window = table_ints(table["kernel"], "kernel")
    window = window * max(dims, 1) if len(window) == 1 else window
    multiplier = [table_ints(table["multiplier"], "multiplier")[0]] if "multiplier" in table else []
    return "dw" + "x".join(str(n) for n in [*window, *multiplier])


def _stride_between(n_in: int, n_out: int) -> int | None:
    """The stride s with floor((n_in - 1) / s) + 1 == n_out, if any (a 1x1 convolution)."""
    for stride in range(1, n_in + 1):
        if (n_in - 1) // stride + 1 == n_out:
            return stride
    return None


def _build_residual(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    """f(x) + x; a linear (vectors) or strided 1x1-conv (maps) projection if shapes differ."""
    before, show = context.before, context.describe
    body, out = context.body(layer.branches[0], shape, before)
    projection = None
    if out != shape:
        if len(out) != len(shape):
            raise SpecError(
                f"res(...) turns {show(shape)} (from {before}) into {show(out)}, a different rank; "
                "add 'flat' before the block or keep the rank inside it"
            )
        if len(shape) == 1:
            projection = Dense(shape[0], out[0], "linear", init=context.init)
        else:
            strides = [_stride_between(n, m) for n, m in zip(shape[1:], out[1:])]
            if None in strides:
                raise SpecError(
                    f"res(...) turns {show(shape)} (from {before}) into {show(out)}; no strided 1x1 "
                    "projection maps one onto the other: use :same padding inside the block"
                )
            projection = Conv(shape[0], out[0], 1, stride=strides, dims=len(shape) - 1, init=context.init)
    return Residual(body, projection, context.activation), out


def _build_repeat(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    body, out = context.body(layer.branches[0], shape, context.before)
    if out != shape:
        raise SpecError(
            f"rep{layer.times}(...) applies the same layers {layer.times} times, so they must keep the shape, "
            f"but they map {context.describe(shape)} (from {context.before}) to {context.describe(out)}"
        )
    return Repeat(body, layer.times), shape


def _build_concat(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    branches, outs = [], []
    for branch in layer.branches:
        body, out = context.body(branch, shape, context.before)
        branches.append(body)
        outs.append(out)
    if any(len(out) != len(outs[0]) or out[1:] != outs[0][1:] for out in outs):
        shapes = ", ".join(context.describe(out) for out in outs)
        raise SpecError(
            f"cat(...) branches give {shapes}; to concatenate, all but the first (channel) size must agree "
            "(use :same padding, or matching strides)"
        )
    return Concat(branches), (sum(out[0] for out in outs), *outs[0][1:])


# ---- the kinds, in the order the notation lists them ---------------------------------------

_WINDOW = frozenset({"stride", "dilation", "padding"})
_ACT = frozenset({"activation"})
_CONV_KEYS = frozenset({"kernel", "filters", "stride", "dilation", "padding", "act"})

for _kind in (
    LayerKind(
        "dense",
        "d",
        _build_dense,
        _dense_head,
        "dense",
        counts=(1,),
        options=_ACT | {"share"},
        flattens=True,
        output_slot=True,
        syntax="write dN with N >= 1 units, e.g. d30",
        usage="dN",
        table_keys=frozenset({"units", "act", "share"}),
        table_required=("units",),
    ),
    LayerKind(
        "maxout",
        "mx",
        _build_maxout,
        _units_head("mx"),
        "maxout",
        counts=(1, 2),
        flattens=True,
        syntax="write mxN (N units, 2 pieces) or mxNxK (K pieces), e.g. mx30x3",
        usage="mxNxK",
        table_keys=frozenset({"units", "pieces"}),
        table_required=("units",),
    ),
    LayerKind(
        "conv",
        "c",
        _build_windowed,
        _window_head("c", pool=False),
        "conv",
        counts=(2, 3),
        options=_WINDOW | _ACT,
        output_slot=True,
        syntax="write cKxF (1-D) or cKxKxF (2-D) with sizes >= 1, e.g. c5x5x6",
        usage="cKxKxF",
        table_keys=_CONV_KEYS,
        table_required=("kernel", "filters"),
    ),
    LayerKind(
        "separable_conv",
        "sc",
        _build_windowed,
        _window_head("sc", pool=False),
        "sepconv",
        counts=(2, 3),
        options=_WINDOW | _ACT,
        output_slot=True,
        syntax="write scKxF (1-D) or scKxKxF (2-D), e.g. sc3x3x16",
        usage="scKxKxF",
        table_keys=_CONV_KEYS,
        table_required=("kernel", "filters"),
    ),
    LayerKind(
        "conv_maxout",
        "cmx",
        _build_windowed,
        _window_head("cmx", pool=False),
        "convmaxout",
        counts=(3, 4),
        options=_WINDOW,
        syntax="write cmxKxFxP (1-D) or cmxKxKxFxP (2-D), e.g. cmx3x3x16x2",
        usage="cmxKxKxFxP",
        table_keys=(_CONV_KEYS - {"act"}) | {"pieces"},
        table_required=("kernel", "filters", "pieces"),
    ),
    LayerKind(
        "max_pool",
        "mp",
        _build_windowed,
        _window_head("mp", pool=True),
        "pool",
        counts=(1, 2),
        options=frozenset({"stride"}),
        syntax="write mpK or mpKxK with K >= 1, e.g. mp2",
        usage="mpK",
        table_keys=frozenset({"size", "stride"}),
        table_required=("size",),
    ),
    LayerKind(
        "avg_pool",
        "ap",
        _build_windowed,
        _window_head("ap", pool=True),
        "pool",
        counts=(1, 2),
        options=frozenset({"stride"}),
        syntax="write apK or apKxK with K >= 1, e.g. ap2",
        usage="apK",
        table_keys=frozenset({"size", "stride"}),
        table_required=("size",),
    ),
    LayerKind(
        "depthwise_conv",
        "dw",
        _build_windowed,
        _depthwise_head,
        "dwconv",
        counts=(1, 2, 3),
        options=_WINDOW | _ACT,
        output_slot=True,
        syntax="write dwK (1-D) or dwKxK (2-D), a trailing xM for M filters per channel, e.g. dw3x3",
        usage="dwKxK",
        table_keys=frozenset({"kernel", "multiplier", "stride", "dilation", "padding", "act"}),
        table_required=("kernel",),
    ),
    LayerKind(
        "local",
        "lc",
        _build_windowed,
        _window_head("lc", pool=False),
        "local",
        counts=(2, 3),
        options=frozenset({"stride"}) | _ACT,
        output_slot=True,
        syntax="write lcKxF (1-D) or lcKxKxF (2-D), e.g. lc3x3x4",
        usage="lcKxKxF",
        table_keys=frozenset({"kernel", "filters", "stride", "act"}),
        table_required=("kernel", "filters"),
    ),
    LayerKind(
        "partial_conv",
        "pc",
        _build_windowed,
        _window_head("pc", pool=False),
        "pconv",
        counts=(2, 3),
        options=frozenset({"stride", "padding"}) | _ACT,
        output_slot=True,
        syntax="write pcKxKxF: a convolution with LeNet-5's C3 connection table (6 -> 16 maps), e.g. pc5x5x16",
        usage="pcKxKxF",
        table_keys=frozenset({"kernel", "filters", "stride", "padding", "act"}),
        table_required=("kernel", "filters"),
    ),
    LayerKind(
        "subsampling",
        "sub",
        _build_windowed,
        _window_head("sub", pool=True),
        "sub",
        counts=(1, 2),
        options=_ACT,
        output_slot=True,
        syntax="write subK or subKxK (LeNet-5's trainable subsampling), e.g. sub2",
        usage="subK",
        table_keys=frozenset({"size", "act"}),
        table_required=("size",),
    ),
    LayerKind(
        "global_avg_pool",
        "gap",
        _build_global_pool,
        _fixed_head("gap"),
        "gap",
        form="bare",
        usage="gap",
    ),
    LayerKind(
        "rbf",
        "rbf",
        _build_rbf,
        _units_head("rbf"),
        "rbf",
        counts=(1,),
        flattens=True,
        syntax="write rbfN with N >= 1 units (LeNet-5's Euclidean RBF output), e.g. rbf10",
        usage="rbfN",
        table_keys=frozenset({"units"}),
        table_required=("units",),
    ),
    LayerKind(
        "dropout",
        "drop",
        lambda layer, shape, context: (Dropout(layer.rate, classic=getattr(layer, "classic", False)), shape),
        lambda table, dims, entry: f"drop{format_rate(table['p'])}" + (":classic" if table.get("classic") else ""),
        "drop",
        form="rate",
        options=frozenset({"classic"}),
        usage="dropP",
        table_keys=frozenset({"p", "classic"}),
        table_required=("p",),
    ),
    LayerKind(
        "batch_norm",
        "bn",
        lambda layer, shape, context: (BatchNorm(shape[0]), shape),
        _fixed_head("bn"),
        "bn",
        form="bare",
        usage="bn",
    ),
    LayerKind(
        "layer_norm",
        "ln",
        lambda layer, shape, context: (LayerNorm(list(shape)), shape),
        _fixed_head("ln"),
        "ln",
        form="bare",
        usage="ln",
    ),
    LayerKind(
        "flatten",
        "flat",
        lambda layer, shape, context: (Flatten(), (math.prod(shape),)),
        _fixed_head("flat"),
        "flat",
        form="bare",
        usage="flat",
    ),
    LayerKind(
        "activation",
        "",
        lambda layer, shape, context: (get_activation(layer.activation), shape),
        lambda table, dims, entry: str(table["name"]),
        "act",
        form="activation",
        output_slot=True,
        usage="an activation",
        table_keys=frozenset({"name"}),
        table_required=("name",),
    ),
    LayerKind(
        "residual",
        "res",
        _build_residual,
        lambda table, dims, entry: _body_head(table, dims, entry, "residual"),
        "res",
        form="block",
        options=_ACT,
        output_slot=True,
        hidden_activation="linear",
        usage="res(...)",
        table_keys=frozenset({"layers", "act"}),
        table_required=("layers",),
    ),
    LayerKind(
        "repeat",
        "rep",
        _build_repeat,
        lambda table, dims, entry: _body_head(table, dims, entry, "repeat"),
        "rep",
        form="block",
        counts=(1,),
        syntax="rep followed by a count >= 1, e.g. rep3(d30)",
        usage="repN(...)",
        table_keys=frozenset({"times", "layers"}),
        table_required=("times", "layers"),
    ),
    LayerKind(
        "concat",
        "cat",
        _build_concat,
        _concat_head,
        "cat",
        form="block",
        branches=True,
        usage="cat(...)",
        table_keys=frozenset({"branches"}),
        table_required=("branches",),
    ),
):
    register_kind(_kind)
