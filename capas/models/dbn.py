"""Deep belief networks: RBMs stacked and trained greedily, one layer at a time (Hinton 2006).

RBM l is trained on the hidden probabilities P(h | v) of RBM l-1 for the training data
(the lower layers stay fixed), so every layer learns at its own pace and unlabelled data
can be used. ``capas.pretrain(x, dbn)`` trains it: each RBM is one stage on the training
loop, with its own run directory and exact resume. The stack then becomes a sigmoid MLP
with the same weights (:meth:`DBN.to_network`) for fine-tuning by backpropagation, or
generates samples by Gibbs sampling in the top RBM followed by one top-down pass
(:meth:`DBN.sample`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from capas.errors import SpecError
from capas.models.rbm import RBM
from capas.models.registry import register


@register("dbn")
class DBN(nn.Module):
    """A stack of RBMs of sizes ``sizes`` (e.g. [784, 500, 500]): RBM l is sizes[l] x sizes[l+1].

    Only the first RBM may have Gaussian visible units (standardized real inputs); the
    upper ones see hidden probabilities in [0, 1] and are Bernoulli. RBM l draws its
    initial weights from ``seed + l``.
    """

    def __init__(self, sizes: Sequence[int], visible: str = "bernoulli", seed: int = 0) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise SpecError(f"a DBN needs an input size and at least one hidden size, got {list(sizes)}")
        self.sizes, self.visible, self.seed = [int(s) for s in sizes], visible, seed
        self.rbms = nn.ModuleList(
            RBM(n_in, n_out, visible if i == 0 else "bernoulli", seed=seed + i)
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        )

    def config(self) -> dict[str, Any]:
        """JSON-able description (``model.json``); :meth:`from_config` rebuilds the DBN."""
        return {"model": "dbn", "sizes": self.sizes, "visible": self.visible, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DBN:
        """The DBN ``config()`` describes, with its initial weights; SpecError for anything else."""
        keys = {"model", "sizes", "visible", "seed"}
        if config.get("model") != "dbn" or set(config) != keys:
            raise SpecError(f'not a DBN config (keys {sorted(keys)}, "model": "dbn"): {config!r:.200}')
        return cls(config["sizes"], config["visible"], config["seed"])

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The top layer's hidden probabilities: (N, sizes[0]) -> (N, sizes[-1])."""
        h = x.reshape(x.shape[0], -1)
        for rbm in self.rbms:
            h = rbm.hidden_probs(h)
        return h

    @torch.no_grad()
    def sample(self, n: int, steps: int = 200, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples (n, sizes[0]): ``steps`` Gibbs steps in the top RBM, then a top-down pass."""
        return self.chains(n, [steps], generator)[0]

    @torch.no_grad()
    def chains(self, n: int, snapshots: Sequence[int], generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``n`` Gibbs chains of the top RBM seen in input space after each count of ``snapshots``
        (increasing): a list of (n, sizes[0]) tensors.

        The chains start from binary states drawn from the top RBM's visible biases; below
        the top the DBN is a directed sigmoid belief net, so each layer takes P(v | h) of
        its RBM (probabilities, not binary states, for the image shown to the user). With
        a single RBM the image is P(v | h) of the chain's last hidden state.
        """
        if any(later <= earlier for earlier, later in zip([0, *snapshots], snapshots)):
            raise SpecError(f"snapshots are strictly increasing Gibbs step counts >= 1, got {list(snapshots)}")
        top = self.rbms[-1]
        p = torch.sigmoid(top.visible_bias).expand(n, -1)  # (n, sizes[-2])
        v = (torch.rand(p.shape, generator=generator, device=p.device) < p).to(p.dtype)
        images, done = [], 0
        for count in snapshots:
            v = top.gibbs(v, count - done - 1, generator)
            h = top.sample_hidden(v, generator)  # (n, sizes[-1]): the last Gibbs step, kept apart
            v = top.sample_visible(h, generator)  # (n, sizes[-2])
            done = count
            down = v if len(self.rbms) > 1 else top.visible_probs(h)
            for rbm in reversed(self.rbms[:-1]):
                down = rbm.visible_probs(down)
            images.append(down)
        return images

    def to_network(self, n_outputs: int, *, loss: str = "cross_entropy", seed: int = 0):
        """A capas ``Network`` sizes[0]-...-sizes[-1]-n_outputs with sigmoid hidden layers.

        The hidden Dense layers get the RBMs' weights and hidden biases; the output layer
        keeps the builder's fresh initialisation (seeded by ``seed``).
        """
        from capas.models import build

        spec = "-".join(str(s) for s in [*self.sizes, n_outputs])
        network = build(spec, act="sigmoid", loss=loss, seed=seed)
        self.copy_into(network)
        return network

    @torch.no_grad()
    def copy_into(self, network: nn.Module) -> None:
        """Write the RBMs' weights into the first ``len(rbms)`` Dense layers of ``network``."""
        dense = dense_layers(network)
        if len(dense) < len(self.rbms):
            raise SpecError(f"the network has {len(dense)} Dense layers but the DBN has {len(self.rbms)} RBMs")
        for rbm, layer in zip(self.rbms, dense):
            if tuple(layer.weight.shape) != tuple(rbm.weight.shape):
                raise SpecError(
                    f"cannot copy an RBM of {rbm.n_visible}x{rbm.n_hidden} into a Dense layer "
                    f"with weight {tuple(layer.weight.shape)}; the sizes must match"
                )
            layer.weight.copy_(rbm.weight)
            layer.bias.copy_(rbm.hidden_bias)


def dense_layers(network: nn.Module) -> list[nn.Module]:
    """The ``Dense`` layers among ``network.layers`` (or the module itself), in order."""
    from capas.layers import Dense

    if isinstance(network, Dense):
        return [network]
    return [layer for layer in getattr(network, "layers", []) if isinstance(layer, Dense)]
