"""``capas run RECIPE.toml``: run a classic experiment end to end and write its report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas.cli import app
from capas.errors import CapasError


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["train.epochs=2", ...]`` -> ``{"train.epochs": 2}`` with TOML-typed values."""
    from capas.recipes import parse_value

    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CapasError(f"--set expects key=value (e.g. train.epochs=5), got {pair!r}")
        overrides[key.strip()] = parse_value(raw.strip())
    return overrides


@app.command()
def run(
    recipe: Path = typer.Argument(..., help="A recipe TOML file, e.g. recipes/xor-boundary.toml."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: runs/<recipe name>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: --set train.epochs=5 (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or notes."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary as the last stdout line."),
) -> None:
    """Train the recipe's model(s), draw its plots and write report.md."""
    from capas.recipes import run_recipe

    result = run_recipe(recipe, out=out, overrides=parse_overrides(set_), quiet=quiet)
    if as_json:
        summary = {
            "report": str(result.report),
            "data": result.data_name,
            "note": result.data_note,
            "models": [{"label": v.label, "spec": v.spec, "run_dir": str(v.run_dir), "test": v.test_metrics}
                       for v in result.variants],
        }
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"report: {result.report}")
