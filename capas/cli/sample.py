"""``capas sample RUN_DIR --n 64 --out grid.png [--npy samples.npy]``: draw from a GAN or an RBM run."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas.cli import app
from capas.errors import CapasError


@app.command()
def sample(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="A GAN or RBM run directory (capas.fit of a GAN or an RBM, capas run)."
    ),
    n: int = typer.Option(64, "--n", min=1, help="How many samples to draw."),
    out: Path = typer.Option(None, "--out", help="PNG to write: an image grid, or a scatter plot of 2-D samples."),
    npy: Path = typer.Option(None, "--npy", help="Also (or only) the samples as a float32 .npy array (n, *shape)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the noise the samples come from."),
    steps: int = typer.Option(None, "--steps", min=1, help="An RBM's Gibbs steps from a random start (default 1000)."),
    force: bool = typer.Option(False, "--force", help="Replace existing output files."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing."),
    as_json: bool = typer.Option(False, "--json", help='Print {"run_dir": ..., "written": [...]} (last stdout line).'),
) -> None:
    """Draw N samples from the generator of a trained GAN (or the Gibbs chains of an RBM) and
    write them as a PNG grid (images) or scatter plot (2-D points), and/or as a .npy array."""
    from capas.api.sample import write_samples

    if out is None and npy is None:
        raise CapasError("give --out grid.png and/or --npy samples.npy: where the samples go")
    written = write_samples(run_dir, n, out=out, npy=npy, seed=seed, steps=steps, force=force)
    if as_json:
        typer.echo(json.dumps({"run_dir": str(run_dir), "n": n, "written": [str(p) for p in written]}))
    elif not quiet:
        for path in written:
            typer.echo(str(path))
