"""Convolutional layers (1-D and 2-D): convolution, pooling, conv maxout, separable and
depthwise-only convolution, global average pooling.

Course file 000 names the three numbers of a convolution: the filter width ("ancho",
``kernel_size``), the step between filter taps ("paso", ``dilation``) and the step between
filter positions ("salto", ``stride``). Each layer wraps the matching ``nn.Conv1d/2d`` or
pooling module; inputs are ``(N, C, L)`` for ``dims=1`` and ``(N, C, H, W)`` for ``dims=2``.
Kernel size and stride may differ per axis (course file 001: "paso del filtro horizontal y
vertical"): ``kernel_size=(5, 3)``, ``stride=(2, 1)``.

Layers with weights also say how many *connections* they have: multiply-adds per sample,
a bias counting as one (LeCun et al. 1998 count LeNet-5's C1 as 28x28x6x(25+1) = 122,304
connections); ``capas summary`` prints them beside the parameters.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from capas.errors import SpecError
from capas.layers.activations import Activation
from capas.layers.dense import ActivatedLayer, check_positive
from capas.layers.init import check_scheme, init_for, initialize_

Size = int | tuple[int, ...] | list[int]
Padding = int | tuple[int, ...] | list[int] | str

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_POOL = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}


def conv_output_length(L_in: int, kernel: int, stride: int = 1, dilation: int = 1, padding: int | str = 0) -> int:
    """Output length of a convolution or pooling along one axis (course file 000):
    floor((L_in + 2 padding - dilation (kernel - 1) - 1) / stride + 1).

    ``padding="same"`` keeps ``L_in`` (stride 1 only); ``"valid"`` means 0. A result
    below 1 means the input is too short for the filter.
    """
    if padding == "same":
        return L_in
    if padding == "valid":
        padding = 0
    return (L_in + 2 * int(padding) - dilation * (kernel - 1) - 1) // stride + 1


def _per_axis(name: str, value: Size, dims: int, minimum: int = 1) -> tuple[int, ...]:
    """``value`` as a ``dims``-tuple of ints >= ``minimum`` (an int applies to every axis)."""
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) != dims:
        raise SpecError(f"{name}={value!r} has {len(values)} entries but the layer is {dims}-D")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
        raise SpecError(f"{name} must be integers >= {minimum}, got {value!r}")
    return values


def _json(value: Any) -> Any:
    """Tuples become lists so configs are plain JSON."""
    return list(value) if isinstance(value, tuple) else value


def _check_dims(dims: int) -> int:
    if dims not in (1, 2):
        raise SpecError(f"dims must be 1 (sequences, N x C x L) or 2 (images, N x C x H x W), got {dims!r}")
    return dims


class _ConvBase(nn.Module):
    """Shared argument checks and the input check for the convolution-like layers."""

    def _setup(self, in_channels: int, kernel_size: Size, stride: Size, dilation: Size, padding: Padding, dims: int):
        self.dims = _check_dims(dims)
        check_positive(type(self).__name__, in_channels=in_channels)
        self.in_channels = in_channels
        self.kernel_size = _per_axis("kernel_size", kernel_size, dims)
        self.stride = _per_axis("stride", stride, dims)
        self.dilation = _per_axis("dilation", dilation, dims)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise SpecError(f"padding must be an integer, 'same' or 'valid', got '{padding}'")
            if padding == "same" and self.stride != (1,) * dims:
                raise SpecError("padding='same' needs stride 1; use an explicit integer padding with stride > 1")
            self.padding: tuple[int, ...] | str = padding
        else:
            self.padding = _per_axis("padding", padding, dims, minimum=0)
        self.kernel_area = math.prod(self.kernel_size)

    def _check_layout(self, x: Tensor) -> None:
        """SpecError naming the expected and actual shapes if ``x`` is not (N, in, *spatial)."""
        if x.dim() != self.dims + 2 or x.shape[1] != self.in_channels:
            layout = "N x C x L" if self.dims == 1 else "N x C x H x W"
            raise SpecError(
                f"{type(self).__name__} expects {layout} inputs with C={self.in_channels}, got shape {tuple(x.shape)}"
            )

    def _check_input(self, x: Tensor) -> None:
        """SpecError naming the expected and actual shapes if ``x`` cannot be convolved."""
        name = type(self).__name__
        self._check_layout(x)
        pads = self.padding if isinstance(self.padding, tuple) else (self.padding,) * self.dims
        per_axis = zip(x.shape[2:], self.kernel_size, self.stride, self.dilation, pads)
        for axis, (length, k, s, d, p) in enumerate(per_axis):
            if conv_output_length(length, k, s, d, p) < 1:
                raise SpecError(
                    f"{name}: input length {length} on spatial axis {axis} is too short for kernel {k} "
                    f"with dilation {d} and padding {p}; use a smaller kernel or pad the input"
                )

    def _conv_args(self) -> dict[str, Any]:
        return {"stride": self.stride, "dilation": self.dilation, "padding": self.padding}

    def _common_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "kernel_size": _json(self.kernel_size),
            "stride": _json(self.stride),
            "dilation": _json(self.dilation),
            "padding": _json(self.padding),
            "dims": self.dims,
        }


class _OneConv(_ConvBase):
    """A convolution-like layer held as one torch module, ``self.conv``: its ``weight`` and
    ``bias`` are that module's."""

    @property
    def weight(self) -> nn.Parameter:
        return self.conv.weight

    @property
    def bias(self) -> nn.Parameter | None:
        return self.conv.bias

    def _init_conv(self, fan_in: int, fan_out: int) -> None:
        """The weight drawn by ``init_scheme`` for these fans; the bias, if any, zeroed."""
        initialize_(self.weight, self.init_scheme, fan_in, fan_out)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class Conv(_OneConv, ActivatedLayer):
    """s = g(W * x + b): ``out_channels`` filters of ``kernel_size`` over ``in_channels``.

    ``weight`` is ``(out, in, *kernel_size)`` and ``bias`` ``(out,)``, as in ``nn.Conv1d/2d``
    (held as ``self.conv``). ``init`` defaults to the activation's scheme with
    fan_in = in * kernel area and fan_out = out * kernel area.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size = 1,
        dilation: Size = 1,
        padding: Padding = 0,
        activation: str | dict | Activation = "linear",
        dims: int = 2,
        init: str | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self._setup(in_channels, kernel_size, stride, dilation, padding, dims)
        check_positive("Conv", out_channels=out_channels)
        self.out_channels = out_channels
        self._set_activation(activation, init)
        self.conv = _CONV[dims](in_channels, out_channels, self.kernel_size, bias=bias, **self._conv_args())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        area = self.kernel_area
        self._init_conv(self.in_channels * area, self.out_channels * area)

    def pre_activation(self, x: Tensor) -> Tensor:
        """z = W * x + b (N, out, *L_out), before the activation."""
        self._check_input(x)
        return self.conv(x)  # (N, out, *L_out)

    def extra_repr(self) -> str:
        return f"init={self.init_scheme}"

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """Multiply-adds per sample: every output unit reads in*kernel_area inputs (+1 bias)."""
        fan_in = self.in_channels * self.kernel_area + (self.bias is not None)
        return math.prod(output_shape) * fan_in

    def config(self) -> dict[str, Any]:
        return {
            "type": "conv",
            **self._common_config(),
            "out_channels": self.out_channels,
            "activation": self.activation.config(),
            "init": self.init,
            "bias": self.bias is not None,
        }


class ConvMaxout(_OneConv):
    """Convolutional maxout: a convolution with ``out_channels * pieces`` filters; output
    channel j is the max over filters ``j*pieces ... j*pieces + pieces - 1``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        pieces: int = 2,
        stride: Size = 1,
        dilation: Size = 1,
        padding: Padding = 0,
        dims: int = 2,
        init: str | None = None,
    ) -> None:
        super().__init__()
        self._setup(in_channels, kernel_size, stride, dilation, padding, dims)
        check_positive("ConvMaxout", out_channels=out_channels, pieces=pieces)
        self.out_channels = out_channels
        self.pieces = pieces
        self.init = None if init is None else check_scheme(init)
        self.conv = _CONV[dims](in_channels, out_channels * pieces, self.kernel_size, **self._conv_args())
        self.reset_parameters()

    @property
    def init_scheme(self) -> str:
        return self.init or init_for("maxout")

    def reset_parameters(self) -> None:
        area = self.kernel_area
        self._init_conv(self.in_channels * area, self.out_channels * area)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        z = self.conv(x)  # (N, out*pieces, *L_out)
        return z.unflatten(1, (self.out_channels, self.pieces)).max(dim=2).values  # (N, out, *L_out)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """Multiply-adds per sample: ``pieces`` filters (with bias) behind every output unit."""
        return math.prod(output_shape) * self.pieces * (self.in_channels * self.kernel_area + 1)

    def config(self) -> dict[str, Any]:
        return {
            "type": "conv_maxout",
            **self._common_config(),
            "out_channels": self.out_channels,
            "pieces": self.pieces,
            "init": self.init,
        }


class SeparableConv(_ConvBase, ActivatedLayer):
    """Depthwise-separable convolution (Xception, course file 000): each input channel is
    filtered alone (``depth_multiplier`` filters each, no bias), then a 1x1 pointwise
    convolution mixes channels; the activation follows the pointwise step.

    Weights: in*m*kernel_area (depthwise) + in*m*out (+ out bias) instead of
    in*out*kernel_area for a full convolution. (The course's exercise puts the 1x1 block
    first and no mixing after: build that as ``Conv(kernel_size=1)`` followed by a
    :class:`DepthwiseConv`, ``c1x1x6 dw3x3`` in the notation.)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size = 1,
        dilation: Size = 1,
        padding: Padding = 0,
        activation: str | dict | Activation = "linear",
        dims: int = 2,
        depth_multiplier: int = 1,
        init: str | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self._setup(in_channels, kernel_size, stride, dilation, padding, dims)
        check_positive("SeparableConv", out_channels=out_channels, depth_multiplier=depth_multiplier)
        self.out_channels = out_channels
        self.depth_multiplier = depth_multiplier
        self._set_activation(activation, init)
        mid = in_channels * depth_multiplier
        self.depthwise = _CONV[dims](
            in_channels, mid, self.kernel_size, groups=in_channels, bias=False, **self._conv_args()
        )
        self.pointwise = _CONV[dims](mid, out_channels, 1, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        area, m = self.kernel_area, self.depth_multiplier
        initialize_(self.depthwise.weight, self.init or "glorot_uniform", area, m * area)  # linear step
        initialize_(self.pointwise.weight, self.init_scheme, self.in_channels * m, self.out_channels)
        if self.pointwise.bias is not None:
            nn.init.zeros_(self.pointwise.bias)

    def pre_activation(self, x: Tensor) -> Tensor:
        """The pointwise convolution's output (N, out, *L_out), before the activation."""
        self._check_input(x)
        return self.pointwise(self.depthwise(x))  # (N, out, *L_out)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """Depthwise (kernel_area per intermediate unit) plus pointwise (in*m, +1 bias) multiply-adds."""
        positions = math.prod(output_shape[1:])
        mid = self.in_channels * self.depth_multiplier
        pointwise = self.out_channels * (mid + (self.pointwise.bias is not None))
        return positions * (mid * self.kernel_area + pointwise)

    def config(self) -> dict[str, Any]:
        return {
            "type": "separable_conv",
            **self._common_config(),
            "out_channels": self.out_channels,
            "activation": self.activation.config(),
            "depth_multiplier": self.depth_multiplier,
            "init": self.init,
            "bias": self.pointwise.bias is not None,
        }


class DepthwiseConv(_OneConv, ActivatedLayer):
    """Depthwise-only convolution (course file 000, Xception: "each convolution of a layer
    works with only one of the previous outputs"): input channel c is filtered by its own
    ``depth_multiplier`` filters of ``kernel_size`` and nothing mixes channels.

    Output channels: in*m, channel ``c*m + j`` from input channel c. Weights: in*m*kernel_area
    (+ in*m biases): the exercise's 6 channels with 3x3 filters hold 6*(9+1) = 60 (a
    :class:`SeparableConv` would add a 1x1 mixing of 6*6+6 more). Weight ``(in*m, 1, *kernel)``
    as ``nn.Conv2d(groups=in)``.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: Size,
        stride: Size = 1,
        dilation: Size = 1,
        padding: Padding = 0,
        activation: str | dict | Activation = "linear",
        dims: int = 2,
        depth_multiplier: int = 1,
        init: str | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self._setup(in_channels, kernel_size, stride, dilation, padding, dims)
        check_positive("DepthwiseConv", depth_multiplier=depth_multiplier)
        self.depth_multiplier = depth_multiplier
        self.out_channels = in_channels * depth_multiplier
        self._set_activation(activation, init)
        self.conv = _CONV[dims](
            in_channels, self.out_channels, self.kernel_size, groups=in_channels, bias=bias, **self._conv_args()
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        area = self.kernel_area
        self._init_conv(area, self.depth_multiplier * area)  # one input channel per filter

    def pre_activation(self, x: Tensor) -> Tensor:
        """z (N, in*m, *L_out): each channel convolved with its own filters."""
        self._check_input(x)
        return self.conv(x)  # (N, in*m, *L_out)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """Multiply-adds per sample: kernel_area inputs (+1 bias) per output unit."""
        return math.prod(output_shape) * (self.kernel_area + (self.bias is not None))

    def config(self) -> dict[str, Any]:
        return {
            "type": "depthwise_conv",
            **self._common_config(),
            "activation": self.activation.config(),
            "depth_multiplier": self.depth_multiplier,
            "init": self.init,
            "bias": self.bias is not None,
        }


class GlobalAvgPool(nn.Module):
    """Global average pooling: (N, C, *spatial) -> (N, C), the mean of each map (Lin et al.
    2014's replacement of the dense layers: one map per class, averaged). No weights."""

    def __init__(self, dims: int = 2) -> None:
        super().__init__()
        self.dims = _check_dims(dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dims + 2:
            layout = "N x C x L" if self.dims == 1 else "N x C x H x W"
            raise SpecError(f"GlobalAvgPool expects {layout} inputs, got shape {tuple(x.shape)}")
        return x.mean(dim=tuple(range(2, x.dim())))  # (N, C)

    def config(self) -> dict[str, Any]:
        return {"type": "global_avg_pool", "dims": self.dims}


class Pool(nn.Module):
    """Max or average pooling over windows of ``size`` moved by ``stride`` (default
    ``size``: the course's parameter-free "reducing" layer, L_out = floor(L_in / size)).

    ``padding`` (at most half the window) pads with -inf for max and with zeros, counted
    in the average, for avg (``nn.AvgPool``'s default).
    """

    def __init__(
        self, kind: str = "max", size: Size = 2, stride: Size | None = None, dims: int = 2, padding: Size = 0
    ) -> None:
        super().__init__()
        if kind not in ("max", "avg"):
            raise SpecError(f"pooling kind must be 'max' or 'avg', got '{kind}'")
        self.kind = kind
        self.dims = _check_dims(dims)
        self.size = _per_axis("size", size, dims)
        self.stride = self.size if stride is None else _per_axis("stride", stride, dims)
        self.padding = _per_axis("padding", padding, dims, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.size)):
            raise SpecError(f"pooling padding {padding!r} exceeds half the window {self.size}; use a smaller padding")
        self.pool = _POOL[kind, dims](self.size, self.stride, self.padding)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dims + 2 or any(n + 2 * p < k for n, k, p in zip(x.shape[2:], self.size, self.padding)):
            raise SpecError(
                f"Pool({self.kind}, size {self.size}) expects {self.dims}-D inputs (N, C, ...) at least "
                f"as large as the window, got shape {tuple(x.shape)}"
            )
        return self.pool(x)  # (N, C, *L_out)

    def config(self) -> dict[str, Any]:
        return {
            "type": "pool",
            "kind": self.kind,
            "size": _json(self.size),
            "stride": _json(self.stride),
            "dims": self.dims,
            "padding": _json(self.padding),
        }

    def extra_repr(self) -> str:
        return f"kind={self.kind}, size={self.size}, stride={self.stride}, padding={self.padding}"
