"""Shared layer-test harness: a capas layer against a reference with the same weights.

``check_against_reference`` copies the capas layer's parameters and buffers into the
reference (matched by order and shape), runs both in float64 on the same input with the
same random seed (so dropout masks agree), and asserts equal output shape and values,
equal input and parameter gradients for one random upstream gradient, equal buffers after
the step (batch-norm running statistics) and equal parameter counts.
``check_config_roundtrip`` rebuilds a layer from its JSON config and compares.
"""

from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from capas.layers import layer_from_config


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _copy_by_order(source: list[Tensor], target: list[Tensor], what: str) -> None:
    assert len(source) == len(target), f"{len(source)} vs {len(target)} {what}"
    with torch.no_grad():
        for s, t in zip(source, target):
            assert s.shape == t.shape, f"{what} shapes differ: {tuple(s.shape)} vs {tuple(t.shape)}"
            t.copy_(s)


def check_against_reference(
    layer: nn.Module,
    reference: nn.Module,
    x: Tensor,
    *,
    train: bool = True,
    seed: int = 0,
    atol: float = 1e-10,
    rtol: float = 1e-8,
) -> Tensor:
    """Assert ``layer`` and ``reference`` agree on ``x`` (N, *) in float64; returns the output.

    Both modules are converted to float64 in place; the reference's weights are overwritten.
    """
    layer.double().train(train)
    reference.double().train(train)
    assert n_params(layer) == n_params(reference), f"{n_params(layer)} vs {n_params(reference)} parameters"
    _copy_by_order(list(layer.parameters()), list(reference.parameters()), "parameters")
    _copy_by_order(list(layer.buffers()), list(reference.buffers()), "buffers")

    x_ours = x.detach().double().requires_grad_()
    x_ref = x.detach().double().requires_grad_()
    torch.manual_seed(seed)
    out = layer(x_ours)
    torch.manual_seed(seed)
    expected = reference(x_ref)
    assert out.shape == expected.shape, f"output shape {tuple(out.shape)} vs {tuple(expected.shape)}"
    torch.testing.assert_close(out, expected, atol=atol, rtol=rtol)

    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    out.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=atol, rtol=rtol)
    for (name, p), q in zip(layer.named_parameters(), reference.parameters()):
        assert p.grad is not None, f"no gradient reached parameter {name}"
        torch.testing.assert_close(p.grad, q.grad, atol=atol, rtol=rtol, msg=lambda m, name=name: f"{name}: {m}")
    for (name, b), c in zip(layer.named_buffers(), reference.buffers()):
        torch.testing.assert_close(b, c, atol=atol, rtol=rtol, msg=lambda m, name=name: f"buffer {name}: {m}")
    return out.detach()


def check_config_roundtrip(layer: nn.Module) -> nn.Module:
    """Assert the config is plain JSON and rebuilds an equivalent layer; returns the rebuild."""
    config = layer.config()
    rebuilt = layer_from_config(json.loads(json.dumps(config)))
    assert type(rebuilt) is type(layer)
    assert rebuilt.config() == config
    assert [(n, p.shape) for n, p in rebuilt.named_parameters()] == [(n, p.shape) for n, p in layer.named_parameters()]
    return rebuilt
