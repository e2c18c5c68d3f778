"""Per-layer bounds on dE/dp for a tanh MLP: course file 000's exercise, worked out.

The exercise ("Gradientes. Extiende a 5 capas el caso de 2. Da cotas razonables") starts
from the 2-layer case with tanh units and E = sum_k (y_k - c_k)^2::

    dE/dp_ij = ( sum_k dE/dy_k  dy_k/de_k  de_k/dy_i ) dy_i/de_i  de_i/dp_ij
             = ( sum_k 2 (y_k - c_k) (1 - y_k^2) p_ki ) (1 - y_i^2) y_j

With targets and outputs in [-1, 1] (|y - c| <= 2), |1 - y^2| <= 1 and |y_j| <= 1, the
output layer's gradient is at most 2 * 2 * 1 * 1 = 4, and every layer further down
multiplies the bound on its error signal by the largest column sum of |W| of the layer
above it: the error of unit i is sum_k p_ki * delta_k, so |delta_i| <= sum_k |p_ki| *
max_k |delta_k| <= ||W||_col * max_k |delta_k|, with ||W||_col = max_i sum_k |p_ki| (W is
stored (out, in): a column is one input unit's outgoing weights). For L layers::

    bound(L) = 4
    bound(l) = 4 * prod_{m = l+1..L} ||W^m||_col

The same holds for the biases (their input is 1). The first layer's inputs are not tanh
outputs: its bound is multiplied by max(1, max |x_j|), so the rule holds for any input
scale (it is the slides' bound when the inputs lie in [-1, 1]).

The bound explains the slides' warning next to the exercise: the gradient of a low layer
is controlled by a *product* of weight norms, so it can shrink or grow geometrically with
depth -- the vanishing/exploding gradient. A net whose column sums are below 1 has tiny
bounds at the bottom (and tanh's 1 - y^2 < 1 makes the real gradients smaller still).

:func:`gradient_bounds` returns, per layer, the bound next to the measured largest
|dE/dp| (weights and bias) for given inputs and targets; the mean over the batch of the
per-sample E is used, which the per-sample bound also bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from capas.errors import SpecError
from capas.layers.dense import Dense
from capas.models import Network


@dataclass(frozen=True)
class LayerBound:
    """One layer: the analytic ``bound`` on |dE/dp| and the ``measured`` largest |dE/dp|
    over its weights and bias; ``column_norm`` is ||W||_col = max_i sum_k |W_ki|."""

    name: str
    bound: float
    measured: float
    column_norm: float


def column_norm(weight: Tensor) -> float:
    """max over inputs i of sum over units k of |W_ki| for ``weight`` (out, in)."""
    return float(weight.detach().abs().sum(dim=0).max())


def tanh_dense_layers(network: Network) -> list[tuple[str, Dense]]:
    """The network's layers, checked to be a chain of tanh ``Dense`` layers (the exercise's net)."""
    layers = list(network.named_layers())
    for name, layer in layers:
        if not isinstance(layer, Dense) or layer.activation.name != "tanh":
            what = type(layer).__name__ if not isinstance(layer, Dense) else f"Dense with {layer.activation.name}"
            raise SpecError(
                f"gradient bounds are worked out for tanh Dense layers only; layer '{name}' is {what}: "
                "build the net with act='tanh', output_act='tanh', loss='mse' (e.g. capas.build('4-3-2', act='tanh', "
                "output_act='tanh', loss='mse'))"
            )
    return layers


def analytic_bounds(network: Network, input_scale: float = 1.0) -> list[float]:
    """The bound of every layer, bottom to top: 4 * prod of the column norms above it,
    times max(1, ``input_scale``) for the first layer (``input_scale`` = max |x_j|)."""
    layers = tanh_dense_layers(network)
    bounds, product = [], 4.0
    for index in range(len(layers) - 1, -1, -1):
        scale = max(1.0, input_scale) if index == 0 else 1.0
        bounds.append(product * scale)
        product *= column_norm(layers[index][1].weight)
    return bounds[::-1]


def gradient_bounds(network: Network, x: Tensor, c: Tensor) -> list[LayerBound]:
    """Per layer, the analytic bound and the measured max |dE/dp| for ``x (B, n_in)`` and
    targets ``c (B, n_out)`` in [-1, 1], with E = mean over the batch of sum_k (y_k - c_k)^2.

    Raises SpecError for a net that is not a chain of tanh Dense layers, or targets out of
    [-1, 1] (then |y - c| <= 2 no longer holds)."""
    layers = tanh_dense_layers(network)
    if c.abs().max() > 1:
        raise SpecError("the targets must lie in [-1, 1] (tanh outputs) for |y - c| <= 2; rescale them")
    network.zero_grad(set_to_none=True)
    y = network(x)  # (B, n_out)
    energy = (y - c).pow(2).sum(dim=1).mean()
    energy.backward()
    bounds = analytic_bounds(network, float(x.detach().abs().max()))
    result = []
    for (name, layer), bound in zip(layers, bounds):
        grads = [layer.weight.grad] + ([layer.bias.grad] if layer.bias is not None else [])
        measured = max(float(g.abs().max()) for g in grads)
        result.append(LayerBound(name, bound, measured, column_norm(layer.weight)))
    network.zero_grad(set_to_none=True)
    return result


def dense_parameter_count(widths: list[int], shared: list[int] | None = None) -> int:
    """Weights and biases of a dense MLP of ``widths`` (input first); with ``shared[l]`` units
    of layer l sharing one weight vector and bias, that layer holds
    (units - shared + 1) * (n_in + 1) parameters (``shared`` 0 or 1: no sharing).

    The exercise's net 1000-300-100-50-20-5-1 has 336,581 parameters; with half of each
    hidden layer's units sharing (150, 50, 25, 10, 2 of 300, 100, 50, 20, 5), 169,779."""
    shared = shared or [0] * (len(widths) - 1)
    if len(shared) != len(widths) - 1:
        raise SpecError(f"give one shared count per layer: {len(widths) - 1} layers, got {len(shared)}")
    total = 0
    for n_in, units, share in zip(widths, widths[1:], shared):
        if not 0 <= share <= units:
            raise SpecError(f"a layer of {units} units cannot have {share} sharing units")
        total += (units - max(share, 1) + 1) * (n_in + 1)
    return total
