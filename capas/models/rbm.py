"""Restricted Boltzmann machines trained by contrastive divergence (CD-k and PCD-k).

An RBM is a bipartite energy model over visible units ``v`` (V,) and binary hidden units
``h`` (H,) with weights ``W`` (H, V) -- stored like ``nn.Linear``/``Dense`` so a trained
RBM drops straight into a sigmoid layer of a ``Network``:

    Bernoulli visible:  E(v, h) = -b.v - c.h - h.W.v
    Gaussian visible:   E(v, h) = |v - b|^2 / 2 - c.h - h.W.v     (unit variance)

    P(h_j = 1 | v) = sigmoid(W v + c)_j
    P(v_i = 1 | h) = sigmoid(W^T h + b)_i      (Gaussian: v ~ N(W^T h + b, 1))

Sampling always draws from a seeded ``torch.Generator`` and compares with uniforms
(``torch.rand(..., generator=g) < p``), so a run is reproducible and a test can replay
the exact draws.

Training is ``capas.fit(rbm, x, lr=0.1, ...)``: the one training loop runs
``capas.tasks.ContrastiveDivergenceTask``, which applies :class:`ContrastiveDivergence`
(the update rule, below) to each batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from capas.errors import DataError, SpecError
from capas.models.registry import register

VISIBLE_UNITS = ("bernoulli", "gaussian")


@register("rbm")
class RBM(nn.Module):
    """A restricted Boltzmann machine with ``n_visible`` visible and ``n_hidden`` hidden units.

    Parameters (no autograd: CD is not the gradient of a loss we can write down):
    ``weight`` (H, V), ``hidden_bias`` (H,) and ``visible_bias`` (V,). The initial weights
    are drawn from a generator seeded with ``seed`` (torch's global generator is not used).
    """

    def __init__(self, n_visible: int, n_hidden: int, visible: str = "bernoulli", seed: int = 0) -> None:
        super().__init__()
        if visible not in VISIBLE_UNITS:
            raise SpecError(f"unknown visible unit type {visible!r}; use one of {VISIBLE_UNITS}")
        if n_visible < 1 or n_hidden < 1:
            raise SpecError(f"an RBM needs at least one visible and one hidden unit, got {n_visible}x{n_hidden}")
        self.n_visible, self.n_hidden, self.visible, self.seed = n_visible, n_hidden, visible, seed
        self.weight = nn.Parameter(torch.empty(n_hidden, n_visible), requires_grad=False)
        self.hidden_bias = nn.Parameter(torch.empty(n_hidden), requires_grad=False)
        self.visible_bias = nn.Parameter(torch.empty(n_visible), requires_grad=False)
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def config(self) -> dict[str, Any]:
        """JSON-able description (``model.json``); :meth:`from_config` rebuilds the RBM."""
        return {
            "model": "rbm",
            "n_visible": self.n_visible,
            "n_hidden": self.n_hidden,
            "visible": self.visible,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RBM:
        """The RBM ``config()`` describes, with its initial weights; SpecError for anything else."""
        keys = {"model", "n_visible", "n_hidden", "visible", "seed"}
        if config.get("model") != "rbm" or set(config) != keys:
            raise SpecError(f'not an RBM config (keys {sorted(keys)}, "model": "rbm"): {config!r:.200}')
        return cls(config["n_visible"], config["n_hidden"], config["visible"], config["seed"])

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Small random weights N(0, 0.01^2) drawn from ``generator``, zero biases (Hinton's
        practical guide)."""
        with torch.no_grad():
            self.weight.normal_(0.0, 0.01, generator=generator)
            self.hidden_bias.zero_()
            self.visible_bias.zero_()

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, visible={self.visible!r}"

    # ----------------------------------------------------------------- conditionals
    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """P(h = 1 | v): (B, V) -> (B, H)."""
        return torch.sigmoid(torch.addmm(self.hidden_bias, v, self.weight.t()))  # (B, H)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        """P(v = 1 | h) for Bernoulli units, the mean E[v | h] for Gaussian ones: (B, H) -> (B, V)."""
        mean = torch.addmm(self.visible_bias, h, self.weight)  # (B, V)
        return torch.sigmoid(mean) if self.visible == "bernoulli" else mean

    def sample_hidden(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Binary hidden states h ~ P(h | v), one uniform draw (B, H) per call."""
        p = self.hidden_probs(v)  # (B, H)
        return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype)

    def sample_visible(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Visible states v ~ P(v | h): binary (uniform compare) or mean + N(0, 1) noise."""
        p = self.visible_probs(h)  # (B, V)
        if self.visible == "bernoulli":
            return (torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype)
        return p + torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)

    def gibbs(self, v: torch.Tensor, steps: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run ``steps`` alternating Gibbs steps v -> h -> v from ``v`` (B, V); returns the last v."""
        for _ in range(steps):
            v = self.sample_visible(self.sample_hidden(v, generator), generator)
        return v

    @torch.no_grad()
    def sample(
        self, n: int, steps: int = 1000, generator: torch.Generator | None = None, start: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``n`` samples (n, V) from Gibbs chains started at ``start`` or at random states."""
        if start is None:
            like = _like(self.weight)
            if self.visible == "bernoulli":
                start = torch.rand(n, self.n_visible, generator=generator, **like).lt_(0.5)
            else:
                start = torch.randn(n, self.n_visible, generator=generator, **like)
        return self.gibbs(start, steps, generator)

    # ------------------------------------------------------------------- energies
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) for a batch of joint states: (B, V), (B, H) -> (B,)."""
        interaction = ((h @ self.weight) * v).sum(1)  # (B,)
        if self.visible == "bernoulli":
            visible_term = -(v @ self.visible_bias)
        else:
            visible_term = 0.5 * ((v - self.visible_bias) ** 2).sum(1)
        return visible_term - h @ self.hidden_bias - interaction

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), summed out in closed form: (B, V) -> (B,)."""
        hidden_term = F.softplus(torch.addmm(self.hidden_bias, v, self.weight.t())).sum(1)  # (B,)
        if self.visible == "bernoulli":
            return -(v @ self.visible_bias) - hidden_term
        return 0.5 * ((v - self.visible_bias) ** 2).sum(1) - hidden_term

    # ----------------------------------------------------------------- monitoring
    @torch.no_grad()
    def reconstruction_error(self, v: torch.Tensor) -> float:
        """Mean squared error per visible unit of the mean-field reconstruction v -> p(h) -> p(v)."""
        return F.mse_loss(self.visible_probs(self.hidden_probs(v)), v).item()

    @torch.no_grad()
    def pseudo_log_likelihood(
        self, v: torch.Tensor, generator: torch.Generator | None = None, flip: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Stochastic pseudo-log-likelihood per sample (B,), as scikit-learn's ``score_samples``.

        One visible unit i per sample (``flip`` (B,), drawn at random when None) is flipped:
        ``V * log sigmoid(F(v with v_i flipped) - F(v))``.
        """
        if self.visible != "bernoulli":
            raise SpecError("the pseudo-log-likelihood is defined for Bernoulli visible units only")
        if flip is None:
            flip = torch.randint(0, self.n_visible, (v.shape[0],), generator=generator, device=v.device)  # (B,)
        rows = torch.arange(v.shape[0], device=v.device)
        flipped = v.clone()
        flipped[rows, flip] = 1.0 - flipped[rows, flip]
        return self.n_visible * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))

    # ------------------------------------------------------------------- training data
    def check_data(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten (N, *shape) to (N, V) in the RBM's device and dtype; DataError for data this
        RBM cannot model (wrong width, no samples, values outside [0, 1] for Bernoulli units)."""
        x = torch.as_tensor(x).to(device=self.weight.device, dtype=self.weight.dtype)
        if x.dim() == 0 or x.shape[0] == 0:
            raise DataError("no training samples: pass a non-empty (N, V) tensor")
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.n_visible:
            raise DataError(
                f"the RBM has {self.n_visible} visible units but the data has {x.shape[1]} "
                "features per sample; build the RBM with n_visible equal to the input width"
            )
        if self.visible == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise DataError(
                "Bernoulli visible units need data in [0, 1]; rescale it "
                "(e.g. divide pixels by their maximum) or use visible='gaussian' on standardized data"
            )
        return x

    @torch.no_grad()
    def init_visible_bias(self, x: torch.Tensor) -> None:
        """b_i = log(p_i / (1 - p_i)) for Bernoulli units, the data mean for Gaussian ones
        (Hinton's practical guide), from the training inputs ``x`` (N, V)."""
        mean = x.mean(0)  # (V,)
        if self.visible == "bernoulli":
            self.visible_bias.copy_(torch.logit(mean.clamp(1e-3, 1 - 1e-3)))
        else:
            self.visible_bias.copy_(mean)


@dataclass
class CDOptions:
    """Settings of one contrastive-divergence update (see :class:`ContrastiveDivergence`)."""

    lr: float = 0.1
    k: int = 1
    persistent: bool = False
    momentum: float = 0.0
    weight_decay: float = 0.0
    sparsity_target: float | None = None
    sparsity_cost: float = 0.0
    batch_size: int = 100

    def __post_init__(self) -> None:
        if self.k < 1:
            raise SpecError(f"CD-k needs k >= 1 Gibbs steps, got k={self.k}")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise SpecError(
                "CD needs lr > 0, 0 <= momentum < 1 and weight_decay >= 0, got "
                f"lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}"
            )
        if self.sparsity_target is not None and not 0 < self.sparsity_target < 1:
            raise SpecError(f"sparsity_target is a hidden activation probability in (0, 1), got {self.sparsity_target}")


class ContrastiveDivergence:
    """The CD-k / PCD-k update, on buffers allocated once and in-place ops (no autograd).

    For a batch v0 (B, V):
        p0 = P(h | v0);  h ~ p0  (PCD: h = the persistent chains' hidden states)
        k times: v ~ P(v | h);  pk = P(h | v);  h ~ pk (skipped after the last step for CD)
        dW = lr * (p0^T v0 / B - pk^T vk / C) - lr * weight_decay * W
        db = lr * (mean(v0) - mean(vk));   dc = lr * (mean(p0) - mean(pk))
    with C the number of negative chains (B for CD). Momentum keeps a velocity per
    parameter; the sparsity target q* pulls a running mean q of mean(p0) towards it:
    dc += lr * cost * (q* - q), dW += lr * cost * (q* - q) mean(v0)^T.

    Random draws, in order, per step: ``rand(B, H)`` for h (CD only), then for each Gibbs
    step ``rand(B, V)`` (``randn`` for Gaussian units) for v and ``rand(B, H)`` for h.
    """

    def __init__(self, rbm: RBM, options: CDOptions, generator: torch.Generator | None = None) -> None:
        self.rbm, self.options, self.generator = rbm, options, generator
        n, H, V = options.batch_size, rbm.n_hidden, rbm.n_visible
        like = dict(device=rbm.weight.device, dtype=rbm.weight.dtype)
        self._p0 = torch.empty(n, H, **like)
        self._pk = torch.empty(n, H, **like)
        self._h = torch.empty(n, H, **like)
        self._pv = torch.empty(n, V, **like)
        self._v = torch.empty(n, V, **like)
        self._chains: torch.Tensor | None = None  # (C, H) persistent hidden states (PCD)
        self._velocity = [torch.zeros_like(p) for p in (rbm.weight, rbm.hidden_bias, rbm.visible_bias)]
        self._mean_activity = torch.full((H,), options.sparsity_target or 0.0, **like)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What the next steps depend on besides the RBM and the generator: the momentum
        velocities, the running mean hidden activity (sparsity) and the PCD chains (C, H)."""
        names = ("velocity/weight", "velocity/hidden_bias", "velocity/visible_bias")
        tensors = dict(zip(names, self._velocity))
        tensors["mean_activity"] = self._mean_activity
        if self._chains is not None:
            tensors["chains"] = self._chains
        return tensors

    @torch.no_grad()
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state_tensors` (a checkpoint read back, possibly on the CPU)."""
        for name, buffer in self.state_tensors().items():
            if name != "chains":
                buffer.copy_(tensors[name])
        chains = tensors.get("chains")
        self._chains = None if chains is None else chains.to(**_like(self._velocity[0]))

    @torch.no_grad()
    def step(self, v0: torch.Tensor) -> None:
        """One CD-k update of the RBM's parameters from the batch ``v0`` (B, V), B <= batch_size."""
        rbm, opt, g = self.rbm, self.options, self.generator
        W, c, b = rbm.weight, rbm.hidden_bias, rbm.visible_bias
        B = v0.shape[0]
        p0 = torch.addmm(c, v0, W.t(), out=self._p0[:B]).sigmoid_()  # (B, H)
        if opt.persistent:
            if self._chains is None:
                self._chains = torch.rand(p0.shape, generator=g, **_like(p0)).lt_(p0)
            h = self._chains  # (C, H)
        else:
            h = torch.rand(p0.shape, generator=g, out=self._h[:B]).lt_(p0)  # (B, H)
        C = h.shape[0]
        pv, v, pk = self._pv[:C], self._v[:C], self._pk[:C]
        for step in range(opt.k):
            torch.addmm(b, h, W, out=pv)  # (C, V)
            if rbm.visible == "bernoulli":
                torch.rand(pv.shape, generator=g, out=v).lt_(pv.sigmoid_())
            else:
                torch.randn(pv.shape, generator=g, out=v).add_(pv)
            torch.addmm(c, v, W.t(), out=pk).sigmoid_()  # (C, H)
            if opt.persistent or step < opt.k - 1:
                torch.rand(pk.shape, generator=g, out=h).lt_(pk)
        self._apply_update(v0, p0, v, pk)

    def _apply_update(self, v0: torch.Tensor, p0: torch.Tensor, vk: torch.Tensor, pk: torch.Tensor) -> None:
        rbm, opt = self.rbm, self.options
        params = (rbm.weight, rbm.hidden_bias, rbm.visible_bias)
        targets = self._velocity if opt.momentum > 0 else params
        if opt.momentum > 0:
            for velocity in self._velocity:
                velocity.mul_(opt.momentum)
        dW, dc, db = targets
        lr_pos, lr_neg = opt.lr / v0.shape[0], opt.lr / vk.shape[0]
        if opt.weight_decay > 0:  # first: it decays W before this step's update (dW may be W itself)
            dW.add_(rbm.weight, alpha=-opt.lr * opt.weight_decay)
        dW.addmm_(p0.t(), v0, alpha=lr_pos).addmm_(pk.t(), vk, alpha=-lr_neg)  # (H, V)
        dc.add_(p0.sum(0), alpha=lr_pos).add_(pk.sum(0), alpha=-lr_neg)  # (H,)
        db.add_(v0.sum(0), alpha=lr_pos).add_(vk.sum(0), alpha=-lr_neg)  # (V,)
        if opt.sparsity_target is not None and opt.sparsity_cost > 0:
            self._mean_activity.mul_(0.9).add_(p0.mean(0), alpha=0.1)
            pull = (opt.sparsity_target - self._mean_activity) * (opt.lr * opt.sparsity_cost)  # (H,)
            dc.add_(pull)
            dW.addr_(pull, v0.mean(0))
        if opt.momentum > 0:
            for param, velocity in zip(params, self._velocity):
                param.add_(velocity)


def _like(t: torch.Tensor) -> dict:
    return {"device": t.device, "dtype": t.dtype}
