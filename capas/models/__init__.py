"""Networks built from the compact notation, a layer list or a TOML ``[model]`` table."""

from capas.models import autoencoder, dbn, rbm  # noqa: F401  (registers the autoencoder, dbn and rbm kinds)
from capas.models.network import OUTPUT_FOR_LOSS, Network, build, build_from_toml

__all__ = ["OUTPUT_FOR_LOSS", "Network", "build", "build_from_toml"]
