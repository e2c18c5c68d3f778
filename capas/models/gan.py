"""``GAN``: a generator and a discriminator, each a capas ``Network`` from the notation.

Course file 002: the generator G(z; theta_G) maps noise z from a chosen distribution
(Gaussian or uniform) to samples; the discriminator D(x; theta_D) outputs the probability
that x is real. Both are ordinary networks, MLPs (``8-128-128-2`` and ``2-128-128-1``) or
DCGAN-style convolutional ones, whose generator takes its noise as a 1x1 image and grows
it with transposed convolutions (``100x1x1 tc7x7x64 bn relu tc4x4x1:s2:p1:tanh``...).

The discriminator's last layer gives one raw score a(x) per sample; its ``forward`` is the
sigmoid D(x) = sigmoid(a(x)) and ``logits`` the score (what the losses of
``capas.objectives.gan_losses`` read). With packing m (PacGAN) it reads m samples at once:
its input is m times the data's features (vectors) or channels (images).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from capas.errors import SpecError
from capas.layers.kinds import describe
from capas.models.modes import eval_mode
from capas.models.network import Network, build
from capas.models.registry import register

MODEL_KIND = "gan"
CONFIG_FORMAT = 1
NOISES = ("gaussian", "uniform")


def packed_shape(data_shape: tuple[int, ...], packing: int) -> tuple[int, ...]:
    """The discriminator's input shape for ``packing`` samples of ``data_shape`` at once."""
    return (data_shape[0] * packing, *data_shape[1:])


@register(MODEL_KIND)
class GAN(nn.Module):
    """``generator`` (noise (N, *noise_shape) -> samples (N, *data_shape)) and
    ``discriminator`` (packed samples -> one score each), with the noise distribution
    (``gaussian``: N(0, I); ``uniform``: U[-1, 1]) and the packing degree m."""

    def __init__(self, generator: Network, discriminator: Network, noise: str = "gaussian", packing: int = 1) -> None:
        super().__init__()
        if not isinstance(generator, Network) or not isinstance(discriminator, Network):
            raise SpecError("a GAN holds two capas Networks (capas.build(spec)); use capas.models.gan.build_gan")
        if noise not in NOISES:
            raise SpecError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
        if isinstance(packing, bool) or not isinstance(packing, int) or packing < 1:
            raise SpecError(
                f"packing must be an integer >= 1 (samples the discriminator judges at once), got {packing!r}"
            )
        if generator.sequence or discriminator.sequence:
            raise SpecError("a GAN's generator and discriminator read vectors or images, not sequences")
        self.generator, self.discriminator = generator, discriminator
        self.noise_kind, self.packing = noise, packing
        self.noise_shape = generator.input_shape
        self.data_shape = generator.output_shape
        want = packed_shape(self.data_shape, packing)
        got = discriminator.input_shape
        if got != want and not (len(got) == 1 and math.prod(want) == got[0]):
            packed = f" ({packing} samples packed)" if packing > 1 else ""
            raise SpecError(
                f"the generator makes {describe(self.data_shape)} samples, so the discriminator must read "
                f"{describe(want)}{packed}, but its spec starts with {describe(got)}; start it with "
                f"{'x'.join(map(str, want))}"
            )
        if math.prod(discriminator.output_shape) != 1:
            raise SpecError(
                f"the discriminator ends in {describe(discriminator.output_shape)}; it must give one score per "
                "sample (the probability that it is real): end its spec with d1"
            )

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n noise vectors (n, *noise_shape) on the weights' device and dtype."""
        weight = next(self.generator.parameters())
        shape = (n, *self.noise_shape)
        if self.noise_kind == "uniform":
            z = torch.rand(shape, generator=generator, device=weight.device, dtype=weight.dtype)
            return 2 * z - 1
        return torch.randn(shape, generator=generator, device=weight.device, dtype=weight.dtype)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, z: Tensor | None = None) -> Tensor:
        """n generated samples (n, *data_shape) in eval mode (``z``: given noise instead)."""
        z = self.noise(n, generator) if z is None else z
        with eval_mode(self.generator):
            return self.generator(z)

    def scores(self, x: Tensor) -> Tensor:
        """Raw discriminator scores a (N / m,) of samples x (N, *data_shape), packed m at a time."""
        from capas.objectives.gan_losses import pack

        return self.discriminator.logits(pack(x, self.packing)).reshape(-1)

    def forward(self, z: Tensor) -> Tensor:
        """G(z): samples (N, *data_shape)."""
        return self.generator(z)

    def check_data(self, x: Tensor) -> Tensor:
        """``x`` (N, *data_shape) (a vector form of the same size is reshaped); SpecError otherwise."""
        if tuple(x.shape[1:]) == self.data_shape:
            return x
        if x.dim() >= 2 and math.prod(x.shape[1:]) == math.prod(self.data_shape):
            return x.reshape(len(x), *self.data_shape)
        raise SpecError(
            f"the generator makes samples of shape {describe(self.data_shape)} but the data's are "
            f"{describe(tuple(x.shape[1:]))}; end the generator's spec with {describe(tuple(x.shape[1:]))} outputs"
        )

    def config(self) -> dict[str, Any]:
        return {
            "model": MODEL_KIND,
            "format": CONFIG_FORMAT,
            "generator": self.generator.config(),
            "discriminator": self.discriminator.config(),
            "noise": self.noise_kind,
            "packing": self.packing,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GAN:
        keys = {"model", "format", "generator", "discriminator", "noise", "packing"}
        if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT or set(config) != keys:
            raise SpecError(
                f"not a capas GAN config (format {CONFIG_FORMAT} with keys {sorted(keys)}): {config!r:.200}"
            )
        return cls(
            Network.from_config(config["generator"]),
            Network.from_config(config["discriminator"]),
            config["noise"],
            config["packing"],
        )


def build_gan(
    generator: str | list | dict,
    discriminator: str | list | dict,
    *,
    noise: str = "gaussian",
    packing: int = 1,
    act: str | None = None,
    discriminator_act: str | None = None,
    init: str | None = None,
    seed: int | None = None,
) -> GAN:
    """A GAN from two specs: ``build_gan("8-128-128-2", "2-128-128-1")``.

    The generator's output is linear unless its last token names an activation
    (``...:tanh`` for images scaled to [-1, 1], ``:sigmoid`` for [0, 1]); the discriminator
    ends in one sigmoid unit, D(x). ``act`` is the generator's hidden activation (default
    relu), ``discriminator_act`` the discriminator's (default ``leaky_relu``, DCGAN's choice).
    With ``packing`` m the discriminator's spec reads m samples (``2m`` features on the 2-D
    toys). ``seed`` fixes both initialisations (generator from ``seed``, discriminator from
    ``seed + 1``).
    """
    g = build(generator, act=act, loss="mse", init=init, seed=seed)
    d = build(
        discriminator, act=discriminator_act or "leaky_relu", loss="binary_cross_entropy", init=init,
        seed=None if seed is None else seed + 1,
    )  # fmt: skip
    return GAN(g, d, noise=noise, packing=packing)
