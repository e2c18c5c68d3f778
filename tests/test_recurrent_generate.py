"""capas generate: one-to-many sampling from a character-level text run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import capas
from capas.api.generate import generate_text
from capas.cli import _register, app
from capas.errors import CapasError, RunDirError


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A small LSTM trained on a text that repeats 'hello world. ' (written by the test)."""
    folder = tmp_path_factory.mktemp("text")
    book = folder / "book.txt"
    book.write_text("hello world. " * 60, encoding="utf-8")
    data = capas.data.load("text", path=str(book), window=12, n=300)
    capas.fit("Tx9 lstm24 d9", data, epochs=8, lr=0.03, batch_size=20, quiet=True, out=folder / "run")
    return folder / "run"


def test_a_trained_net_continues_its_text(text_run):
    text = generate_text(text_run, "hello w", length=40, temperature=0.2, seed=1)
    assert text.startswith("hello w") and len(text) == 47
    assert "orld. hello world. hello" in text
    _register()
    result = CliRunner().invoke(app, ["generate", str(text_run), "--prime", "hel", "--length", "5", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.splitlines()[-1])
    assert record["text"].startswith("hel") and len(record["text"]) == 8


def test_temperature_flattens_the_distribution(text_run):
    sharp = {generate_text(text_run, "hello", 8, temperature=0.1, seed=s) for s in range(3)}
    flat = {generate_text(text_run, "hello", 8, temperature=5.0, seed=s) for s in range(3)}
    assert len(sharp) == 1 and len(flat) > 1


def test_bad_generation_requests_are_one_line_errors(text_run, tmp_path):
    with pytest.raises(CapasError, match="characters not in the training text: 'z'"):
        generate_text(text_run, "zz", 5)
    with pytest.raises(CapasError, match="--temperature must be > 0"):
        generate_text(text_run, "he", 5, temperature=0)
    other = capas.fit("2-3-2", "xor", epochs=1, quiet=True, out=tmp_path / "xor")
    with pytest.raises(RunDirError, match="was not trained on the 'text' dataset"):
        generate_text(other.run_dir, "he", 5)
