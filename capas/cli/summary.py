"""``capas summary``: every layer of a network with its output shape, parameters and FLOPs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from capas.cli import app
from capas.errors import SpecError


@app.command()
def summary(
    spec: str = typer.Argument(
        ..., help="A model spec like '784-30-10' or '1x28x28 c5x5x6 mp2 d10', a TOML recipe with a [model] "
        "table, or a run directory (its model.json)."
    ),
    act: str = typer.Option(None, "--act", help="Activation of the hidden layers (default relu)."),
    loss: str = typer.Option(None, "--loss", help="Loss the network is built for; sets the output activation "
                             "(cross_entropy -> softmax, binary_cross_entropy -> sigmoid, mse -> linear)."),
    output_act: str = typer.Option(None, "--output-act", help="Output activation, overriding the loss's."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object (last stdout line)."),
) -> None:
    """Show each layer's output shape and parameter count, the totals and the forward FLOPs."""
    import torch
    from rich.console import Console

    from capas.diagnostics import summarize
    from capas.models import Network

    options = {k: v for k, v in {"act": act, "loss": loss, "output_act": output_act}.items() if v is not None}
    path = Path(spec)
    if path.is_dir() or (spec.endswith(".toml") and path.is_file()):
        model_file = path / "model.json" if path.is_dir() else path
        if not model_file.is_file():
            raise SpecError(f"{path} is a directory without model.json; give a spec, a .toml recipe or a run directory")
        text = model_file.read_text()
        if path.is_dir():
            try:
                config = json.loads(text)
            except json.JSONDecodeError as err:
                raise SpecError(f"{model_file} is not valid JSON ({err}); is this a capas run directory?") from None
            with torch.device("meta"):
                result = summarize(Network.from_config({**config, **options}))
        else:
            import tomllib

            try:
                table = tomllib.loads(text).get("model")
            except tomllib.TOMLDecodeError as err:
                raise SpecError(f"{path} is not valid TOML: {err}") from None
            if not isinstance(table, dict):
                raise SpecError(f"{path} has no [model] table; add [model] with spec = \"784-30-10\"")
            result = summarize(table, **options)
    else:
        result = summarize(spec, **options)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    Console(width=max(Console().width, 100)).print(result.table())
