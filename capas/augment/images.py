"""``ImageAugmenter``: random per-sample transforms of a training batch, on its device.

Every random parameter is drawn from the generator it is given (in training, the run's
``augment`` generator, ``capas.rng``), one batch at a time and in a fixed order, so the
same seed gives the same augmented batches, and a resumed run (whose checkpoint holds that
generator's state) continues with exactly the batches it would have seen. Draws happen on
the generator's device and the transforms on the batch's device: the images never leave
the device the model trains on.
"""

from __future__ import annotations

import torch
from torch import Tensor

from capas.augment import ops
from capas.augment.spec import AugmentError, AugmentSpec, parse_augment


class ImageAugmenter:
    """Applies ``spec`` to (B, C, H, W) batches: ``augmenter(x, generator) -> x'``."""

    def __init__(self, spec: AugmentSpec | str) -> None:
        self.spec = parse_augment(spec) if isinstance(spec, str) else spec

    def check(self, shape: tuple[int, ...]) -> None:
        """AugmentError unless ``shape`` (a batch's) is (B, C, H, W) images."""
        if len(shape) != 4:
            per_sample = "x".join(map(str, shape[1:])) or "scalars"
            raise AugmentError(
                f"augmentation '{self.spec.text()}' works on images (N x C x H x W), but the training inputs are "
                f"{per_sample} per sample; give image data and a model whose spec starts CxHxW (e.g. 1x28x28)"
            )

    def draw(self, batch: int, generator: torch.Generator, dtype: torch.dtype) -> dict[str, Tensor]:
        """This batch's random parameters, each (B,) or (B, 2), on the generator's device,
        in a fixed order (flip, vflip, rotate, crop, translate, scale, elastic, brightness,
        contrast, noise), drawing nothing for a transform that is off."""
        spec, device = self.spec, generator.device

        def uniform(*shape: int, low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(*shape, generator=generator, device=device, dtype=dtype)

        params: dict[str, Tensor] = {}
        if spec.flip:
            params["flip"] = torch.rand(batch, generator=generator, device=device) < spec.flip
        if spec.vflip:
            params["vflip"] = torch.rand(batch, generator=generator, device=device) < spec.vflip
        if spec.geometric:
            params["angle"] = uniform(batch, low=-spec.rotate, high=spec.rotate)
            shift = torch.zeros(batch, 2, device=device, dtype=dtype)
            if spec.crop:
                k = spec.crop
                shift = shift + torch.randint(-k, k + 1, (batch, 2), generator=generator, device=device).to(dtype)
            if spec.translate:
                shift = shift + uniform(batch, 2, low=-spec.translate, high=spec.translate)
            params["shift"] = shift
            params["zoom"] = uniform(batch, low=1 - spec.scale, high=1 + spec.scale)
        return params

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """The augmented batch x' (B, C, H, W), on x's device."""
        self.check(tuple(x.shape))
        spec = self.spec
        params = {name: value.to(x.device) for name, value in self.draw(len(x), generator, x.dtype).items()}
        if spec.flip:
            x = ops.flip(x, params["flip"], dim=-1)
        if spec.vflip:
            x = ops.flip(x, params["vflip"], dim=-2)
        if spec.geometric or spec.elastic:  # one resampling for the affine warp and the elastic field
            theta = field = None
            if spec.geometric:
                shape = (params["angle"], params["shift"], params["zoom"], *x.shape[-2:])
                theta = ops.affine_matrices(*shape)
            if spec.elastic:
                field = 2 * torch.rand(len(x), 2, *x.shape[-2:], generator=generator, device=generator.device) - 1
                field = ops.smooth(field.to(x.device, x.dtype), spec.sigma) * spec.elastic  # (B, 2, H, W) pixels
            x = ops.warp(x, theta, field)
        if spec.brightness or spec.contrast:
            b, c = spec.brightness, spec.contrast
            shift = (2 * torch.rand(len(x), generator=generator, device=generator.device) - 1) * b
            factor = 1 + (2 * torch.rand(len(x), generator=generator, device=generator.device) - 1) * c
            x = ops.brightness_contrast(x, shift.to(x.device, x.dtype), factor.to(x.device, x.dtype))
        if spec.noise:
            noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
            x = x + spec.noise * noise.to(x.device)
        return x


def augmenter_for(spec: str | None, sample: Tensor) -> ImageAugmenter | None:
    """The augmenter of a training run (None without a spec), checked against a ``sample``
    batch of the training inputs, so that non-image data fail before training starts."""
    if not spec:
        return None
    augmenter = ImageAugmenter(spec)
    augmenter.check(tuple(sample.shape))
    return augmenter
