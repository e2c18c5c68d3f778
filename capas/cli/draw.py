"""``capas draw SPEC|RUN_DIR --out net.png``: the network drawn as the course's slides draw it."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas import defaults
from capas.cli import app


@app.command()
def draw(
    spec: str = typer.Argument(
        ...,
        metavar="SPEC|RUN_DIR",
        help="A model spec like '784-30-10' or '1x28x28 c5x5x6 mp2 d10', a preset (lenet5, nielsen-ch6...), "
        "a TOML recipe with a [model] table, or a run directory (then the lines show its trained weights).",
    ),
    out: Path = typer.Option(..., "--out", help="The picture to write: a .png, or a .svg for slides."),
    act: str = typer.Option(
        None,
        "--act",
        help=f"Activation of the hidden layers of a spec (default {defaults.ACTIVATION}).",
    ),
    max_units: int = typer.Option(10, "--max-units", help="Units drawn per layer before the middle ones are elided."),
    as_json: bool = typer.Option(False, "--json", help="Print what was drawn as one JSON object (last stdout line)."),
) -> None:
    """Draw units and connections for a small MLP (trained weights coloured by sign and
    drawn thicker by size), volumes for a CNN, boxes for res, cat and rep blocks, and a
    recurrent network unrolled in time."""
    from capas.diagnostics.draw import draw as draw_network
    from capas.models import build, build_from_toml
    from capas.models.presets import resolve
    from capas.models.spec_input import existing_path
    from capas.train.rundir import load_model

    path = existing_path(spec)
    trained = path is not None and path.is_dir()
    if trained:
        model = load_model(path)
    elif spec.endswith(".toml"):
        model = build_from_toml(spec)
    else:
        model = build(resolve(spec), **({"act": act} if act else {}))
    drawing = draw_network(model, out, weights=trained, max_units=max_units)
    if as_json:
        record = {
            "out": str(drawing.path),
            "style": drawing.style,
            "columns": [{"name": c.name, "size": c.size, "shown": len(c.indices)} for c in drawing.columns],
            "lines": len(drawing.lines),
            "boxes": [{"name": b.name, "kind": b.kind, "label": b.label} for b in drawing.boxes],
        }
        typer.echo(json.dumps(record))
        return
    typer.echo(str(drawing.path))
