"""``capas generate RUN_DIR --prime "..." --length 200 --temperature 1``: text from a text run."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas.cli import app


@app.command()
def generate(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run trained on the 'text' dataset."),
    prime: str = typer.Option(..., "--prime", help="The text to start from (characters of the training text)."),
    length: int = typer.Option(200, "--length", min=0, help="How many characters to generate after the prime."),
    temperature: float = typer.Option(
        1.0, "--temperature", help="Softmax temperature: 1 samples the model, < 1 sharpens, > 1 flattens."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the sampling."),
    as_json: bool = typer.Option(False, "--json", help='Print {"run_dir": ..., "text": ...} (last stdout line).'),
) -> None:
    """Continue --prime with characters sampled one at a time from a character-level net,
    each fed back as the next input (one-to-many)."""
    from capas.api.generate import generate_text

    text = generate_text(run_dir, prime, length, temperature, seed)
    typer.echo(json.dumps({"run_dir": str(run_dir), "text": text}) if as_json else text)
