"""``capas ensemble``: N networks of one spec from different seeds, and their average."""

from __future__ import annotations

import json

import typer

from capas import defaults
from capas.cli import app


@app.command()
def ensemble(
    data: str = typer.Option(defaults.DATASET, "--data", help="A dataset name."),
    model: str = typer.Option(..., "--model", help="The spec every member is built from, e.g. 64-64-10."),
    n: int = typer.Option(5, "--n", help="Members (seeds 0..N-1)."),
    epochs: int = typer.Option(None, "--epochs", help=f"Epochs per member (default {defaults.EPOCHS})."),
    optimizer: str = typer.Option(None, "--optimizer", help="Optimizer of every member (default adam)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: by optimizer)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the ensemble's line."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as one JSON object (last stdout line)."),
) -> None:
    """Train N networks from different seeds and report each, their average and its gain."""
    from capas.api.ensemble import ensemble as train_ensemble

    options = {k: v for k, v in {"epochs": epochs, "optimizer": optimizer, "lr": lr}.items() if v is not None}
    result = train_ensemble(model, data, n=n, **options)
    if as_json:
        typer.echo(json.dumps(result.summary()))
        return
    if not quiet:
        for seed, score in enumerate(result.member_scores):
            typer.echo(f"member {seed}: {result.metric} {score:.4f}")
    mean = sum(result.member_scores) / len(result.member_scores)
    typer.echo(
        f"ensemble of {n}: {result.metric} {result.score:.4f} (members' mean {mean:.4f}, gain {result.gain:+.4f})"
    )
