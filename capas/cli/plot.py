"""``capas plot RUN_DIR``: PNGs (and a GIF) of a saved run, written into ``RUN_DIR/plots/``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas import defaults
from capas.cli import app
from capas.errors import CapasError

KINDS = ", ".join(defaults.PLOTS)


@app.command()
def plot(
    run_dirs: list[Path] = typer.Argument(
        ...,
        metavar="RUN_DIR...",
        help="A run directory written by `capas train`, `capas run` or `capas pretrain`; several runs "
        "with --what curves overlay their learning curves (written to --out).",
    ),
    what: str = typer.Option("all", "--what", help=f"Which plot: {KINDS}, or all (each that applies)."),
    layer: str = typer.Option(None, "--layer", help="Layer for --what hidden (default: the last hidden layer)."),
    animate: bool = typer.Option(False, "--animate", help="Also a GIF of the decision boundary over epochs."),
    out: Path = typer.Option(
        None, "--out", help="Where the overlay of several runs goes, a new .png (default: compare-curves.png)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the --out file of an overlay if it exists."),
    as_json: bool = typer.Option(
        False, "--json", help='Print the written paths as one JSON object {"plots": [...]} (last stdout line).'
    ),
) -> None:
    """Draw learning curves, per-layer gradient norms, confusion matrix, decision regions,
    hidden representations, first-layer weights and activation histograms of a run; for a
    `capas pretrain` directory, its filters, reconstructions, samples and per-layer curves."""
    from capas.diagnostics.plots import plot_run
    from capas.diagnostics.pretrain_plots import plot_pretrain_run

    if len(run_dirs) > 1:
        paths = [_compare(run_dirs, what, layer, animate, out, force)]
        _print(run_dirs[0], paths, as_json)
        return
    run_dir = run_dirs[0]
    if out is not None or force:
        raise CapasError(
            f"--out and --force are for the overlay of several runs; the plots of one run go into {run_dir / 'plots'}"
        )
    if (run_dir / "pretrain.json").is_file() and not (run_dir / "history.json").is_file():
        if what != "all" or layer is not None or animate:
            raise CapasError(
                f"{run_dir} is a pre-training run: it has filters, reconstructions and samples to "
                "plot, not --what/--layer/--animate; drop those options, or plot a run of "
                f"`capas train --init-from {run_dir}`"
            )
        paths = plot_pretrain_run(run_dir)
    else:
        paths = plot_run(run_dir, what, layer, animate)
    _print(run_dir, paths, as_json)


def _print(run_dir: Path, paths: list[Path], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"run_dir": str(run_dir), "plots": [str(p) for p in paths]}))
        return
    for path in paths:
        typer.echo(str(path))


def _compare(run_dirs: list[Path], what: str, layer: str | None, animate: bool, out: Path | None, force: bool) -> Path:
    """Overlay the learning curves of several runs, each labelled by its directory's name."""
    from capas.api.outputs import check_output_file
    from capas.diagnostics.plots_training import plot_compare_curves
    from capas.train.rundir import load_run

    if what not in ("all", "curves") or layer is not None or animate:
        raise CapasError("several runs are compared by their learning curves only: use --what curves (or none)")
    out = check_output_file(out or Path("compare-curves.png"), suffixes=(".png",), force=force)
    labels = [str(run) for run in run_dirs]
    if len({run.name for run in run_dirs}) == len(run_dirs):
        labels = [run.name for run in run_dirs]
    plot_compare_curves({label: list(load_run(run).history) for label, run in zip(labels, run_dirs)}, out)
    return out
