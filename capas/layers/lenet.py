"""LeNet-5's own layers (LeCun, Bottou, Bengio & Haffner 1998; course file 004).

- :class:`Subsampling` (S2, S4): each map's 2x2 window is summed, multiplied by one
  trainable coefficient and shifted by one trainable bias per map, then squashed: 2
  parameters per map, where a max/avg pooling has none.
- :class:`PartialConv` (C3): a convolution in which output map i reads only the input maps
  of row i of a connection table (:data:`LENET_C3_TABLE`: 60 of the 96 pairs), "to keep the
  number of connections within reasonable bounds" and to break the symmetry between maps.
  Only the connected filters are parameters (1,516 for C3, not 2,416).
- :class:`RBFOutput` (the output layer): unit i scores -||x - w_i||^2, the negated Euclidean
  RBF distance of the paper, so that the highest score wins (argmax, softmax) as for any
  other capas output. The paper fixes w_i to stylised 7x12 bitmaps; here they are trained.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from capas.errors import SpecError
from capas.layers.activations import Activation
from capas.layers.conv import Size, _check_dims, _ConvBase, _json, _per_axis
from capas.layers.dense import ActivatedLayer, check_positive
from capas.layers.init import initialize_

#: Table I of the paper: the S2 maps (0-5) each C3 map (0-15) reads.
LENET_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class Subsampling(ActivatedLayer):
    """s = g(a_c * sum(window) + b_c) per map c over non-overlapping windows of ``size``
    (LeNet-5's S2/S4). Parameters: ``coefficient`` (C,) and ``bias`` (C,).
    Input (N, C, *spatial) -> (N, C, *spatial // size)."""

    def __init__(
        self,
        channels: int,
        size: Size = 2,
        activation: str | dict | Activation = "linear",
        dims: int = 2,
    ) -> None:
        super().__init__()
        self.dims = _check_dims(dims)
        check_positive("Subsampling", channels=channels)
        self.channels = channels
        self.size = _per_axis("size", size, dims)
        self.area = math.prod(self.size)
        self._set_activation(activation, None)
        self.coefficient = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Coefficient 1/area, bias 0: the layer starts as an average pooling and learns from there."""
        nn.init.constant_(self.coefficient, 1.0 / self.area)
        nn.init.zeros_(self.bias)

    def pre_activation(self, x: Tensor) -> Tensor:
        """z (N, C, *spatial // size)."""
        if (
            x.dim() != self.dims + 2
            or x.shape[1] != self.channels
            or any(n < k for n, k in zip(x.shape[2:], self.size))
        ):
            raise SpecError(
                f"Subsampling(size {self.size}) expects (N, {self.channels}, ...) inputs at least as large "
                f"as the window, got shape {tuple(x.shape)}"
            )
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool1d
        sums = pool(x, self.size) * self.area  # (N, C, *out): the window sums
        shape = (1, -1) + (1,) * self.dims
        return sums * self.coefficient.view(shape) + self.bias.view(shape)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """Per output unit: ``area`` inputs plus the bias (S2: 14x14x6x5 = 5,880)."""
        return math.prod(output_shape) * (self.area + 1)

    def config(self) -> dict[str, Any]:
        return {
            "type": "subsampling",
            "channels": self.channels,
            "size": _json(self.size),
            "activation": self.activation.config(),
            "dims": self.dims,
        }


class PartialConv(_ConvBase, ActivatedLayer):
    """A convolution where output map i reads only the input maps ``table[i]``.

    ``table`` defaults to LeNet-5's C3 table when there are 6 inputs and 16 outputs; other
    sizes need one. ``weight`` holds only the connected filters, ``(connections,
    *kernel_size)`` in table order; the full ``(out, in, *kernel)`` filter bank (zeros
    elsewhere) is assembled at each forward pass.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        table: list[list[int]] | tuple[tuple[int, ...], ...] | None = None,
        stride: Size = 1,
        padding: int | str = 0,
        activation: str | dict | Activation = "linear",
        dims: int = 2,
        init: str | None = None,
    ) -> None:
        super().__init__()
        self._setup(in_channels, kernel_size, stride, 1, padding, dims)
        check_positive("PartialConv", out_channels=out_channels)
        self.out_channels = out_channels
        if table is None:
            if (in_channels, out_channels) != (6, 16):
                raise SpecError(
                    f"PartialConv has no default connection table for {in_channels} -> {out_channels} maps "
                    "(LeNet-5's C3 table is 6 -> 16); pass table=[[inputs of map 0], ...]"
                )
            table = LENET_C3_TABLE
        self.table = tuple(tuple(int(i) for i in row) for row in table)
        if len(self.table) != out_channels or any(
            not row or len(set(row)) != len(row) or not all(0 <= i < in_channels for i in row) for row in self.table
        ):
            raise SpecError(
                f"a connection table needs {out_channels} rows of distinct input maps in 0..{in_channels - 1}, "
                f"each non-empty; got {table!r}"
            )
        self._set_activation(activation, init)
        pairs = [(o, i) for o, row in enumerate(self.table) for i in row]
        self.register_buffer("flat_index", torch.tensor([o * in_channels + i for o, i in pairs]), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        area = self.kernel_area
        fan_in = area * sum(map(len, self.table)) // self.out_channels  # the average inputs per map
        initialize_(self.weight, self.init_scheme, fan_in, fan_in)
        nn.init.zeros_(self.bias)

    def full_weight(self) -> Tensor:
        """The (out, in, *kernel) filter bank, zero where the table does not connect."""
        full = self.weight.new_zeros(self.out_channels * self.in_channels, *self.kernel_size)
        full = full.index_put((self.flat_index,), self.weight)
        return full.unflatten(0, (self.out_channels, self.in_channels))

    def pre_activation(self, x: Tensor) -> Tensor:
        """z (N, out, *L_out)."""
        self._check_input(x)
        conv = F.conv2d if self.dims == 2 else F.conv1d
        return conv(x, self.full_weight(), self.bias, stride=self.stride, padding=self.padding)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """Per output position, each map's connected filters plus its bias (C3: 100 x 1,516 = 151,600)."""
        return math.prod(output_shape[1:]) * (self.weight.numel() + self.out_channels)

    def config(self) -> dict[str, Any]:
        return {
            "type": "partial_conv",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": _json(self.kernel_size),
            "table": [list(row) for row in self.table],
            "stride": _json(self.stride),
            "padding": _json(self.padding),
            "activation": self.activation.config(),
            "dims": self.dims,
            "init": self.init,
        }


class RBFOutput(nn.Module):
    """y_i = -||x - w_i||^2 for x (N, in) (other shapes flattened) -> (N, units).

    ``weight`` is ``(units, in)``, one centre per class; no bias. Initial centres are
    +-1 at random (the paper's bitmaps are +-1)."""

    def __init__(self, in_features: int, units: int) -> None:
        super().__init__()
        check_positive("RBFOutput", in_features=in_features, units=units)
        self.in_features, self.units = in_features, units
        self.weight = nn.Parameter(torch.empty(units, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randint(0, 2, self.weight.shape).to(self.weight) * 2 - 1)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)  # (N, in)
        if x.shape[1] != self.in_features:
            raise SpecError(f"RBFOutput expects {self.in_features} features, got shape {tuple(x.shape)}")
        # ||x - w||^2 = ||x||^2 - 2 x.w + ||w||^2, as one matrix product
        distance = (x * x).sum(1, keepdim=True) - 2 * x @ self.weight.T + (self.weight * self.weight).sum(1)
        return -distance  # (N, units)

    def connections(self, output_shape: tuple[int, ...]) -> int:
        """One (x_j - w_ij)^2 term per weight: 84 x 10 = 840 for LeNet-5."""
        return self.weight.numel()

    def config(self) -> dict[str, Any]:
        return {"type": "rbf_output", "in_features": self.in_features, "units": self.units}
