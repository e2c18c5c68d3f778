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

import io
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from capas.errors import SpecError
from capas.layers.blocks import Repeat
from capas.layers.sequence import PerStep
from capas.models import Network, build
from capas.models.modes import eval_mode
from capas.models.registry import kind_of

if TYPE_CHECKING:
    from capas.diagnostics.parts import PartsSummary


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
    timed: bool = True  # the shape has the sequence's time axis (False after a many-to-one 'last')
    connections: int = 0  # multiply-adds per sample, a bias counting as one (LeCun et al. 1998)


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
    time: str | None = None  # a sequence's time axis, as written ('T', 'T50'); axis 0 of every timed shape
    timed_output: bool = True  # False when a 'last' token made the network many-to-one
    connections: int = 0  # multiply-adds per sample over all top-level layers (see _connections)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict: ``layers`` (name, output_shape, params, shared, flops, depth),
        ``total_params``, ``trainable_params``, ``flops``, ``spec``, shapes. A sequence net
        also has ``time`` ('T', 'T50'), and its shapes' time axis is null for any length."""
        rows = [{k: v for k, v in asdict(row).items() if k != "kind"} for row in self.layers]
        for row in rows:
            row["output_shape"] = self._json_shape(row["output_shape"], row.pop("timed"))
        record = {
            "spec": self.spec,
            "input_shape": self._json_shape(self.input_shape),
            "output_shape": self._json_shape(self.output_shape, self.timed_output),
            "layers": rows,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "flops": self.flops,
            "connections": self.connections,
        }
        return record | ({"time": self.time} if self.time else {})

    def _json_shape(self, shape: tuple[int, ...], timed: bool = True) -> list[int | None]:
        if not (self.time and timed):
            return list(shape)
        return [None if self.time == "T" else shape[0], *shape[1:]]

    def shape_text(self, shape: tuple[int, ...], timed: bool = True) -> str:
        """'6x28x28'; 'Tx64' for a sequence (the time axis as the notation writes it); a shape
        past a many-to-one 'last' token (``timed`` False) has no time axis."""
        return "x".join([self.time, *map(str, shape[1:])] if self.time and timed else map(str, shape))

    def __str__(self) -> str:
        """The table as plain text, so ``print(capas.summarize(net))`` shows it (not the fields)."""
        from rich.console import Console

        console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
        console.print(self.table())
        return console.export_text().rstrip()

    def table(self) -> Table:
        """A rich table: one row per layer (block contents indented), totals in the caption."""
        per = "time step" if self.time == "T" else "sample"
        table = Table(
            title=self.spec,
            caption=(
                f"input {self.shape_text(self.input_shape)} -> "
                f"output {self.shape_text(self.output_shape, self.timed_output)}; "
                f"{self.total_params:,} parameters ({self.trainable_params:,} trainable); {self.flops:,} FLOPs per {per}; "
                f"{self.connections:,} connections"
            ),
        )
        for column, justify in (
            ("layer", "left"),
            ("type", "left"),
            ("output shape", "right"),
            ("params", "right"),
            ("connections", "right"),
            ("FLOPs", "right"),
        ):
            table.add_column(column, justify=justify)
        for row in self.layers:
            params = f"{row.params:,}" + (" (shared)" if row.shared and row.params else "")
            table.add_row(
                "  " * row.depth + row.name,
                row.kind,
                self.shape_text(row.output_shape, row.timed),
                params,
                f"{row.connections:,}",
                f"{row.flops:,}",
            )
        return table


def summarize(model_or_spec: nn.Module | str | list | dict, **build_options: Any) -> Summary | PartsSummary:
    """Summarize a built ``Network`` or a spec (built on the meta device with ``build_options``);
    another capas model (a GAN, an encoder-decoder, an autoencoder, an RBM) by its parts
    (:func:`capas.diagnostics.parts.summarize_parts`)."""
    if isinstance(model_or_spec, nn.Module) and build_options:
        raise SpecError(f"build options {sorted(build_options)} only apply when summarizing a spec, not a model")
    if isinstance(model_or_spec, Network):
        model = model_or_spec
    elif isinstance(model_or_spec, nn.Module):
        if kind_of(model_or_spec) is None:
            raise SpecError(f"summarize takes a capas model or a spec, not a {type(model_or_spec).__name__}")
        from capas.diagnostics.parts import summarize_parts

        return summarize_parts(model_or_spec)
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
    untimed = _after_time_ends(model)
    connections = _connections(rows, shapes, flops, paths)
    timed_output = not untimed
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
                timed=name.split(".")[0] not in untimed,
                connections=connections[name],
            )
            for name, module in rows
        ],
        total_params=sum(p.numel() for p in unique.values()),
        trainable_params=sum(p.numel() for p in unique.values() if p.requires_grad),
        flops=counter.get_total_flops(),
        time=f"T{model.sequence_length or ''}" if model.sequence else None,
        timed_output=timed_output,
        connections=sum(connections[name] for name, _ in rows if "." not in name),
    )


def _connections(
    rows: list[tuple[str, nn.Module]],
    shapes: dict[str, tuple[int, ...]],
    flops: dict[str, dict[Any, int]],
    paths: dict[int, str],
) -> dict[str, int]:
    """Connections (multiply-adds per sample, a bias counting as one: LeCun et al. 1998's
    count, 122,304 for LeNet-5's C1) of every layer row. A layer that knows its own count
    (``connections(output_shape)``: convolutions, LeNet's subsampling and partial C3,
    locally connected) gives it; a block sums its layers (times N for ``repN``); any other
    layer counts its matrix products' multiply-adds (FLOPs / 2) plus one per output for a
    bias. Weight-free layers (pooling, activations, normalisation) have none."""
    counts: dict[str, int] = {}
    for name, module in reversed(rows):  # a block's layers come after it in ``rows``
        inner = module.inner if isinstance(module, PerStep) else module
        depth = name.count(".") + 1
        children = [n for n, _ in rows if n.startswith(name + ".") and n.count(".") == depth]
        own = getattr(inner, "connections", None)
        if children:
            counts[name] = sum(counts[n] for n in children) * (inner.times if isinstance(inner, Repeat) else 1)
        elif callable(own):
            counts[name] = int(own(shapes[name]))
        else:
            macs = sum(flops.get(paths[id(module)], {}).values()) // 2
            bias = any(n.rsplit(".", 1)[-1] == "bias" for n, _ in inner.named_parameters())
            counts[name] = macs + (math.prod(shapes[name]) if bias and macs else 0)
    return counts


def _after_time_ends(model: Network) -> set[str]:
    """Top-level layers from a many-to-one ``last`` token on: their shapes have no time axis."""
    names: set[str] = set()
    for name, layer in model.named_layers():
        if names or getattr(layer, "ends_time", False):
            names.add(name)
    return names


def _shared_modules(model: nn.Module) -> set[int]:
    """ids of modules whose weights serve several applications: ``Repeat`` blocks and
    everything inside them, and any module holding a parameter also held elsewhere."""
    shared: set[int] = set()
    owners: dict[int, set[int]] = {}
    for module in model.modules():
        if isinstance(module, Repeat) and module.times > 1:
            shared.update(id(m) for m in module.modules())
        if getattr(module, "shares_weights", False):  # units of one layer sharing weights (d300:share150)
            shared.add(id(module))
        for param in module.parameters(recurse=False):
            owners.setdefault(id(param), set()).add(id(module))
    for modules in owners.values():
        if len(modules) > 1:
            shared.update(modules)
    return shared
