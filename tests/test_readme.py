"""README.md's Python snippets run as written, so the front page cannot drift from the API.

Every fenced ```python block is a test, run in a fresh namespace from a temporary working
directory (snippets may write ``runs/...``). A block that must not run says so, and why, in
an HTML comment on the line before its fence: ``<!-- not-a-test: needs a GPU -->``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*not-a-test\b:?\s*(?P<why>.*?)\s*-->")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number of the opening fence, code, reason to skip or None) of each ```python block."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                raise AssertionError(f"README.md:{start + 1}: a ```python block is never closed")
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            marker = SKIP.search(before)
            if marker is not None and not marker["why"]:
                raise AssertionError(f"README.md:{start + 1}: <!-- not-a-test --> must say why (not-a-test: reason)")
            blocks.append((start + 1, "\n".join(lines[start + 1 : end]) + "\n", marker and marker["why"]))
            i = end
        i += 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_snippets():
    assert len(BLOCKS) >= 1


def test_a_snippet_is_skipped_only_with_a_reason():
    text = "intro\n<!-- not-a-test: needs a GPU -->\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n"
    assert python_blocks(text) == [(3, "raise SystemExit\n", "needs a GPU"), (7, "x = 1\n", None)]
    with pytest.raises(AssertionError, match="must say why"):
        python_blocks("<!-- not-a-test -->\n```python\nx = 1\n```\n")


@pytest.mark.parametrize(("line", "code", "skip"), BLOCKS, ids=[f"README.md:{line}" for line, _, _ in BLOCKS])
def test_readme_snippet_runs(line, code, skip, tmp_path, monkeypatch):
    if skip:
        pytest.skip(f"marked not-a-test in README.md: {skip}")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
