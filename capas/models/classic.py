"""The classic single-layer learners: Hebb's rule, Rosenblatt's perceptron and Widrow-Hoff's Adaline.

Each is a ``Dense`` layer (``weight (out, in)``, ``bias (out,)``, starting at zero) with
its own 1949-1960 learning rule instead of backpropagation:

* Hebb (course file 001: "1949: Hebb propone una regla que modela el aprendizaje en las
  neuronas"): a connection grows when the units at both ends are active together. In its
  supervised form the output is clamped to the target t, so for each sample
  W += rho t x^T and b += rho t, whatever the unit currently outputs: it never looks at
  its own error, so it learns bipolar AND in one epoch (W = (2, 2), b = -2) but cannot
  correct itself where inputs are correlated.

* Perceptron: y = g(W x + b) with g = ``sgn`` (targets +-1) or ``step`` (targets 0/1);
  for each sample, W += rho (t - y) x^T and b += rho (t - y). It only moves on mistakes
  and stops after an epoch without any; on linearly separable data it converges in at
  most (R / gamma)^2 updates (Novikoff), otherwise (XOR) it never stops.
* Adaline: the same linear unit trained on its *linear* output phi = W x + b by least
  mean squares (the delta rule): online W += rho (t - phi) x^T per sample, or batch
  W += (rho / N) sum_n (t_n - phi_n) x_n^T. It converges to the least-squares solution;
  it classifies with sgn(phi).

Their ``config()`` is the underlying ``Dense`` layer's: it rebuilds the same forward pass;
the learning rule is the class's ``fit``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from capas.errors import DataError, SpecError, TrainingError
from capas.layers.activations import get_activation
from capas.layers.dense import Dense


def _training_pair(layer: Dense, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """x as (N, in) and t as (N, out), on the layer's device and in its dtype, or a DataError."""
    x = _like_weights(layer, x)
    t = _like_weights(layer, t)
    if t.dim() == 1:
        t = t.unsqueeze(1)  # (N, 1)
    if x.dim() < 2 or x[0].numel() != layer.in_features or t.shape != (x.shape[0], layer.out_features):
        raise DataError(
            f"{type(layer).__name__}({layer.in_features} -> {layer.out_features}) needs x (N, {layer.in_features}) "
            f"and t (N,) or (N, {layer.out_features}); got x {tuple(x.shape)} and t {tuple(t.shape)}"
        )
    return x.flatten(1), t


def _like_weights(layer: Dense, values: Tensor) -> Tensor:
    """A tensor or array on the device and in the dtype of ``layer.weight``."""
    return torch.as_tensor(values).to(device=layer.weight.device, dtype=layer.weight.dtype)


def _order(n: int, shuffle: bool, generator: torch.Generator) -> list[int]:
    return torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))


class Hebb(Dense):
    """A layer of threshold units (``sgn``) trained by Hebb's rule on bipolar data."""

    def __init__(self, in_features: int, out_features: int = 1) -> None:
        super().__init__(in_features, out_features, activation="sgn", init="zeros")

    def fit(self, x: Tensor, t: Tensor, epochs: int = 1, lr: float = 1.0) -> list[Tensor]:
        """W += rho t x^T, b += rho t for each sample in order; returns the weights (out, in)
        after each epoch. x (N, in_features), t (N,) or (N, out_features), both -1/+1 for
        the classic Hebb net (0/1 data stop the rule from learning where a value is 0)."""
        x, t = _training_pair(self, x, t)
        weights = []
        with torch.no_grad():
            for _ in range(epochs):
                for n in range(len(x)):
                    self.weight.addr_(t[n], x[n], alpha=lr)  # W += rho t x^T: both ends active together
                    self.bias.add_(t[n], alpha=lr)
                weights.append(self.weight.detach().clone())
        return weights


class Perceptron(Dense):
    """Rosenblatt's perceptron: ``out_features`` threshold units on ``in_features`` inputs."""

    def __init__(self, in_features: int, out_features: int = 1, output: str = "sgn") -> None:
        if output not in ("sgn", "step"):
            raise SpecError(f"perceptron output must be 'sgn' (targets -1/+1) or 'step' (targets 0/1), got '{output}'")
        super().__init__(in_features, out_features, activation=output, init="zeros")

    def fit(
        self, x: Tensor, t: Tensor, epochs: int = 100, lr: float = 1.0, shuffle: bool = True, seed: int = 0
    ) -> list[int]:
        """Apply the perceptron rule sample by sample; return the mistakes of each epoch.

        x (N, in_features), t (N,) or (N, out_features) in {-1, +1} (sgn) or {0, 1} (step).
        Samples are visited in a fresh random order per epoch (``seed``) unless
        ``shuffle=False``. Stops after the first epoch with no mistakes.
        """
        x, t = _training_pair(self, x, t)
        low = -1.0 if self.activation.name == "sgn" else 0.0
        if not torch.all((t == low) | (t == 1)):
            raise DataError(f"{self.activation.name} perceptron targets must be {low:g} or 1; relabel the classes")
        generator = torch.Generator().manual_seed(seed)
        mistakes_per_epoch: list[int] = []
        with torch.no_grad():
            for _ in range(epochs):
                mistakes = 0
                for n in _order(len(x), shuffle, generator):
                    error = t[n] - self.activation(self.weight @ x[n] + self.bias)  # (out,)
                    if error.any():
                        self.weight.addr_(error, x[n], alpha=lr)  # W += rho (t - y) x^T
                        self.bias.add_(error, alpha=lr)
                        mistakes += 1
                mistakes_per_epoch.append(mistakes)
                if mistakes == 0:
                    break
        return mistakes_per_epoch


class Adaline(Dense):
    """Widrow and Hoff's adaptive linear element, trained by least mean squares."""

    def __init__(self, in_features: int, out_features: int = 1) -> None:
        super().__init__(in_features, out_features, activation="linear", init="zeros")

    def predict(self, x: Tensor) -> Tensor:
        """Class decision sgn(W x + b) in {-1, +1}; (N, in) -> (N, out)."""
        with torch.no_grad():
            return get_activation("sgn")(self(_like_weights(self, x)))

    def fit(
        self,
        x: Tensor,
        t: Tensor,
        epochs: int = 50,
        lr: float = 0.01,
        mode: str = "online",
        shuffle: bool = True,
        seed: int = 0,
    ) -> list[float]:
        """Train by the LMS (delta) rule; return the mean squared error after each epoch.

        ``mode="online"`` updates after every sample (random order per epoch unless
        ``shuffle=False``); ``mode="batch"`` makes one gradient step per epoch on the mean
        of the per-sample updates. x (N, in_features), t (N,) or (N, out_features).
        """
        if mode not in ("online", "batch"):
            raise SpecError(f"Adaline mode must be 'online' or 'batch', got '{mode}'")
        x, t = _training_pair(self, x, t)
        generator = torch.Generator().manual_seed(seed)
        mse_per_epoch: list[float] = []
        with torch.no_grad():
            for _ in range(epochs):
                if mode == "online":
                    for n in _order(len(x), shuffle, generator):
                        error = t[n] - (self.weight @ x[n] + self.bias)  # (out,)
                        self.weight.addr_(error, x[n], alpha=lr)
                        self.bias.add_(error, alpha=lr)
                else:
                    errors = t - (x @ self.weight.T + self.bias)  # (N, out)
                    self.weight.add_(errors.T @ x, alpha=lr / len(x))
                    self.bias.add_(errors.mean(dim=0), alpha=lr)
                mse = (t - (x @ self.weight.T + self.bias)).square().mean().item()
                if not mse < float("inf"):
                    raise TrainingError(
                        f"Adaline diverged (MSE {mse}) with lr={lr}; use a smaller learning rate or standardise x"
                    )
                mse_per_epoch.append(mse)
        return mse_per_epoch
