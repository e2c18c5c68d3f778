"""``capas playground``: serve the browser playground (TensorFlow Playground on capas)."""

from __future__ import annotations

import typer

from capas.cli import app


@app.command()
def playground(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: this machine only)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
) -> None:
    """Watch any capas network learn in the browser: TensorFlow Playground's page, with every
    capas spec, optimizer, BackProp variant and engine, CSV uploads and run-directory export."""
    import torch
    import uvicorn

    from capas.playground import create_app

    torch.set_num_threads(1)  # small nets: one thread per tab's session beats threads fighting over cores

    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"capas playground: http://{shown}:{port}  (Ctrl-C stops it)")
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", ws_max_size=2 * 1024 * 1024)
