"""Autoencoders: undercomplete, denoising, sparse; tied or untied decoder weights.

The encoder is any module the notation can build (``Autoencoder.from_spec("64-32-16")``)
or an existing layer (greedy pre-training trains a network's own ``Dense`` layer in
place). A chain of ``Dense`` layers gets a mirrored decoder (optionally tied:
decoder weight = encoder weight transposed); any other encoder gets one ``Dense``
layer from the flattened code back to the input.

Objective for a batch x (B, *input_shape), with x~ the corrupted input:
    L = mean((decode(encode(x~)) - x)^2) + beta * penalty(code)
    penalty = sum_j KL(rho || rho_hat_j)        (sparsity="kl", rho_hat_j = mean code unit j)
            = mean_b sum_j |code_bj|            (sparsity="l1")

Training is ``capas.fit(autoencoder, x, ...)``: the one training loop runs
``capas.tasks.AutoencoderTask``, which minimises :meth:`Autoencoder.losses`'s objective
with a ``torch.optim`` optimizer, corruption drawn from the run's ``noise`` generator.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from capas.errors import DataError, SpecError
from capas.layers import Dense, get_activation
from capas.models.dbn import dense_layers
from capas.models.modes import eval_mode
from capas.models.network import Network
from capas.models.registry import register

CORRUPTIONS = ("none", "mask", "gaussian")
SPARSITY = ("none", "kl", "l1")


class TiedDense(nn.Module):
    """Decoder layer sharing an encoder ``Dense``'s weights: s = g(W_enc^T x + b).

    x (B, out_features of the source) -> (B, in_features of the source).
    """

    def __init__(self, source: Dense, activation: str | dict = "linear") -> None:
        super().__init__()
        self.source = source
        self.activation = get_activation(activation)
        self.bias = nn.Parameter(torch.zeros(source.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(F.linear(x, self.source.weight.t(), self.bias))  # (B, in)


def mirror_decoder(encoder: Sequence[Dense], output_act: str, tied: bool) -> nn.Sequential:
    """Dense encoder layers d_0..d_{n-1} -> decoder d'_{n-1}..d'_0, d'_i mapping d_i's output
    back to its input with the activation of the layer that produced that input."""
    decoder = []
    for i in reversed(range(len(encoder))):
        layer = encoder[i]
        act = output_act if i == 0 else encoder[i - 1].activation.config()
        decoder.append(TiedDense(layer, act) if tied else Dense(layer.out_features, layer.in_features, act))
    return nn.Sequential(*decoder)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Layers built inside draw their initial weights from ``seed`` (torch's global
    generator is forked and put back as it was); no-op for None."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@register("autoencoder")
class Autoencoder(nn.Module):
    """encode: x (B, *input_shape) -> code (B, ...); decode: code -> x^ (B, *input_shape).

    ``corruption`` "mask" zeroes each input with probability ``noise``; "gaussian" adds
    N(0, noise^2) noise (denoising autoencoder). ``sparsity`` "kl" pulls each code unit's
    mean activation to ``sparsity_target`` (needs a sigmoid code), "l1" penalises |code|;
    both weighted by ``sparsity_weight``. ``seed`` fixes the default decoder's initial
    weights (None: torch's global generator draws them).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        tied: bool = False,
        output_act: str = "sigmoid",
        corruption: str = "none",
        noise: float = 0.0,
        sparsity: str = "none",
        sparsity_target: float = 0.05,
        sparsity_weight: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if corruption not in CORRUPTIONS or sparsity not in SPARSITY:
            raise SpecError(
                f"corruption must be one of {CORRUPTIONS} and sparsity one of {SPARSITY}, "
                f"got {corruption!r} and {sparsity!r}"
            )
        if noise < 0 or (corruption == "mask" and noise >= 1):
            raise SpecError(f"noise is a masking probability in [0, 1) or a Gaussian std >= 0, got {noise}")
        if sparsity == "kl" and not 0 < sparsity_target < 1:
            raise SpecError(f"sparsity_target is a mean activation in (0, 1), got {sparsity_target}")
        self.encoder = encoder
        self.input_shape = tuple(input_shape or getattr(encoder, "input_shape", None) or _dense_input(encoder))
        self.corruption, self.noise = corruption, noise
        self.sparsity, self.sparsity_target, self.sparsity_weight = sparsity, sparsity_target, sparsity_weight
        dense = _dense_chain(encoder)
        if sparsity == "kl" and dense and dense[-1].activation.name != "sigmoid":
            raise SpecError(
                "the KL sparsity penalty needs code units in (0, 1): give the encoder's last "
                f"layer a sigmoid activation (it has {dense[-1].activation.name}) or use sparsity='l1'"
            )
        self.tied, self.output_act, self.seed = tied, output_act, seed
        self.custom_decoder = decoder is not None
        if decoder is None:
            with seeded(seed):
                decoder = self._default_decoder(dense, output_act, tied)
        elif tied:
            raise SpecError("tied=True builds its own decoder from the encoder's weights; do not pass a decoder")
        self.decoder = decoder

    @classmethod
    def from_spec(cls, spec: str, *, act: str = "sigmoid", seed: int | None = None, **options) -> Autoencoder:
        """Encoder built by ``capas.models.build(spec, seed=seed)`` with ``act`` on every
        layer, code included; ``options`` as for the constructor."""
        from capas.models import build

        return cls(build(spec, act=act, loss="mse", output_act=act, seed=seed), seed=seed, **options)

    def config(self) -> dict[str, Any]:
        """JSON-able description (``model.json``): the encoder (a ``Network``'s config or a
        ``Dense`` layer's) and the settings; :meth:`from_config` rebuilds it. An encoder of
        another class or a decoder passed in cannot be described: the record says
        ``"rebuildable": False`` (run directories save its weights all the same)."""
        if isinstance(self.encoder, Network):
            encoder = {"network": self.encoder.config()}
        elif isinstance(self.encoder, Dense):
            encoder = {"dense": self.encoder.config()}
        else:
            encoder = None
        if encoder is None or self.custom_decoder:
            return {"model": "autoencoder", "rebuildable": False, "class": type(self.encoder).__qualname__}
        return {
            "model": "autoencoder",
            "encoder": encoder,
            "input_shape": list(self.input_shape),
            "tied": self.tied,
            "output_act": self.output_act,
            "corruption": self.corruption,
            "noise": self.noise,
            "sparsity": self.sparsity,
            "sparsity_target": self.sparsity_target,
            "sparsity_weight": self.sparsity_weight,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Autoencoder:
        """The autoencoder ``config()`` describes (fresh weights, from its seed); SpecError
        for anything else."""
        keys = {
            "model",
            "encoder",
            "input_shape",
            "tied",
            "output_act",
            "corruption",
            "noise",
            "sparsity",
            "sparsity_target",
            "sparsity_weight",
            "seed",
        }
        if config.get("model") != "autoencoder" or set(config) != keys:
            raise SpecError(f"not a rebuildable autoencoder config (keys {sorted(keys)}): {config!r:.200}")
        options = {k: config[k] for k in keys - {"model", "encoder"}}
        encoder_config = config["encoder"]
        if "network" in encoder_config:
            encoder = Network.from_config(encoder_config["network"], seed=config["seed"])
        elif "dense" in encoder_config:
            layer = encoder_config["dense"]
            with seeded(config["seed"]):
                encoder = Dense(
                    layer["in_features"], layer["out_features"], layer["activation"], layer["init"], layer["bias"]
                )
        else:
            raise SpecError(f"an autoencoder's encoder is a network or a dense layer, got {encoder_config!r:.200}")
        return cls(encoder, **options)

    def _default_decoder(self, dense: list[Dense], output_act: str, tied: bool) -> nn.Module:
        if dense:
            return mirror_decoder(dense, output_act, tied)
        if tied:
            raise SpecError("tied weights need an encoder made only of Dense layers; use tied=False")
        # a probe of one sample: batch norm must use its running statistics
        with eval_mode(self.encoder), torch.no_grad():
            code = self.encoder(torch.zeros(1, *self.input_shape))  # (1, ...)
        return Dense(code[0].numel(), math.prod(self.input_shape), output_act)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code.flatten(1)).reshape(code.shape[0], *self.input_shape)  # (B, *input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The clean reconstruction x^ of x (no corruption)."""
        return self.decode(self.encode(x))

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x~: masking noise (each input zeroed with probability ``noise``) or additive Gaussian noise."""
        if self.corruption == "mask":
            keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= self.noise
            return x * keep
        if self.corruption == "gaussian":
            return x + self.noise * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x

    def sparsity_penalty(self, code: torch.Tensor) -> torch.Tensor:
        """beta * (sum of KL(rho || rho_hat_j) or mean L1 of the code); 0 without sparsity."""
        code = code.flatten(1)  # (B, C)
        if self.sparsity == "kl":
            rho, rho_hat = self.sparsity_target, code.mean(0).clamp(1e-6, 1 - 1e-6)  # (C,)
            kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
            return self.sparsity_weight * kl.sum()
        if self.sparsity == "l1":
            return self.sparsity_weight * code.abs().sum(1).mean()
        return code.new_zeros(())

    def losses(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective, reconstruction error), both 0-dim: reconstruct clean x (B, *input_shape)
        from x~ corrupted with ``generator``'s draws; objective = that mean squared error
        plus the sparsity penalty of the code."""
        code = self.encode(self.corrupt(x, generator))
        error = F.mse_loss(self.decode(code), x)
        return error + self.sparsity_penalty(code), error

    def objective(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss (0-dim): reconstruct clean x from corrupted x, plus the penalty."""
        return self.losses(x, generator)[0]

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor) -> float:
        """Mean squared error per input unit of the clean reconstruction."""
        return F.mse_loss(self(x), x).item()

    def check_data(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, ...) reshaped to (N, *input_shape) in the parameters' device and dtype;
        DataError when it has no samples or the wrong number of features per sample."""
        param = next(self.parameters())
        x = torch.as_tensor(x).to(device=param.device, dtype=param.dtype)
        if x.dim() < 2 or x[0].numel() != math.prod(self.input_shape) or x.shape[0] == 0:
            raise DataError(
                f"the autoencoder expects a non-empty batch of inputs of shape {self.input_shape}, "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], *self.input_shape)


def _dense_chain(encoder: nn.Module) -> list[Dense]:
    """The encoder's Dense layers if it is nothing but Dense layers, else []."""
    dense = dense_layers(encoder)
    n_layers = 1 if isinstance(encoder, Dense) else len(getattr(encoder, "layers", []))
    return dense if dense and len(dense) == n_layers else []


def _dense_input(encoder: nn.Module) -> tuple[int, ...]:
    if isinstance(encoder, Dense):
        return (encoder.in_features,)
    raise SpecError("cannot tell the encoder's input shape; pass input_shape=(...) to Autoencoder")
