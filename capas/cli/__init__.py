"""The ``capas`` command: one typer app, one small module per group of commands."""

from __future__ import annotations

import sys
import warnings

import typer

from capas.errors import CapasError, CapasWarning

app = typer.Typer(
    name="capas",
    help="Build, train and understand neural networks (PyTorch).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Build, train and understand neural networks (PyTorch)."""
    # A callback keeps ``app`` a command group even while only one command is registered.


def _register() -> None:
    """Import the command modules; each adds its commands to ``app``."""
    from capas.cli import commands  # noqa: F401


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """capas's own warnings (vanishing gradients, dead ReLUs...) as one ``warning:`` line."""
    if issubclass(category, CapasWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user mistakes into one-line errors (exit 2)."""
    _register()
    warnings.showwarning = _show_warning
    try:
        app(args=argv, standalone_mode=False)
    except CapasError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        # typer >= 0.2x vendors click (typer._click): recognise its exceptions by shape
        if callable(getattr(err, "show", None)) and isinstance(getattr(err, "exit_code", None), int):
            err.show()
            sys.exit(err.exit_code)
        raise
