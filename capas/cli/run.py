"""``capas run RECIPE.toml``: run a classic experiment end to end and write its report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas.cli import app
from capas.cli.options import refuse_with_resume

#: the only options --resume combines with (the rest come from OUT/recipe.json)
_RESUME_OPTIONS = ("quiet", "as_json")


@app.command()
def run(
    ctx: typer.Context,
    recipe: Path = typer.Argument(None, help="A recipe TOML file, e.g. recipes/xor-boundary.toml."),
    out: Path = typer.Option(None, "--out", help="Output folder, new or empty (default: runs/<recipe name>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: --set train.epochs=5 (repeatable)."),
    seed: int = typer.Option(
        None,
        "--seed",
        help="Seed of the data split, init and shuffling (default: the recipe's seed); the same as --set seed=N.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or notes."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary as the last stdout line."),
    resume: Path = typer.Option(
        None, "--resume", help="Continue the interrupted run in this --out folder (finished models are kept)."
    ),
) -> None:
    """Train the recipe's model(s), draw its plots and write report.md."""
    from capas.api.recipes import parse_overrides, resume_recipe, run_recipe
    from capas.errors import CapasError

    if resume is not None:
        refuse_with_resume(ctx, _RESUME_OPTIONS, "recipe.json")
        result = resume_recipe(resume, quiet=quiet)
    else:
        if recipe is None:
            raise CapasError("capas run needs a recipe file (e.g. recipes/xor-boundary.toml), or --resume OUT")
        overrides = parse_overrides(set_)
        if seed is not None:
            if "seed" in overrides:
                raise CapasError("the seed is given twice (--seed and --set seed=...); keep one")
            overrides["seed"] = seed
        result = run_recipe(recipe, out=out, overrides=overrides, quiet=quiet)
    if as_json:
        summary = {
            "report": str(result.report),
            "data": result.data_name,
            "note": result.data_note,
            "seed": result.recipe.seed,
            "models": [
                {"label": v.label, "spec": v.spec, "run_dir": str(v.run_dir), "test": v.test_metrics}
                for v in result.variants
            ],
        }
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"report: {result.report}")
