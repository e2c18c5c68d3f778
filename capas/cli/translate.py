"""``capas translate RUN_DIR TEXT...``: run a trained encoder-decoder on strings."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas.cli import app


@app.command()
def translate(
    run_dir: Path = typer.Argument(..., help="A run directory of a trained seq2seq model (capas.fit or a recipe)."),
    texts: list[str] = typer.Argument(..., help='One or more strings to translate, e.g. "3 de mayo de 1979".'),
    beam: int = typer.Option(1, "--beam", min=1, help="Beam width (1: greedy decoding)."),
    attention: Path = typer.Option(
        None,
        "--attention",
        help="Draw the attention heatmap to this new .png or .svg (several texts: NAME-1.png, NAME-2.png...).",
    ),
    allow_longer: bool = typer.Option(
        False, "--allow-longer", help="Try sources longer than any seen in training (refused by default)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --attention picture."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (last stdout line)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the outputs."),
) -> None:
    """Print each text's output; with --attention, draw where each output symbol looked."""
    from capas.api.seq2seq import translate as run_translate

    results = run_translate(run_dir, texts, beam=beam, attention=attention, allow_longer=allow_longer, force=force)
    if as_json:
        typer.echo(
            json.dumps({"outputs": [r.output for r in results], "plots": [str(r.plot) for r in results if r.plot]})
        )
        return
    for result in results:
        typer.echo(result.output if quiet or len(results) == 1 else f"{result.source}\t{result.output}")
        if result.plot is not None and not quiet:
            typer.echo(f"attention map: {result.plot}", err=True)
