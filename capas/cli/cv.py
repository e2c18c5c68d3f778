"""``capas cv``: k-fold cross-validation of a spec and options, optionally over a small grid.

``capas cv --data iris.csv --model 4-16-3 --folds 5 --grid lr=0.01,0.003`` trains 5 networks
per setting and prints the mean ± spread (N-1 standard deviation across folds) of every
metric, one line per setting, best first (``capas.api.cv``). Nothing here imports torch
before the command runs.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from capas import defaults
from capas.cli import app
from capas.cli.options import IMAGE_SIZE, IMPUTE, TARGET, TASK

#: metrics printed on a setting's line (all of them are in --json)
SHOWN = ("accuracy", "macro_f1", "loss", "rmse", "mae")


def _setting(options: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in options.items()) or "(options as given)"


@app.command("cv")
def cv_command(
    data: str = typer.Option(defaults.DATASET, "--data", help="Dataset name or a data file / image folder."),
    model: str = typer.Option(None, "--model", help="Model spec (default: <inputs>-64-<outputs>)."),
    folds: int = typer.Option(5, "--folds", help="Number of folds k (stratified for classification)."),
    grid: list[str] = typer.Option(
        [], "--grid", help="key=v1,v2 (repeatable): every combination is cross-validated, e.g. --grid lr=0.01,0.003."
    ),
    act: str = typer.Option(defaults.ACTIVATION, "--act", help="Hidden activation."),
    optimizer: str = typer.Option(defaults.OPTIMIZER, "--optimizer", help="Optimizer name."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: by optimizer)."),
    epochs: int = typer.Option(defaults.EPOCHS, "--epochs", help="Epochs of each fold's training."),
    batch_size: int = typer.Option(defaults.BATCH_SIZE, "--batch-size", help="Mini-batch size."),
    seed: int = typer.Option(defaults.SEED, "--seed", help="Seed of the folds and of every network."),
    target: str = TARGET,
    impute: str = IMPUTE,
    task: str = TASK,
    image_size: str = IMAGE_SIZE,
    quiet: bool = typer.Option(False, "--quiet", help="No per-fold progress lines."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with every fold's metrics."),
) -> None:
    """Cross-validate a model: mean ± spread of every metric over k folds (and over --grid)."""
    from capas.api.cv import cross_validate, parse_grid

    parsed = parse_grid(grid)
    file_options = {"target": target, "impute": impute, "task": task, "image_size": image_size}

    def progress(setting: dict[str, Any], fold: int, metrics: dict[str, float]) -> None:
        if not quiet:
            shown = "  ".join(f"{k} {metrics[k]:.4g}" for k in SHOWN if k in metrics)
            typer.echo(f"fold {fold}/{folds} {_setting(setting)}: {shown}", err=True)
            sys.stderr.flush()

    results = cross_validate(
        data,
        model,
        folds=folds,
        seed=seed,
        grid=parsed,
        act=act,
        data_options={k: v for k, v in file_options.items() if v is not None},
        on_fold=progress,
        optimizer=optimizer,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
    )
    ranked = sorted(range(len(results)), key=lambda i: -results[i].score())
    if as_json:
        record = {"data": data, "model": model, "folds": folds, "results": [r.to_json() for r in results]}
        typer.echo(json.dumps({**record, "best": ranked[0]}))
        return
    typer.echo(f"{folds}-fold cross-validation on {data} (mean ± spread over folds):")
    for place, i in enumerate(ranked):
        metrics = results[i].metrics()
        shown = "  ".join(f"{k} {metrics[k]['mean']:.4f} ± {metrics[k]['std']:.4f}" for k in SHOWN if k in metrics)
        typer.echo(f"{'best ' if place == 0 and len(results) > 1 else '  '}{_setting(results[i].options)}: {shown}")
