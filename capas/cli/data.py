"""``capas datasets``: the dataset registry as a table (or JSON)."""

from __future__ import annotations

import json

import typer

from capas.cli import app


@app.command()
def datasets(
    as_json: bool = typer.Option(
        False, "--json", help='Print the registry as one JSON object {"datasets": [...]} (last stdout line).'
    ),
) -> None:
    """List the registered datasets: task, input shape, classes, sizes, and whether they are local."""
    from rich.console import Console
    from rich.table import Table

    from capas.data import available, data_dir

    infos = available()
    if as_json:
        typer.echo(json.dumps({"datasets": [info.to_json() for info in infos], "data_dir": str(data_dir())}))
        return
    table = Table(title="capas datasets")
    for column in ("name", "task", "input shape", "classes", "train", "test", "local"):
        numeric = column in ("classes", "train", "test")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    table.add_column("description", ratio=1, min_width=20)
    for info in infos:
        table.add_row(
            info.name,
            info.task,
            "x".join(map(str, info.input_shape)) or "strings",
            "-" if info.num_classes is None else str(info.num_classes),
            "-" if info.n_train is None else str(info.n_train),
            "-" if info.n_test is None else str(info.n_test),
            "yes" if info.local else "no",
            info.description,
        )
    console = Console(width=max(Console().width, 120))
    console.print(table)
    console.print(f"data directory: {data_dir()} (set CAPAS_DATA to change it)")
