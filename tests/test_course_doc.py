"""docs/course.md stays true: every command it shows is a real command with real options,
every recipe exists, every dataset is registered, and every `capas summary SPEC` builds
and gives the number the page states."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from capas.cli import _register, app
from capas.data import names

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "course.md").read_text(encoding="utf-8")
COMMANDS = sorted(set(re.findall(r"`(capas [^`]+)`", PAGE)))
RECIPES = sorted(set(re.findall(r"recipes/([\w-]+)\.toml", PAGE)) - {"NAME"})


def _click_command(words: list[str]):
    """The click command ``capas WORDS...`` names, and the words left after it."""
    _register()
    command = typer.main.get_command(app)
    rest = list(words)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def test_the_page_shows_many_commands_and_recipes():
    assert len(COMMANDS) > 40 and len(RECIPES) > 15


@pytest.mark.parametrize("text", COMMANDS)
def test_every_command_and_option_exists(text):
    words = shlex.split(text)[1:]
    command, rest = _click_command(words)
    assert not hasattr(command, "commands"), f"{text}: no such command"
    options = {opt for param in command.params for opt in param.opts}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{text}: {word} is not an option of {command.name}"
    for key, value in zip(rest, rest[1:]):
        if key == "--data" and not value.startswith(("RUN", "/")):
            assert value in names(), f"{text}: unknown dataset {value}"


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_exists(name):
    assert (ROOT / "recipes" / f"{name}.toml").is_file()


def _summary_rows() -> list[tuple[str, str]]:
    """(spec, number cell) of each table row whose command is a `capas summary SPEC`."""
    rows = []
    for line in PAGE.splitlines():
        cells = [c.strip() for c in line.split("|")]
        match = re.search(r'`capas summary "?([^`"]+?)"?`', line)
        if len(cells) > 3 and match and "--init" not in match.group(0):
            rows.append((match.group(1), cells[-2]))
    return rows


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")  # torch's performance note
@pytest.mark.parametrize("spec, number", _summary_rows())
def test_every_summary_spec_builds_and_gives_the_pages_count(spec, number):
    from capas.diagnostics import summarize
    from capas.models.presets import resolve

    summary = summarize(resolve(spec))
    counts = [int(n.replace(",", "")) for n in re.findall(r"\*\*([\d,]+)\*\*", number)]
    for count in counts:  # the bold numbers are the exercise's answers
        assert summary.total_params == count, f"{spec}: {summary.total_params} parameters, the page says {count}"
