"""``capas summary``: every layer of a network with its output shape, parameters and FLOPs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from capas import defaults
from capas.cli import app
from capas.errors import SpecError


@app.command()
def summary(
    spec: str = typer.Argument(
        ...,
        metavar="SPEC",
        help="A model spec like '784-30-10' or '1x28x28 c5x5x6 mp2 d10', a TOML recipe with a [model] "
        "table, or a run directory (its model.json).",
    ),
    act: str = typer.Option(
        None,
        "--act",
        help=f"Activation of the hidden layers (default {defaults.ACTIVATION}): {', '.join(defaults.ACTIVATIONS)}.",
    ),
    loss: str = typer.Option(
        None,
        "--loss",
        help=f"Loss the network is built for ({', '.join(defaults.LOSSES)}); "
        "sets the output activation (cross_entropy -> softmax, binary_cross_entropy -> "
        "sigmoid, mse -> linear).",
    ),
    output_act: str = typer.Option(
        None, "--output-act", help=f"Output activation, overriding the loss's: {', '.join(defaults.ACTIVATIONS)}."
    ),
    init: bool = typer.Option(
        False, "--init", help="Show each layer's weight initialisation next to the course's table instead."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object (last stdout line)."),
) -> None:
    """Show each layer's output shape and parameter count, the totals and the forward FLOPs."""
    from rich.console import Console

    from capas.diagnostics import summarize
    from capas.models.network import read_model_table
    from capas.models.spec_input import existing_path

    options = {k: v for k, v in {"act": act, "loss": loss, "output_act": output_act}.items() if v is not None}
    if init:
        _print_init(spec, options, as_json)
        return
    path = existing_path(spec)  # None for a spec too long or odd to be a path
    if path is not None and path.is_dir():
        result = _summarize_run_dir(path, options)
    elif spec.endswith(".toml"):
        result = summarize(read_model_table(spec), **options)
    else:
        from capas.models.presets import resolve

        result = summarize(resolve(spec), **options)  # a preset's name (lenet5...) is its spec
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    console = Console(width=max(Console().width, 100))
    for table in result.tables() if hasattr(result, "tables") else [result.table()]:
        console.print(table)


def _summarize_run_dir(path: Path, options: dict[str, Any]):
    """The summary of the network in ``path/model.json`` (``options`` override its config),
    built on the meta device: no weights are allocated."""
    import torch

    from capas.diagnostics import summarize
    from capas.models import Network
    from capas.models.registry import from_config
    from capas.train.rundir import read_json

    model_file = path / "model.json"
    if not model_file.is_file():
        raise SpecError(f"{path} is a directory without model.json; give a spec, a .toml recipe or a run directory")
    config = read_json(model_file)  # RunDirError when damaged or nested too deep
    if not isinstance(config, dict):
        raise SpecError(
            f"{model_file} holds a {type(config).__name__}, not a model config; is this a capas run directory?"
        )
    if config.get("model", "network") != "network":  # a GAN, an encoder-decoder...: by its parts
        if options:
            raise SpecError(f"{', '.join(f'--{k}' for k in options)}: only for a network's summary; drop them")
        with torch.device("meta"):
            return summarize(from_config(config))
    if "loss" in options and "output_act" not in options:
        config.pop("output_act", None)  # the stored one followed the stored loss; follow the new one
    with torch.device("meta"):
        return summarize(Network.from_config({**config, **options}))


def _print_init(spec: str, options: dict[str, Any], as_json: bool) -> None:
    """``--init``: the initialisation rows of the spec's (or run's) network, fresh weights."""
    from dataclasses import asdict

    from rich.console import Console

    from capas.diagnostics.init_table import init_rows, init_table
    from capas.models import build, build_from_toml
    from capas.models.presets import resolve
    from capas.models.registry import noun
    from capas.models.spec_input import existing_path
    from capas.train.rundir import load_model

    path = existing_path(spec)
    if path is not None and path.is_dir():
        model = load_model(path)
    else:
        model = build_from_toml(spec) if spec.endswith(".toml") else build(resolve(spec), **options)
    rows = init_rows(model)
    if not rows:
        raise SpecError(
            f"{spec} holds {noun(model)} with no layer of capas's initialisation table; --init shows the "
            "dense and convolution layers of capas networks (a GAN's too)"
        )
    if as_json:
        typer.echo(json.dumps({"init": [asdict(row) for row in rows]}))
        return
    Console(width=max(Console().width, 120)).print(init_table(rows))
