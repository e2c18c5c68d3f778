"""``capas draw``: a network drawn as the course's slides draw it.

Two styles, chosen by what the network is:

* **units** for a plain MLP (only dense layers on a vector input): every unit a circle and
  every connection a line. A layer wider than ``max_units`` shows its first units, a
  vertical ellipsis and its last two, and is labelled with its real width (784 inputs
  become 8 + "..." + 2 circles). With trained weights (a run directory), a line is blue
  for a positive weight and red for a negative one, and thicker the larger ``|w|`` is
  relative to the largest shown weight of its layer; a bare spec draws grey lines of one
  width, because its weights mean nothing yet.
* **blocks** for everything else: a convolution or pooling output as a volume of stacked
  feature maps labelled ``C@HxW`` (LeNet-style), a vector as a bar labelled with its
  width, and the blocks as boxes around their layers: ``res`` with its skip arc and the
  ``+`` where it joins, ``cat`` with its branches one above the other, ``repN`` with
  ``xN (shared)``.
* **unrolled** for a recurrent network (``Tx28-lstm64-last-10``): the network unfolded in
  time as the slides draw BPTT, one column per time step (the first three and the last),
  each layer a box per step, the recurrence as arrows from step t-1 to step t (a Jordan
  net's from the output y_{t-1}; a bidirectional layer's both ways), and the layers after
  a many-to-one ``last`` only at the last step.

:func:`draw` returns a :class:`Drawing`, the record of what it drew (the shown unit
indices, every line's weight, colour and width, every box), so tests can check the
picture against the model without reading pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.patches as mpatches
import torch
from torch import nn

from capas.diagnostics.figures import plt, save_figure
from capas.errors import CapasError
from capas.layers.blocks import Concat, Repeat, Residual
from capas.layers.dense import Dense
from capas.layers.recurrent import LastStep, Recurrent
from capas.models import Network
from capas.models.registry import noun

POSITIVE = "#1f77b4"  # blue: an excitatory weight
NEGATIVE = "#d62728"  # red: an inhibitory weight
NEUTRAL = "#9a9a9a"  # a spec's lines: structure only
MIN_WIDTH, MAX_WIDTH = 0.3, 3.0
SUFFIXES = (".png", ".svg")
COLUMN_GAP = 2.5  # horizontal distance between two layers of units, in unit rows


@dataclass(frozen=True)
class Column:
    """One layer of units: its ``name``, real ``size`` and the unit ``indices`` drawn."""

    name: str
    size: int
    indices: tuple[int, ...]

    @property
    def elided(self) -> bool:
        return len(self.indices) < self.size


@dataclass(frozen=True)
class Line:
    """A drawn connection from unit ``source`` of column ``layer - 1`` to unit ``target`` of
    column ``layer``; ``weight`` is None when the drawing shows structure only."""

    layer: int
    source: int
    target: int
    weight: float | None
    color: str
    width: float


@dataclass(frozen=True)
class Box:
    """One element of a block drawing: ``kind`` is volume, bar, layer, res, cat or rep;
    ``label`` what is written on it; ``depth`` 0 for top-level elements."""

    name: str
    kind: str
    label: str
    depth: int


@dataclass(frozen=True)
class Arrow:
    """An arrow of an unrolled drawing between two boxes named ``layer@t``; ``kind`` is
    ``feed`` (up a step), ``recurrence`` (step t-1 to t), ``backward`` (a bidirectional
    layer's t+1 to t) or ``output`` (a Jordan net's y_{t-1} into h_t)."""

    source: str
    target: str
    kind: str


@dataclass
class Drawing:
    """What :func:`draw` put in the picture (see the module docstring)."""

    style: str
    path: Path
    columns: list[Column] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)


def shown_units(size: int, max_units: int) -> tuple[int, ...]:
    """The unit indices drawn for a layer of ``size`` units: all when they fit in
    ``max_units``, else the first ``max_units - 2`` and the last two."""
    if size <= max_units:
        return tuple(range(size))
    return (*range(max_units - 2), size - 2, size - 1)


def draw(
    model: nn.Module,
    out: str | Path,
    weights: bool = False,
    max_units: int = 10,
    title: str | None = None,
) -> Drawing:
    """Draw ``model`` (a capas ``Network``) to ``out`` (.png or .svg) and return the record.

    ``weights``: colour and size the lines of a units drawing by the model's weights (for a
    trained model; a spec's fresh weights are noise). ``max_units`` (>= 4): the most units
    drawn per layer before the middle ones are elided.
    """
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        raise CapasError(f"cannot draw to {out}: give a file name ending in .png or .svg")
    if max_units < 4:
        raise CapasError(f"max_units must be at least 4 (first units, '...', last two), got {max_units}")
    if not isinstance(model, Network):
        raise CapasError(
            f"capas draw draws networks written in the notation, not {noun(model)}; "
            "give a spec such as 784-30-10 or the run directory of a network"
        )
    title = title or str(model.options["spec"])
    if any(isinstance(layer, Recurrent) for layer in model.layers):
        return _draw_unrolled(model, out, title)
    if _is_units_net(model):
        return _draw_units(model, out, weights, max_units, title)
    return _draw_blocks(model, out, title)


def _is_units_net(model: Network) -> bool:
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    return len(model.input_shape) == 1 and len(dense) == len(model.layers) and bool(dense)


# ---- units -------------------------------------------------------------------------------


def _draw_units(model: Network, out: Path, weights: bool, max_units: int, title: str) -> Drawing:
    names = ["input", *model.layer_names()]
    sizes = [model.input_shape[0], *(layer.out_features for layer in model.layers)]
    columns = [Column(name, size, shown_units(size, max_units)) for name, size in zip(names, sizes)]
    lines = []
    for l, layer in enumerate(model.layers, start=1):
        lines += _layer_lines(l, layer.weight.detach().to("cpu", torch.float64), columns, weights)
    drawing = Drawing("units", out, columns=columns, lines=lines)

    rows = max(len(c.indices) for c in columns) + 1
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 1, 0.42 * rows + 1.2))
    positions = [_column_positions(c, COLUMN_GAP * x, rows) for x, c in enumerate(columns)]
    for line in lines:
        (x0, y0), (x1, y1) = positions[line.layer - 1][line.source], positions[line.layer][line.target]
        ax.plot([x0, x1], [y0, y1], color=line.color, linewidth=line.width, alpha=0.8, zorder=1)
    for x, (column, points) in enumerate(zip(columns, positions)):
        for _, (px, py) in points.items():
            ax.add_patch(mpatches.Circle((px, py), 0.13, facecolor="white", edgecolor="black", zorder=2))
        if column.elided:
            gap = (points[column.indices[-3]][1] + points[column.indices[-2]][1]) / 2
            ax.text(COLUMN_GAP * x, gap, "⋮", ha="center", va="center", fontsize=14, zorder=3)
        ax.text(COLUMN_GAP * x, -0.9, f"{column.name}\n{column.size}", ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.8, COLUMN_GAP * (len(columns) - 1) + 0.8)
    ax.set_ylim(-2.0, rows)
    _finish(ax, title + ("   (blue +, red -; width |w|)" if weights else ""))
    save_drawing(fig, out)
    return drawing


def _column_positions(column: Column, x: float, rows: int) -> dict[int, tuple[float, float]]:
    """Unit index -> (x, y): the column centred vertically, one row left free at an ellipsis."""
    slots = len(column.indices) + (1 if column.elided else 0)
    top = (rows - 1 + slots - 1) / 2
    positions, slot = {}, 0
    for k, index in enumerate(column.indices):
        if column.elided and k == len(column.indices) - 2:
            slot += 1
        positions[index] = (float(x), top - slot)
        slot += 1
    return positions


def _layer_lines(l: int, weight: torch.Tensor, columns: Sequence[Column], weights: bool) -> list[Line]:
    """The lines into column ``l`` from column ``l - 1``; ``weight`` is W^l (out, in)."""
    sources, targets = columns[l - 1].indices, columns[l].indices
    shown = weight[list(targets)][:, list(sources)]
    largest = float(shown.abs().max()) or 1.0
    lines = []
    for j, target in enumerate(targets):
        for i, source in enumerate(sources):
            w = float(shown[j, i])
            if weights:
                color = POSITIVE if w >= 0 else NEGATIVE
                width = MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * abs(w) / largest
                lines.append(Line(l, source, target, w, color, width))
            else:
                lines.append(Line(l, source, target, None, NEUTRAL, 0.6))
    return lines


# ---- blocks ------------------------------------------------------------------------------


def _draw_blocks(model: Network, out: Path, title: str) -> Drawing:
    from capas.diagnostics.summary import summarize

    shapes = {row.name: row.output_shape for row in summarize(model).layers}
    elements = [("input", None, tuple(model.input_shape))]
    elements += [(name, layer, shapes[name]) for name, layer in zip(model.layer_names(), model.layers)]
    drawing = Drawing("blocks", out)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(elements) + 1), 4.6))
    x = 0.0
    for name, layer, shape in elements:
        x = _element(ax, drawing, name, layer, shape, shapes, x, 0.0, depth=0) + 0.45
    ax.set_xlim(-0.4, x)
    ax.set_ylim(-2.6, 2.6)
    _finish(ax, title)
    save_drawing(fig, out)
    return drawing


def _element(ax, drawing: Drawing, name, layer, shape, shapes, x: float, y: float, depth: int) -> float:
    """Draw one element with its left edge at ``x``, centred on ``y``; return its right edge."""
    if isinstance(layer, Residual):
        return _residual(ax, drawing, name, layer, shape, shapes, x, y, depth)
    if isinstance(layer, Concat):
        return _concat(ax, drawing, name, layer, shape, shapes, x, y, depth)
    if isinstance(layer, Repeat):
        return _repeat(ax, drawing, name, layer, shape, shapes, x, y, depth)
    if len(shape) >= 2 and depth == 0:
        return _volume(ax, drawing, name, shape, x, y, depth)
    return _bar(ax, drawing, name, layer, shape, x, y, depth)


def _label(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return str(shape[0])
    return f"{shape[0]}@{'x'.join(map(str, shape[1:]))}"


def _volume(ax, drawing: Drawing, name: str, shape, x: float, y: float, depth: int) -> float:
    """Stacked feature maps: up to 6 slices, the map's side on a gentle (square-root) scale."""
    maps, side = shape[0], max(shape[1:])
    height = 0.5 + 0.22 * side**0.5
    slices = min(maps, 6)
    for k in range(slices):
        offset = 0.09 * k
        ax.add_patch(
            mpatches.Rectangle(
                (x + offset, y - height / 2 - offset), 0.5, height, facecolor="#d9e8f5", edgecolor="#2c4a6b", lw=0.8
            )
        )
    right = x + 0.5 + 0.09 * (slices - 1)
    ax.text((x + right) / 2, y - height / 2 - 0.6, f"{name}\n{_label(shape)}", ha="center", va="top", fontsize=8)
    drawing.boxes.append(Box(name, "volume", _label(shape), depth))
    return right


def _bar(ax, drawing: Drawing, name: str, layer, shape, x: float, y: float, depth: int) -> float:
    """A vector (or a layer inside a block) as a bar, taller for wider layers."""
    units = shape[0]
    height = min(3.2, 0.35 + 0.12 * units**0.5) if depth == 0 else 0.7
    kind = "bar" if depth == 0 else "layer"
    face = "#f3e2c7" if isinstance(layer, Dense) or layer is None else "#e4e4e4"
    ax.add_patch(mpatches.Rectangle((x, y - height / 2), 0.32, height, facecolor=face, edgecolor="#6b4c1e", lw=0.8))
    short = name.rsplit(".", 1)[-1]  # inside a block, the frame says whose layer it is
    ax.text(x + 0.16, y - height / 2 - 0.08, f"{short}\n{_label(shape)}", ha="center", va="top", fontsize=7)
    drawing.boxes.append(Box(name, kind, _label(shape), depth))
    return x + 0.32


def _inner(ax, drawing, prefix: str, body: nn.Module, shapes, x: float, y: float, depth: int) -> float:
    for child_name, child in body.named_children():
        full = f"{prefix}.{child_name}"
        x = _element(ax, drawing, full, child, shapes.get(full, (0,)), shapes, x, y, depth + 1) + 0.45
    return x - 0.45


def _frame(ax, x0: float, x1: float, y: float, height: float, label: str) -> None:
    ax.add_patch(
        mpatches.FancyBboxPatch(
            (x0, y - height / 2), x1 - x0, height, boxstyle="round,pad=0.08", fill=False, edgecolor="#555", lw=1.0
        )
    )
    ax.text((x0 + x1) / 2, y + height / 2 + 0.12, label, ha="center", va="bottom", fontsize=8)


def _residual(ax, drawing, name, layer: Residual, shape, shapes, x: float, y: float, depth: int) -> float:
    drawing.boxes.append(Box(name, "res", f"{name}: x + F(x)", depth))
    right = _inner(ax, drawing, name, layer.body, shapes, x + 0.2, y, depth)
    plus = right + 0.35
    ax.add_patch(mpatches.Circle((plus, y), 0.13, facecolor="white", edgecolor="black", zorder=3))
    ax.text(plus, y, "+", ha="center", va="center", fontsize=10, zorder=4)
    ax.annotate(
        "",
        xy=(plus, y + 0.13),
        xytext=(x, y + 0.55),
        arrowprops={"arrowstyle": "->", "connectionstyle": "arc3,rad=-0.35", "color": "#2c4a6b"},
    )
    _frame(ax, x, plus + 0.2, y, 1.9, f"{name} (skip)")
    return plus + 0.2


def _concat(ax, drawing, name, layer: Concat, shape, shapes, x: float, y: float, depth: int) -> float:
    drawing.boxes.append(Box(name, "cat", f"{name}: concatenate {len(layer.branches)} branches", depth))
    count = len(layer.branches)
    spacing = 1.3
    right = x
    for k, branch in enumerate(layer.branches):
        row = y + spacing * ((count - 1) / 2 - k)
        right = max(right, _inner(ax, drawing, name, branch, shapes, x + 0.2, row, depth))
    _frame(ax, x, right + 0.2, y, spacing * count, f"{name} -> {_label(shape)}")
    return right + 0.2


def _repeat(ax, drawing, name, layer: Repeat, shape, shapes, x: float, y: float, depth: int) -> float:
    drawing.boxes.append(Box(name, "rep", f"{name}: x{layer.times} (shared)", depth))
    right = _inner(ax, drawing, name, layer.body, shapes, x + 0.2, y, depth)
    _frame(ax, x, right + 0.2, y, 1.9, f"{name} x{layer.times} (shared weights)")
    return right + 0.2


# ---- unrolled in time ---------------------------------------------------------------------

SHOWN_STEPS = 4  # columns of an unrolled drawing: t = 1, 2, 3 and T


def _step_labels(model: Network) -> list[str]:
    """'1', '2', '3', 'T' (or every step of a fixed length up to 4: '1'...'4')."""
    steps = model.input_shape[0] if model.options["spec"].startswith("T") and model.input_shape[0] > 1 else None
    if steps is not None and steps <= SHOWN_STEPS:
        return [str(t) for t in range(1, steps + 1)]
    return ["1", "2", "3", str(steps) if steps else "T"]


def _layer_text(name: str, layer: nn.Module, shape: tuple[int, ...]) -> str:
    if isinstance(layer, Recurrent):
        kind = ("bi" if layer.bidirectional else "") + layer.kind
        return f"{kind} {shape[-1]}" + (f" x{layer.layers}" if layer.layers > 1 else "")
    return f"{name} {shape[-1]}"


def _draw_unrolled(model: Network, out: Path, title: str) -> Drawing:
    from capas.diagnostics.summary import summarize

    shapes = {row.name: row.output_shape for row in summarize(model).layers}
    steps = _step_labels(model)
    rows = [("x", None, (model.input_shape[-1],))]
    rows += [(name, layer, shapes[name]) for name, layer in zip(model.layer_names(), model.layers)]
    drawing = Drawing("unrolled", out)
    fig, ax = plt.subplots(figsize=(2.3 * len(steps) + 1.5, 1.05 * len(rows) + 1.4))
    width, height, gap_x, gap_y = 1.3, 0.5, 2.2, 1.0
    many_to_one = False
    position: dict[str, tuple[float, float]] = {}
    for r, (name, layer, shape) in enumerate(rows):
        y = r * gap_y
        if isinstance(layer, LastStep):
            many_to_one = True
            continue  # 'last' is where the drawing stops unrolling, not a box
        columns = [len(steps) - 1] if many_to_one else range(len(steps))
        for c in columns:
            x = c * gap_x
            key = f"{name}@{steps[c]}"
            face = "#f3e2c7" if isinstance(layer, Recurrent) else ("#e8eef5" if layer is None else "#eeeeee")
            ax.add_patch(
                mpatches.FancyBboxPatch(
                    (x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.03", facecolor=face, lw=0.8
                )
            )
            text = f"x_{steps[c]} ({shape[-1]})" if layer is None else _layer_text(name, layer, shape)
            ax.text(x, y, text, ha="center", va="center", fontsize=7)
            position[key] = (x, y)
            drawing.boxes.append(Box(key, "step", text, 0))
        if not many_to_one and steps[-1] != str(len(steps)):  # steps between 3 and T are not drawn
            ax.text((len(steps) - 1.5) * gap_x, y + 0.12, "...", ha="center", va="bottom", fontsize=12)
    _unrolled_arrows(drawing, rows, steps)
    for arrow in drawing.arrows:
        (x0, y0), (x1, y1) = position[arrow.source], position[arrow.target]
        style = {"feed": ("->", "#555", 0.0), "recurrence": ("->", "#1f77b4", 0.0)}
        style |= {"backward": ("->", "#2ca02c", 0.0), "output": ("->", "#d62728", -0.25)}
        head, colour, rad = style[arrow.kind]
        start = (x0 + (width / 2 if x1 > x0 else -width / 2 if x1 < x0 else 0), y0 + (height / 2 if y1 > y0 else 0))
        end = (x1 - (width / 2 if x1 > x0 else -width / 2 if x1 < x0 else 0), y1 - (height / 2 if y1 > y0 else 0))
        if arrow.kind == "backward":
            start, end = (start[0], start[1] - 0.12), (end[0], end[1] - 0.12)
        ax.annotate(
            "",
            xy=end,
            xytext=start,
            arrowprops={"arrowstyle": head, "color": colour, "connectionstyle": f"arc3,rad={rad}"},
        )
    for c, label in enumerate(steps):
        ax.text(c * gap_x, -0.75, f"t = {label}", ha="center", va="top", fontsize=8)
    ax.set_xlim(-gap_x / 2 - 0.2, (len(steps) - 0.5) * gap_x + 0.2)
    ax.set_ylim(-1.2, (len(rows) - 0.4) * gap_y)
    _finish(ax, title + "   (unrolled in time; blue: h_{t-1} -> h_t)")
    save_drawing(fig, out)
    return drawing


def _unrolled_arrows(drawing: Drawing, rows: list, steps: list[str]) -> None:
    """Feed arrows up each step, recurrence arrows along each recurrent row."""
    names = {box.name for box in drawing.boxes}
    below = "x"
    for name, layer, _ in rows[1:]:
        if isinstance(layer, LastStep):
            continue
        for c, step in enumerate(steps):
            target = f"{name}@{step}"
            if target not in names:
                continue
            source = f"{below}@{step}"
            if source not in names:  # the first layer after 'last' reads the last step of the one below
                source = f"{below}@{steps[-1]}"
            drawing.arrows.append(Arrow(source, target, "feed"))
            if isinstance(layer, Recurrent) and c > 0:
                previous = f"{name}@{steps[c - 1]}"
                drawing.arrows.append(Arrow(previous, target, "output" if layer.kind == "jordan" else "recurrence"))
                if layer.bidirectional:
                    drawing.arrows.append(Arrow(target, previous, "backward"))
        below = name


# ---- common ------------------------------------------------------------------------------


def _finish(ax, title: str) -> None:
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def save_drawing(fig, out: Path) -> Path:
    """PNG through the common saver; SVG (vector, for slides) directly."""
    if out.suffix.lower() == ".png":
        return save_figure(fig, out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="svg")
    except OSError as err:
        raise CapasError(f"cannot write the drawing {out}: {err.strerror or err}; choose another path") from None
    finally:
        plt.close(fig)
    return out
