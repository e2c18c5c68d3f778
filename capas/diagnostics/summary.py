"""Exact model summaries: every layer's output shape, parameter count and FLOPs.

Output shapes come from a real forward pass of one dummy sample (on the ``meta`` device
when summarizing a spec, so even a huge network costs no memory), so the summary cannot
disagree with the module. Parameters are counted once per tensor: the layers of a
``repN(...)`` block are applied N times but hold one set of weights, which the summary
counts once and marks ``shared``.

FLOPs are forward floating-point operations per sample as ``torch.utils.flop_counter``
counts them: 2 per multiply-add of every matrix product and convolution (a dense layer
n -> m costs 2nm, a KxK convolution with C inputs and F filters 2 K^2 C F per output
position); bias additions, activations, pooling and normalization are not counted. Tied
layers count once per application, since the work is done every time.

A sequence network (``Tx28``) is measured on one sample of T = its fixed length, or T = 1
when any length is accepted (its FLOPs are then per time step), and prints the time axis
as the notation writes it: ``Tx64``, ``T50x64``. Parameters do not depend on T: a per-step
layer holds the weights of the same layer on one step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from capas.errors import SpecError
from capas.layers.blocks import Repeat
from capas.layers.sequence import PerStep
from capas.models import Network, build
from capas.models.modes import eval_mode


@dataclass(frozen=True)
class LayerRow:
    """One layer: ``name`` (``res1.dense2`` inside blocks), ``output_shape`` per sample,
    ``params`` (its own parameters, each counted once), ``shared`` (weights reused by
    several applications), ``flops`` per sample, ``depth`` (0 for top-level layers)."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    shared: bool
    flops: int
    depth: int


@dataclass(frozen=True)
class Summary:
    """What ``summarize`` measured; ``total_params`` counts every parameter tensor once."""

    spec: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    flops: int
    time: str | None = None  # a sequence's time axis, as written ('T', 'T50'); axis 0 of every shape

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict: ``layers`` (name, output_shape, params, shared, flops, depth),
        ``total_params``, ``trainable_params``, ``flops``, ``spec``, shapes. A sequence net
        also has ``time`` ('T', 'T50'), and its shapes' time axis is null for any length."""
        rows = [{k: v for k, v in asdict(row).items() if k != "kind"} for row in self.layers]
        for row in rows:
            row["output_shape"] = self._json_shape(row["output_shape"])
        record = {
            "spec": self.spec,
            "input_shape": self._json_shape(self.input_shape),
            "output_shape": self._json_shape(self.output_shape),
            "layers": rows,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "flops": self.flops,
        }
        return record | ({"time": self.time} if self.time else {})

    def _json_shape(self, shape: tuple[int, ...]) -> list[int | None]:
        return [None if self.time == "T" else shape[0], *shape[1:]] if self.time else list(shape)

    def shape_text(self, shape: tuple[int, ...]) -> str:
        """'6x28x28'; 'Tx64' for a sequence (the time axis as the notation writes it)."""
        return "x".join([self.time, *map(str, shape[1:])] if self.time else map(str, shape))

    def table(self) -> Table:
        """A rich table: one row per layer (block contents indented), totals in the caption."""
        per = "time step" if self.time == "T" else "sample"
        table = Table(
            title=self.spec,
            caption=(
                f"input {self.shape_text(self.input_shape)} -> output {self.shape_text(self.output_shape)}; "
                f"{self.total_params:,} parameters ({self.trainable_params:,} trainable); {self.flops:,} FLOPs per {per}"
            ),
        )
        for column, justify in (
            ("layer", "left"),
            ("type", "left"),
            ("output shape", "right"),
            ("params", "right"),
            ("FLOPs", "right"),
        ):
            table.add_column(column, justify=justify)
        for row in self.layers:
            params = f"{row.params:,}" + (" (shared)" if row.shared and row.params else "")
            table.add_row(
                "  " * row.depth + row.name, row.kind, self.shape_text(row.output_shape), params, f"{row.flops:,}"
            )
        return table


def summarize(model_or_spec: Network | str | list | dict, **build_options: Any) -> Summary:
    """Summarize a built ``Network`` or a spec (built on the meta device with ``build_options``)."""
    if isinstance(model_or_spec, Network):
        if build_options:
            raise SpecError(f"build options {sorted(build_options)} only apply when summarizing a spec, not a model")
        model = model_or_spec
    elif isinstance(model_or_spec, nn.Module):
        raise SpecError(f"summarize takes a capas Network or a spec, not a {type(model_or_spec).__name__}")
    else:
        with torch.device("meta"):
            model = build(model_or_spec, **build_options)
    rows = list(model.named_layers(nested=True))
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        module.register_forward_hook(lambda m, args, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, module in rows
    ]
    first = next(model.parameters(), None)
    like = {"device": first.device, "dtype": first.dtype} if first is not None else {}
    dummy = torch.zeros(1, *model.input_shape, **like)  # (1, *input_shape), as the weights
    try:
        with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
            output = model(dummy)  # (1, *output_shape)
    finally:
        for hook in hooks:
            hook.remove()
    paths = {id(module): f"{type(model).__name__}.{path}" for path, module in model.named_modules() if path}
    flops = counter.get_flop_counts()
    shared = _shared_modules(model)
    unique = {id(p): p for p in model.parameters()}
    steps = model.input_shape[:1] if model.sequence else ()  # inside a per-step block, shapes are per step
    return Summary(
        spec=model.options["spec"],
        input_shape=model.input_shape,
        output_shape=tuple(output.shape[1:]),
        layers=[
            LayerRow(
                name=name,
                kind=type(module.inner if isinstance(module, PerStep) else module).__name__,
                output_shape=shapes[name] if name.count(".") == 0 else steps + shapes[name],
                params=sum(p.numel() for p in module.parameters()),
                shared=id(module) in shared,
                flops=sum(flops.get(paths[id(module)], {}).values()),
                depth=name.count("."),
            )
            for name, module in rows
        ],
        total_params=sum(p.numel() for p in unique.values()),
        trainable_params=sum(p.numel() for p in unique.values() if p.requires_grad),
        flops=counter.get_total_flops(),
        time=f"T{model.sequence_length or ''}" if model.sequence else None,
    )


def _shared_modules(model: nn.Module) -> set[int]:
    """ids of modules whose weights serve several applications: ``Repeat`` blocks and
    everything inside them, and any module holding a parameter also held elsewhere."""
    shared: set[int] = set()
    owners: dict[int, set[int]] = {}
    for module in model.modules():
        if isinstance(module, Repeat) and module.times > 1:
            shared.update(id(m) for m in module.modules())
        for param in module.parameters(recurse=False):
            owners.setdefault(id(param), set()).add(id(module))
    for modules in owners.values():
        if len(modules) > 1:
            shared.update(modules)
    return shared
