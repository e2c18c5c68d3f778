"""Networks built from the compact notation, a layer list or a TOML ``[model]`` table."""

from capas.models import autoencoder, dbn, gan, rbm, seq2seq  # noqa: F401  (registers those model kinds)
from capas.models.network import OUTPUT_FOR_LOSS, Network, build, build_from_toml

__all__ = ["OUTPUT_FOR_LOSS", "Network", "build", "build_from_toml"]
