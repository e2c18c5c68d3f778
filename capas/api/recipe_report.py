"""What a recipe run leaves for a human: ``report.md`` and, for sweeps, ``sweep.png``.

The report lists the settings (with the data fallback note, if any), one metrics row per
model, the "speed of learning" ratio of the first to the last hidden layer at the first
epoch (Nielsen's vanishing-gradient measure), the warnings training raised, and links to
every plot.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from capas.api.recipes import SPEED_PROBE
from capas.diagnostics.figures import plt, save_figure
from capas.diagnostics.plots_training import gradient_norm_series


def find_metric(metrics: dict[str, Any], name: str) -> float | None:
    """``metrics[name]`` or ``metrics["<split>_<name>"]`` (e.g. ``test_accuracy``), else None."""
    for key, value in metrics.items():
        if key == name or key.endswith(f"_{name}"):
            return float(value)
    return None


def hidden_speed_ratio(norms: dict[str, float]) -> tuple[str, str, float] | None:
    """(first hidden layer, last hidden layer, norm_first / norm_last) from per-layer norms in
    network order; the output layer is left out, as in Nielsen's ch. 5 figure. None with
    fewer than two hidden layers."""
    hidden = list(norms)[:-1]
    if len(hidden) < 2:
        return None
    first, last = float(norms[hidden[0]]), float(norms[hidden[-1]])
    return hidden[0], hidden[-1], first / last if last > 0 else math.inf


def speed_rows(variant: Any) -> list[tuple[str, tuple[str, str, float]]]:
    """The first/last hidden-layer ratios worth reporting for one trained model."""
    initial = variant.initial_grad_norms
    epoch1 = {k: float(v[0]) for k, v in gradient_norm_series(variant.history[:1]).items()}
    measures = [
        ("weights, at initialisation", {k: w for k, (w, _) in initial.items()}),
        ("biases, at initialisation (Nielsen's measure)", {k: b for k, (_, b) in initial.items()}),
        ("weights, epoch 1 (trainer's record)", epoch1),
    ]
    return [(what, ratio) for what, norms in measures if (ratio := hidden_speed_ratio(norms)) is not None]


def sweep_errors(variants: list[Any]) -> dict[str, np.ndarray]:
    """x positions (widths, else 1..M); train/test error (1 - accuracy, NaN for regression)
    and train/test loss of each model.  Each (M,)."""
    xs = [v.width if v.width is not None else i + 1 for i, v in enumerate(variants)]
    rows = []
    for v in variants:
        last = v.history[-1] if v.history else {}
        test_acc, train_acc = find_metric(v.test_metrics, "accuracy"), last.get("train_accuracy")
        test_loss = find_metric(v.test_metrics, "loss")
        rows.append(
            (
                1.0 - float(train_acc) if train_acc is not None else math.nan,
                1.0 - test_acc if test_acc is not None else math.nan,
                float(last.get("train_loss", math.nan)),
                test_loss if test_loss is not None else math.nan,
            )
        )
    columns = np.array(rows, dtype=float).reshape(len(variants), 4).T  # (4, M)
    return {
        "x": np.array(xs, dtype=float),
        "train": columns[0],
        "test": columns[1],
        "train_loss": columns[2],
        "test_loss": columns[3],
    }


def plot_sweep(variants: list[Any], path: str | Path) -> Path:
    """Train and test error and loss against width (log axis: the double-descent figure) or model."""
    series = sweep_errors(variants)
    panels = [("error (1 - accuracy)", "train", "test"), ("loss", "train_loss", "test_loss")]
    panels = [p for p in panels if not np.all(np.isnan(series[p[2]]))]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (label, train, test) in zip(axes[0], panels):
        ax.plot(series["x"], series[train], "o--", label="train")
        ax.plot(series["x"], series[test], "o-", label="test")
        if all(v.width is not None for v in variants):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("hidden width")
        else:
            ax.set_xticks(series["x"], [v.label for v in variants])
            ax.set_xlabel("model")
        ax.set_ylabel(label)
        ax.legend()
    return save_figure(fig, path)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _link(path: Path, base: Path) -> str:
    relative = Path(os.path.relpath(path, base)).as_posix()
    return f"![{path.name}]({relative})" if path.suffix in (".png", ".gif") else f"[{path.name}]({relative})"


def report_markdown(result: Any, recipe_path: Path) -> str:
    """The text of ``report.md`` for a ``RecipeResult``."""
    recipe, out = result.recipe, result.out_dir
    lines = [f"# {recipe.name}", "", recipe.description.strip(), "", "## Settings", ""]
    lines.append(f"- recipe: `{recipe_path}`")
    lines.append(
        f"- data: **{result.data_name}** (seed {recipe.seed}, "
        f"validation {recipe.data.validation}, train size {recipe.data.train_size or 'all'}"
        + (f", label noise {recipe.data.label_noise:g}" if recipe.data.label_noise else "")
        + ")"
    )
    if result.data_note:
        lines.append(f"- **note:** {result.data_note}")
    model = recipe.model
    lines.append(
        f"- model: act `{model.act}`, loss `{result.loss}`"
        + (f", init `{model.init}`" if model.init else "")
        + (f", output act `{model.output_act}`" if model.output_act else "")
    )
    if recipe.pretrain:  # greedy pre-training before the training below (capas/api/pretrain_recipe.py)
        from capas.api.pretrain_recipe import describe_pretraining

        lines.append(describe_pretraining(recipe.pretrain, [v.run_dir for v in result.variants]))
    lines.append("- training: " + (", ".join(f"{k} = `{v}`" for k, v in recipe.train.items()) or "defaults"))
    metric_keys = list(
        dict.fromkeys(
            k for v in result.variants for k, value in v.test_metrics.items() if isinstance(value, (int, float))
        )
    )
    lines += [
        "",
        "## Results",
        "",
        "| model | spec | params | epochs | train seconds | final train loss | " + " | ".join(metric_keys) + " |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(metric_keys),
    ]
    for v in result.variants:
        last = v.history[-1] if v.history else {}
        seconds = sum(float(row.get("seconds", 0.0)) for row in v.history)
        cells = [
            v.label,
            f"`{v.spec}`",
            str(v.params),
            str(len(v.history)),
            f"{seconds:.1f}",
            _fmt(last.get("train_loss")),
        ]
        cells += [_fmt(v.test_metrics.get(k)) for k in metric_keys]
        lines.append("| " + " | ".join(cells) + " |")
    speeds = [(v, what, ratio) for v in result.variants for what, ratio in speed_rows(v)]
    if speeds:
        lines += [
            "",
            "## Speed of learning at the start",
            "",
            "Gradient norm of the first hidden layer over the last hidden layer's, for the data"
            f" loss on (at most) the first {SPEED_PROBE:,} training samples (no penalty) at initialisation,"
            " and as the trainer recorded it in epoch 1 (also the data loss's gradient, averaged over the epoch's steps);"
            " below 1 the first layer learns more slowly (vanishing gradient).",
            "",
            "| model | gradient | first / last hidden layer | ratio | last is faster by |",
            "|---|---|---|---:|---:|",
        ]
        for v, what, (first, last, ratio) in speeds:
            faster = f"{1 / ratio:.3g}x" if ratio > 0 else "inf"
            lines.append(f"| {v.label} | {what} | {first} / {last} | {ratio:.4g} | {faster} |")
    warned = [(v.label, w) for v in result.variants for w in v.warnings]
    if warned:
        lines += ["", "## Warnings during training", ""] + [f"- {label}: {w}" for label, w in warned]
    lines += ["", "## Plots", ""]
    for path in result.extra_plots:
        lines.append(_link(path, out))
    for v in result.variants:
        if len(result.variants) > 1 and v.plots:
            lines += ["", f"### {v.label}", ""]
        lines += [_link(p, out) for p in v.plots]
    return "\n".join(lines) + "\n"


def write_report(result: Any, recipe_path: Path) -> Path:
    """Write ``report.md`` into the recipe's output folder (atomically) and return its path."""
    result.report.parent.mkdir(parents=True, exist_ok=True)
    tmp = result.report.with_name(result.report.name + ".tmp")
    tmp.write_text(report_markdown(result, recipe_path), encoding="utf-8")
    os.replace(tmp, result.report)
    return result.report
