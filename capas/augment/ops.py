"""Batched image transforms with explicit parameters: (B, C, H, W) in, same shape out.

Each function takes one parameter per sample (a (B,) tensor), so the random draws (in
:mod:`capas.augment.images`) and the geometry are separate and each is testable alone.
Geometric warps are one ``affine_grid`` + ``grid_sample`` (bilinear, zeros outside the
image, ``align_corners=False``): an integer shift moves pixels exactly and, on a square
image, a 90-degree turn is exactly ``torch.rot90``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def flip(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Mirror the samples where ``mask`` (B,) bool is True along ``dim`` (-1: left-right)."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(dim), x)  # (B, C, H, W)


def affine_matrices(angle: Tensor, shift: Tensor, zoom: Tensor, height: int, width: int) -> Tensor:
    """(B, 2, 3) matrices for ``F.affine_grid``: rotate by ``angle`` (B,) degrees
    (counterclockwise as the image is shown, row 0 on top), zoom by ``zoom`` (B,), then shift
    by ``shift`` (B, 2) pixels (x right, y down).

    affine_grid maps each output position to where it reads the input, so the matrix is the
    inverse warp, written in the normalised coordinates (-1..1 on each axis) of a
    ``height`` x ``width`` image: pixel steps are 2/W and 2/H, hence the aspect factors.
    """
    radians = angle * (math.pi / 180.0)
    cos, sin = torch.cos(radians) / zoom, torch.sin(radians) / zoom  # (B,)
    theta = torch.zeros(len(angle), 2, 3, dtype=angle.dtype, device=angle.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * height / width
    theta[:, 1, 0], theta[:, 1, 1] = sin * width / height, cos
    # output pixel p reads input R^-1 (p - shift): the translation part is -R^-1 shift
    sx, sy = shift[:, 0] * 2.0 / width, shift[:, 1] * 2.0 / height
    theta[:, 0, 2] = -(theta[:, 0, 0] * sx + theta[:, 0, 1] * sy)
    theta[:, 1, 2] = -(theta[:, 1, 0] * sx + theta[:, 1, 1] * sy)
    return theta


def affine(x: Tensor, angle: Tensor, shift: Tensor, zoom: Tensor | None = None) -> Tensor:
    """Rotate (degrees, (B,)), zoom ((B,), None: 1) and shift ((B, 2) pixels) every image."""
    height, width = x.shape[-2:]
    zoom = torch.ones_like(angle) if zoom is None else zoom
    return warp(x, affine_matrices(angle.to(x.dtype), shift.to(x.dtype), zoom.to(x.dtype), height, width))


def warp(x: Tensor, theta: Tensor | None = None, field: Tensor | None = None) -> Tensor:
    """One ``grid_sample`` of x (B, C, H, W): output pixel p reads the input at theta(p) +
    field[p]; ``theta`` (B, 2, 3) as :func:`affine_matrices` (None: identity), ``field``
    (B, 2, H, W) in pixels (x, y) (None: none). An affine warp and an elastic distortion thus
    cost one resampling together."""
    batch, _, height, width = x.shape
    if theta is None:
        theta = torch.eye(2, 3, dtype=x.dtype, device=x.device).expand(batch, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    if field is not None:
        scale = torch.tensor([2.0 / width, 2.0 / height], dtype=x.dtype, device=x.device)
        grid = grid + field.permute(0, 2, 3, 1) * scale
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A normalised 1-D Gaussian of ``sigma`` pixels, 2*ceil(3 sigma) + 1 taps."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_matrix(sigma: float, size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(size, size) banded matrix G with G[i, j] = kernel[i - j]: ``G @ v`` is the Gaussian
    convolution of a length-``size`` signal with zeros beyond its ends."""
    kernel = gaussian_kernel(sigma, dtype, device)
    radius = len(kernel) // 2
    offset = torch.arange(size, device=device)[:, None] - torch.arange(size, device=device)[None, :]  # i - j
    inside = offset.abs() <= radius
    return torch.where(
        inside, kernel[(offset + radius).clamp(0, len(kernel) - 1)], torch.zeros((), dtype=dtype, device=device)
    )


def smooth(field: Tensor, sigma: float) -> Tensor:
    """Gaussian smoothing of (B, K, H, W) maps, zeros beyond the border: G_H @ field @ G_W^T,
    two small matrix products (20x faster on the CPU than a 25-tap depthwise convolution)."""
    height, width = field.shape[-2:]
    rows = gaussian_matrix(sigma, height, field.dtype, field.device)  # (H, H)
    cols = gaussian_matrix(sigma, width, field.dtype, field.device)  # (W, W)
    return rows @ field @ cols.T  # (B, K, H, W)


def displace(x: Tensor, field: Tensor) -> Tensor:
    """Output pixel p reads the input at p + field[p]; ``field`` (B, 2, H, W) in pixels (x, y)."""
    return warp(x, None, field)


def brightness_contrast(x: Tensor, shift: Tensor, factor: Tensor) -> Tensor:
    """(x - m) * factor + m + shift per sample, m the sample's mean; shift, factor (B,)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * factor.view(-1, 1, 1, 1) + mean + shift.view(-1, 1, 1, 1)
