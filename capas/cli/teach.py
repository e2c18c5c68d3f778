"""``capas teach ...``: the course's teaching plots, one subcommand each (see
``capas.diagnostics.teaching``). Every subcommand writes one picture and prints its path,
or with ``--json`` the numbers it drew."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas.cli import app
from capas.errors import CapasError

teach = typer.Typer(
    help="The course's teaching plots: activations, hidden-unit lines, learning-rate sweeps, "
    "the loss between two minima, the spread over seeds, accuracy against parameters.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(teach, name="teach")

OUT = typer.Option(..., "--out", help="The PNG to write.")
JSON = typer.Option(False, "--json", help="Print the numbers drawn as one JSON object (last stdout line).")


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CapasError(f"{what} must be comma-separated numbers like 0.001,0.01,0.1, got '{text}'") from None


def _test_split(run_dir: Path):
    """The test inputs and targets of the data ``run_dir`` was trained on."""
    from capas.api.evaluate import run_dataset
    from capas.train.rundir import load_run

    data = run_dataset(load_run(run_dir), None)
    return data.x_test, data.y_test


def _done(out: Path, record: dict, as_json: bool) -> None:
    typer.echo(json.dumps({"out": str(out), **record}) if as_json else str(out))


@teach.command("activations")
def activations(out: Path = OUT, as_json: bool = JSON) -> None:
    """Every element-wise activation f(z) and the derivative f'(z) BackProp uses."""
    from capas.diagnostics.teaching import plot_activations

    curves = plot_activations(out)
    _done(out, {"max_derivative": {name: float(df.max()) for name, (_, df) in curves.items()}}, as_json)


@teach.command("hidden-lines")
def hidden_lines(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run of a network with 2 inputs."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Each first-layer unit's line w1 x1 + w2 x2 + w0 = 0 over the run's test points."""
    from capas.diagnostics.teaching import plot_hidden_lines
    from capas.train.rundir import load_model

    model = load_model(run_dir)
    x, y = _test_split(run_dir)
    lines = plot_hidden_lines(model, x, y, out)
    _done(out, {"lines": [[line.w1, line.w2, line.w0] for line in lines]}, as_json)


@teach.command("lr-sweep")
def lr_sweep(
    model: str = typer.Option("2-8-2", "--model", help="The spec trained at every rate."),
    data: str = typer.Option("xor", "--data", help="A dataset name."),
    lrs: str = typer.Option("0.0001,0.001,0.01,0.1,1,10,100", "--lrs", help="Comma-separated learning rates."),
    epochs: int = typer.Option(10, "--epochs", help="Epochs per rate."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="The optimizer (plain SGD shows the effect best)."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Train the same network at several learning rates: too large diverges, too small is slow."""
    from capas.api.experiments import lr_sweep as sweep
    from capas.diagnostics.teaching import plot_lr_sweep

    points = plot_lr_sweep(sweep(model, data, _floats(lrs, "--lrs"), epochs=epochs, optimizer=optimizer), out)
    record = {"rates": [{"lr": p.lr, "final_loss": p.final, "diverged": p.diverged} for p in points]}
    _done(out, record, as_json)


@teach.command("minima-line")
def minima_line(
    run_a: Path = typer.Argument(..., metavar="RUN_A"),
    run_b: Path = typer.Argument(..., metavar="RUN_B", help="A second run of the same spec (another seed)."),
    steps: int = typer.Option(21, "--steps", help="Points on the line."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """The test loss on the straight line between the weights of two trained runs."""
    from capas.api.evaluate import run_dataset
    from capas.diagnostics.teaching import loss_along_line, plot_loss_line
    from capas.train.rundir import load_model, load_run

    data = run_dataset(load_run(run_a), None)
    loss = load_run(run_a).loss(data.num_classes or None)
    alphas, losses = loss_along_line(load_model(run_a), load_model(run_b), data.x_test, data.y_test, loss, steps)
    plot_loss_line(alphas, losses, out)
    _done(out, {"alphas": alphas.tolist(), "losses": losses.tolist()}, as_json)


@teach.command("seed-spread")
def seed_spread(
    models: str = typer.Option("2-2-2,2-4-2,2-16-2", "--models", help="Comma-separated specs, smallest first."),
    data: str = typer.Option("xor", "--data", help="A dataset name."),
    seeds: int = typer.Option(5, "--seeds", help="Trainings per spec (seeds 0..N-1)."),
    epochs: int = typer.Option(30, "--epochs", help="Epochs per training."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """The spread of final test losses over seeds as the network grows."""
    from capas.api.experiments import seed_spread as spread_of
    from capas.diagnostics.teaching import plot_seed_spread

    specs = [s.strip() for s in models.split(",") if s.strip()]
    stats = plot_seed_spread(spread_of(specs, data, range(seeds), epochs=epochs), out)
    _done(out, {"specs": {spec: {"mean": m, "std": s} for spec, (m, s) in stats.items()}}, as_json)


@teach.command("params-accuracy")
def params_accuracy(
    deeper: str = typer.Option("", "--deeper", help="Comma-separated run directories of ever deeper nets."),
    wider: str = typer.Option("", "--wider", help="Comma-separated run directories of ever wider nets."),
    out: Path = OUT,
    as_json: bool = JSON,
) -> None:
    """Test accuracy against the number of parameters, for deeper and for wider networks."""
    from capas.api.evaluate import evaluate
    from capas.diagnostics.teaching import plot_params_accuracy
    from capas.train.rundir import load_model

    points = {}
    for family, runs in (("deeper", deeper), ("wider", wider)):
        for run in [Path(r.strip()) for r in runs.split(",") if r.strip()]:
            params = sum(p.numel() for p in load_model(run).parameters())
            accuracy = evaluate(run).metrics.get("test_accuracy")
            if accuracy is None:
                raise CapasError(f"{run} has no test accuracy (a regression run?); give classification runs")
            points.setdefault(family, []).append((params, float(accuracy)))
    plot_params_accuracy(points, out)
    _done(out, {"points": points}, as_json)
