"""Locally connected layers, 1-D and 2-D (course file 000, "red profunda con conexión
convolutiva"): every output unit reads a local window of the input, like a convolution,
but every position has its own weights (nothing is shared).

For an input (C, *spatial) and windows of ``kernel_size`` moved by ``stride``, there are P
output positions (the convolution's output-length formula on each axis) and F filters at
each one, so the layer holds P*F*(C*kernel_area) weights and P*F biases: the weights of a
convolution times the number of positions. Window columns are taken with ``unfold``
(channel-major, as a convolution's weight is flattened), so a locally connected layer
whose weights are equal at every position computes exactly ``nn.Conv1d/2d``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from capas.errors import SpecError
from capas.layers.activations import Activation
from capas.layers.conv import Size, _check_dims, _json, _per_axis, conv_output_length
from capas.layers.dense import ActivatedLayer, check_positive
from capas.layers.init import initialize_


class LocallyConnected(ActivatedLayer):
    """s = g(z), z[n, f, p] = sum_j W[p, f, j] x_window(p)[n, j] + b[f, p].

    ``input_size`` is the spatial size of the input (``(L,)`` or ``(H, W)``), needed because
    the weights depend on the positions. ``weight`` is ``(P, out, in*kernel_area)``,
    ``bias`` ``(out, P)``; outputs are ``(N, out, *out_size)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: Size,
        kernel_size: Size,
        stride: Size = 1,
        activation: str | dict | Activation = "linear",
        dims: int = 2,
        init: str | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.dims = _check_dims(dims)
        check_positive("LocallyConnected", in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size = _per_axis("input_size", input_size, dims)
        self.kernel_size = _per_axis("kernel_size", kernel_size, dims)
        self.stride = _per_axis("stride", stride, dims)
        self.out_size = tuple(
            conv_output_length(n, k, s) for n, k, s in zip(self.input_size, self.kernel_size, self.stride)
        )
        if min(self.out_size) < 1:
            raise SpecError(
                f"LocallyConnected: kernel {self.kernel_size} is larger than the input {self.input_size}; "
                "use a smaller kernel"
            )
        self.positions = math.prod(self.out_size)
        self.fan_in = in_channels * math.prod(self.kernel_size)
        self._set_activation(activation, init)
        self.weight = nn.Parameter(torch.empty(self.positions, out_channels, self.fan_in))
        self.bias = nn.Parameter(torch.empty(out_channels, self.positions)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        area = math.prod(self.kernel_size)
        initialize_(self.weight, self.init_scheme, self.fan_in, self.out_channels * area)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def windows(self, x: Tensor) -> Tensor:
        """The input windows as columns: (N, C*kernel_area, P), channel-major like a conv weight."""
        if x.dim() != self.dims + 2 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.input_size:
            expected = "x".join(map(str, (self.in_channels, *self.input_size)))
            raise SpecError(f"LocallyConnected expects inputs (N, {expected}), got shape {tuple(x.shape)}")
        if self.dims == 2:
            return F.unfold(x, self.kernel_size, stride=self.stride)  # (N, C*kh*kw, P)
        cols = x.unfold(2, self.kernel_size[0], self.stride[0])  # (N, C, P, k)
        return cols.permute(0, 1, 3, 2).flatten(1, 2)  # (N, C*k, P)

    def pre_activation(self, x: Tensor) -> Tensor:
        """z (N, out, *out_size)."""
        cols = self.windows(x)  # (N, C*area, P)
        z = torch.einsum("njp,pfj->nfp", cols, self.weight)  # (N, out, P)
        if self.bias is not None:
            z = z + self.bias
        return z.unflatten(2, self.out_size)  # (N, out, *out_size)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """Multiply-adds per sample: C*kernel_area inputs (+1 bias) per output unit."""
        return math.prod(output_shape) * (self.fan_in + (self.bias is not None))

    def config(self) -> dict[str, Any]:
        return {
            "type": "locally_connected",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "input_size": _json(self.input_size),
            "kernel_size": _json(self.kernel_size),
            "stride": _json(self.stride),
            "activation": self.activation.config(),
            "dims": self.dims,
            "init": self.init,
            "bias": self.bias is not None,
        }
