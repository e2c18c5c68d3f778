"""What several commands ask of their parsed options: which ones the user typed, the rule
that ``--resume`` takes its options from the run it continues, and the options of a data
file (``capas.data.files.FILE_OPTIONS``), declared once for every command that loads one."""

from __future__ import annotations

from collections.abc import Iterable

import typer

from capas.errors import TrainingError

TARGET = typer.Option(None, "--target", help="A table's target column (default: the last).")
IMPUTE = typer.Option(None, "--impute", help="Fill a table's missing values: mean or median.")
TASK = typer.Option(None, "--task", help="classification or regression (default: from the targets).")
IMAGE_SIZE = typer.Option(None, "--image-size", help="Resize an image folder's images: N or HxW.")


def typed_options(ctx: typer.Context) -> list[str]:
    """Names of the parameters the user typed (not left at their defaults)."""
    return [name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"]


def flag(ctx: typer.Context, name: str) -> str:
    """The option as the user writes it (``--batch-size`` for ``batch_size``)."""
    return next(p.opts[0] for p in ctx.command.params if p.name == name)


def refuse_with_resume(ctx: typer.Context, allowed: Iterable[str], source: str) -> None:
    """A one-line error naming every typed option but ``allowed`` (and ``resume``): a resumed
    run takes them from ``source`` (its config.json or pretrain.json)."""
    allowed = {"resume", *allowed}
    given = sorted(flag(ctx, name) for name in typed_options(ctx) if name not in allowed)
    if given:
        goes_with = ", ".join(flag(ctx, name) for name in sorted(allowed - {"resume"}))
        raise TrainingError(
            f"--resume takes its options from the run's {source}; drop {', '.join(given)} "
            f"(only {goes_with} go with --resume)"
        )
