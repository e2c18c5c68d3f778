"""Layers that *grow* a feature map: the transposed convolution and nearest upsampling.

A GAN's generator runs a convolutional net backwards, from a small map (the noise as a
``100x1x1`` image) to a full image; DCGAN (Radford et al., 2016) does it with transposed
("fractionally strided") convolutions, and the upsample-then-convolve alternative avoids
their checkerboard artefacts. Both are notation tokens, registered here:

==================  =====================================================================
token               meaning
==================  =====================================================================
``tcKxKxF``         2-D transposed convolution, F filters of KxK (``tcKxF``: 1-D);
                    options ``:sN`` stride, ``:pN`` padding, an activation
``upN``             nearest-neighbour upsampling by N on every spatial axis
==================  =====================================================================

The output length of a transposed convolution along one axis is the inverse of
``conv_output_length``: ``(L_in - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1``,
so ``1x28x28 c4x4x64:s2:p1`` maps 28 -> 14 and ``64x14x14 tc4x4x1:s2:p1`` maps 14 -> 28.
Inputs are ``(N, C, L)`` (``dims=1``) or ``(N, C, H, W)`` (``dims=2``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from capas.errors import SpecError
from capas.layers.activations import Activation
from capas.layers.conv import Padding, Size, _OneConv
from capas.layers.dense import ActivatedLayer, check_positive
from capas.layers.kinds import BuildContext, LayerKind, Shape, _window_head, register_kind, table_ints

_TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}


def transposed_output_length(L_in: int, kernel: int, stride: int = 1, dilation: int = 1, padding: int = 0) -> int:
    """(L_in - 1) stride - 2 padding + dilation (kernel - 1) + 1: the length a transposed
    convolution gives, i.e. the input length of the convolution it transposes."""
    return (L_in - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1


class TransposedConv(_OneConv, ActivatedLayer):
    """s = g(W^T * x + b): the gradient of a convolution with respect to its input, used as
    a layer. ``weight`` is ``(in, out, *kernel_size)`` and ``bias`` ``(out,)``, exactly as in
    ``nn.ConvTranspose1d/2d`` (held as ``self.conv``). ``init`` defaults to the activation's
    scheme with fan_in = in * kernel area / stride area (each output sees that many taps)."""

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
        if isinstance(padding, str):
            raise SpecError(f"TransposedConv takes an integer padding (:pN), got '{padding}'")
        self._setup(in_channels, kernel_size, stride, dilation, padding, dims)
        check_positive("TransposedConv", out_channels=out_channels)
        self.out_channels = out_channels
        self._set_activation(activation, init)
        self.conv = _TRANSPOSED[dims](in_channels, out_channels, self.kernel_size, bias=bias, **self._conv_args())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        area, steps = self.kernel_area, 1
        for s in self.stride:
            steps *= s
        self._init_conv(max(1, self.in_channels * area // steps), self.out_channels * area)

    def pre_activation(self, x: Tensor) -> Tensor:
        """z = W^T * x + b (N, out, *L_out), before the activation (any input length grows)."""
        self._check_layout(x)
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"init={self.init_scheme}"

    def config(self) -> dict[str, Any]:
        return {
            "type": "transposed_conv",
            **self._common_config(),
            "out_channels": self.out_channels,
            "activation": self.activation.config(),
            "init": self.init,
            "bias": self.bias is not None,
        }


class Upsample(nn.Module):
    """Nearest-neighbour upsampling: every value repeated ``scale`` times along each spatial
    axis, (N, C, *L) -> (N, C, *(scale L)); no parameters."""

    def __init__(self, scale: int, dims: int = 2) -> None:
        super().__init__()
        check_positive("Upsample", scale=scale)
        if dims not in (1, 2):
            raise SpecError(f"Upsample: dims must be 1 or 2, got {dims!r}")
        self.scale, self.dims = scale, dims

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dims + 2:
            raise SpecError(f"Upsample expects {self.dims}-D maps (N x C x ...), got shape {tuple(x.shape)}")
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def config(self) -> dict[str, Any]:
        return {"type": "upsample", "scale": self.scale, "dims": self.dims}


# ---- notation ---------------------------------------------------------------------------


def _needs_map(layer: Any, shape: Shape, context: BuildContext) -> int:
    """The number of spatial axes of ``shape``; SpecError for a vector input."""
    if len(shape) == 1:
        raise SpecError(
            f"'{layer.token()}' needs a signal (CxL) or image (CxHxW) input, but {context.before} gives a vector "
            f"of {shape[0]} features; write a generator's noise as an image, e.g. 100x1x1"
        )
    return len(shape) - 1


def _build_transposed(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    dims = _needs_map(layer, shape, context)
    window = layer.sizes[:-1]
    if len(window) != dims:
        raise SpecError(
            f"'{layer.token()}' has a {len(window)}-D window but {context.before} gives {context.describe(shape)}, "
            f"a {dims}-D input: write the window as {'K' if dims == 1 else 'KxK'}"
        )
    if isinstance(layer.padding, str):
        raise SpecError(f"'{layer.token()}': a transposed convolution takes :pN padding, not :{layer.padding}")
    stride = layer.stride if isinstance(layer.stride, tuple) else (layer.stride or 1,) * dims  # :s2 or :s2x1
    if len(stride) != dims:
        raise SpecError(f"'{layer.token()}' has {len(stride)} strides for a {dims}-D input; write :sN or one per axis")
    dilation, padding = layer.dilation or 1, layer.padding or 0
    out = tuple(transposed_output_length(n, k, s, dilation, padding) for n, k, s in zip(shape[1:], window, stride))
    if min(out) < 1:
        raise SpecError(
            f"'{layer.token()}' gives an empty output from the {context.describe(shape)} output of {context.before}; "
            "use less padding"
        )
    module = TransposedConv(
        shape[0], layer.sizes[-1], window, stride=list(stride), dilation=dilation, padding=padding,
        activation=context.activation, dims=dims, init=context.init,
    )  # fmt: skip
    return module, (layer.sizes[-1], *out)


def _build_upsample(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    dims = _needs_map(layer, shape, context)
    scale = layer.sizes[0]
    return Upsample(scale, dims), (shape[0], *(n * scale for n in shape[1:]))


def _upsample_head(table: dict[str, Any], dims: int, entry: Any) -> str:
    return f"up{table_ints(table['scale'], 'scale')[0]}"


TRANSPOSED_CONV = register_kind(
    LayerKind(
        "transposed_conv",
        "tc",
        _build_transposed,
        _window_head("tc", pool=False),
        "tconv",
        counts=(2, 3),
        options=frozenset({"stride", "dilation", "padding", "activation"}),
        output_slot=True,
        syntax="write tcKxF (1-D) or tcKxKxF (2-D) with sizes >= 1, e.g. tc4x4x64:s2:p1",
        usage="tcKxKxF",
        table_keys=frozenset({"kernel", "filters", "stride", "dilation", "padding", "act"}),
        table_required=("kernel", "filters"),
    )
)
UPSAMPLE = register_kind(
    LayerKind(
        "upsample",
        "up",
        _build_upsample,
        _upsample_head,
        "up",
        counts=(1,),
        syntax="write upN with a scale N >= 1, e.g. up2",
        usage="upN",
        table_keys=frozenset({"scale"}),
        table_required=("scale",),
    )
)
