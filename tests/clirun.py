"""``run_cli``: a capas command run in-process, its exit code and both streams captured
(for the tests that need stderr whole: one-line errors, no tracebacks)."""

from __future__ import annotations

import contextlib
import io

from capas.cli import main


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``capas ARGS`` run in-process."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exit_:
            code = exit_.code or 0
    return code, out.getvalue(), err.getvalue()
