"""The ``capas`` command: one typer app, one small module per group of commands."""

from __future__ import annotations

import functools
import sys
import warnings

import typer

from capas.errors import CapasError, CapasWarning, TrainingInterrupted

app = typer.Typer(
    name="capas",
    help="Build, train and understand neural networks (PyTorch).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # help texts are plain text: rich markup would eat "[model]" or "[0, 1]" from them
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    """``capas --version``: the installed versions of capas and torch (read from their
    metadata: nothing is imported) and Python's."""
    if not value:
        return
    import platform
    from importlib import metadata

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "(not installed)"

    typer.echo(f"capas {version('capas')} (torch {version('torch')}, python {platform.python_version()})")
    raise typer.Exit()


@app.callback()
def _group(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version of capas (and torch) and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """Build, train and understand neural networks (PyTorch)."""
    # A callback keeps ``app`` a command group even while only one command is registered.


def _register() -> None:
    """Import the command modules; each adds its commands to ``app``, each run through
    :func:`_interruptible`."""
    from capas.cli import commands  # noqa: F401

    for info in app.registered_commands:
        if not getattr(info.callback, "interruptible", False):
            info.callback = _interruptible(info.callback)


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past typer (which turns a ``KeyboardInterrupt`` into a
    bare return code 130 and drops its message) to :func:`main`."""


def _interruptible(callback):
    """``callback`` with a KeyboardInterrupt (a ``TrainingInterrupted`` saying where the run
    stopped and how to resume it) re-raised as :class:`_Interrupted`."""

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except KeyboardInterrupt as err:
            raise _Interrupted(str(err) if isinstance(err, TrainingInterrupted) else "interrupted") from None

    run.interruptible = True
    return run


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """capas's own warnings (vanishing gradients, dead ReLUs...) as one ``warning:`` line."""
    if issubclass(category, CapasWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user mistakes into one-line errors (exit 2) and
    Ctrl-C into one line saying how to resume (exit 130, the shell's code for SIGINT)."""
    _register()
    warnings.showwarning = _show_warning
    try:
        code = app(args=argv, standalone_mode=False)
    except CapasError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except (_Interrupted, KeyboardInterrupt) as err:
        typer.echo(str(err) if isinstance(err, (_Interrupted, TrainingInterrupted)) else "interrupted", err=True)
        sys.exit(TrainingInterrupted.exit_code)
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
    if isinstance(code, int) and code:  # typer returns, not raises, an exit code without standalone mode
        sys.exit(code)
