"""Summaries of the models that are not one layer stack: a GAN, an encoder-decoder, an
autoencoder, an RBM, a DBN.

Such a model is made of parts (a GAN's generator and discriminator, an encoder-decoder's
embeddings, encoder, attention and output layer, an RBM's own weight and biases), so its
summary is a table of parts with their exact parameter counts, each tensor counted once
(a tied autoencoder's decoder reuses its encoder's weight). A part that is a capas
``Network`` also gets the full layer table of :func:`capas.diagnostics.summarize`
(shapes, FLOPs): for a GAN, both networks as the notation wrote them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from torch import nn

from capas.diagnostics.summary import Summary, summarize
from capas.models import Network
from capas.models.registry import kind_of


@dataclass(frozen=True)
class PartRow:
    """One part: its attribute ``name`` (``rbms.0`` inside a ModuleList), module ``kind``
    (class name, or ``Parameter`` with its shape for a tensor the model holds itself) and
    the parameters first seen in it. No "trainable" column: an RBM's weights are updated
    by contrastive divergence without autograd, so requires_grad would call them frozen."""

    name: str
    kind: str
    params: int


@dataclass(frozen=True)
class PartsSummary:
    """What :func:`summarize_parts` measured; ``networks`` holds the layer tables of the
    parts that are capas Networks, by part name."""

    model: str
    parts: list[PartRow]
    total_params: int
    networks: dict[str, Summary] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "parts": [row.__dict__ for row in self.parts],
            "total_params": self.total_params,
            "networks": {name: summary.to_json() for name, summary in self.networks.items()},
        }

    def tables(self) -> list[Table]:
        """The parts table, then one layer table per Network part (titled with its name)."""
        table = Table(
            title=f"{self.model} ({len(self.parts)} part{'s' if len(self.parts) != 1 else ''})",
            caption=f"{self.total_params:,} parameters",
        )
        for column, justify in (("part", "left"), ("type", "left"), ("params", "right")):
            table.add_column(column, justify=justify)
        for row in self.parts:
            table.add_row(row.name, row.kind, f"{row.params:,}")
        layers = []
        for name, summary in self.networks.items():
            network = summary.table()
            network.title = f"{name}: {summary.spec}"
            layers.append(network)
        return [table, *layers]

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
        for table in self.tables():
            console.print(table)
        return console.export_text().rstrip()


def summarize_parts(model: nn.Module) -> PartsSummary:
    """The parts of a registered capas model (``kind_of(model)`` not None): one row per
    parameter the model holds itself and per child module (a ModuleList's members each)."""
    seen: set[int] = set()
    rows = []

    def count(parameters: list[nn.Parameter]) -> int:
        new = [p for p in parameters if id(p) not in seen]
        seen.update(id(p) for p in new)
        return sum(p.numel() for p in new)

    for name, parameter in model.named_parameters(recurse=False):
        rows.append(PartRow(name, f"Parameter {'x'.join(map(str, parameter.shape))}", count([parameter])))
    children = [
        (f"{name}.{inner}" if isinstance(child, nn.ModuleList) else name, part)
        for name, child in model.named_children()
        for inner, part in (child.named_children() if isinstance(child, nn.ModuleList) else [("", child)])
    ]
    networks = {}
    for name, child in children:
        rows.append(PartRow(name, type(child).__name__, count(list(child.parameters()))))
        if isinstance(child, Network):
            networks[name] = summarize(child)
    return PartsSummary(
        model=kind_of(model) or type(model).__name__,
        parts=rows,
        total_params=sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()),
        networks=networks,
    )
