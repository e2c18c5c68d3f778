"""``capas.plot``: the plots of ``capas plot``, from Python, for a run, a result or several runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from capas.errors import CapasError


def plot(
    run_or_result: Any,
    what: str | Sequence[str] = "all",
    *,
    data: Any = None,
    out: str | Path | None = None,
    layer: str | None = None,
) -> list[Path]:
    """Draw ``what`` (``capas.defaults.PLOTS`` names, or ``"all"``) and return the files written.

    ``run_or_result``: a run directory; a ``FitResult`` (its run directory when it has one,
    else its model and history, drawn into ``out`` with ``data`` for the plots that need
    it); or a list of run directories, whose learning curves are overlaid into ``out``
    (default ``compare-curves.png``).
    """
    from capas.api.fit import FitResult
    from capas.diagnostics.plots import make_plots, plot_run
    from capas.diagnostics.plots_training import plot_compare_curves
    from capas.train.rundir import load_run

    if isinstance(run_or_result, (list, tuple)):
        if what not in ("all", "curves"):
            raise CapasError("several runs are compared by their learning curves only: use what='curves'")
        target = Path(out or "compare-curves.png")
        runs = [Path(r) for r in run_or_result]
        plot_compare_curves({str(run): list(load_run(run).history) for run in runs}, target)
        return [target]
    if isinstance(run_or_result, FitResult):
        if run_or_result.run_dir is not None and out is None:
            return plot_run(run_or_result.run_dir, what, layer)
        if out is None:
            raise CapasError("this result has no run directory: pass out='plots/' for the folder to draw into")
        if isinstance(data, str):
            from capas.data import load

            data = load(data)
        return make_plots(run_or_result.model, list(run_or_result.history), data, out, what, layer)
    return plot_run(run_or_result, what, layer)
