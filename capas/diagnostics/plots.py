"""Every plot of a trained model by name: ``make_plots`` for objects, ``plot_run`` for a run dir.

Kinds (``PLOT_KINDS``): ``curves``, ``gradients``, ``confusion``, ``boundary``, ``hidden``,
``weights``, ``activations``; ``all`` draws each that applies to the model and data
(``boundary`` needs 2-D inputs, ``confusion`` a classifier, ``gradients`` recorded norms;
a GAN gets its curves, an encoder-decoder its curves and ``attention`` (the heatmap of its
first test source), an autoencoder or an RBM its curves and weights).
Asked for by name, a kind that does not apply is an error saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from capas.diagnostics import filters, plots_model, plots_training, projection, snapshots, time_gradients
from capas.errors import CapasError
from capas.models.registry import kind_of
from capas.objectives import Loss

PLOT_KINDS = (
    "curves",
    "gradients",
    "confusion",
    "boundary",
    "hidden",
    "weights",
    "activations",
    "time-gradients",
    *filters.FILTER_KINDS,  # feature-maps, filters, top-inputs of a convolution (capas.diagnostics.filters)
    "attention",  # an encoder-decoder's attention on its first test source
)
PROBE_SIZE = 2000  # test samples used for activation histograms


def resolve_kinds(what: str | Sequence[str]) -> list[str]:
    """``"all"``, one kind, or a list of kinds -> the list of kinds; unknown names are an error."""
    wanted = [what] if isinstance(what, str) else list(what)
    if "all" in wanted:
        return list(PLOT_KINDS)
    unknown = [w for w in wanted if w not in PLOT_KINDS]
    if unknown:
        raise CapasError(f"unknown plot {unknown[0]!r}; choose from {', '.join(PLOT_KINDS)} or all")
    return wanted


def _asks_for_all(what: str | Sequence[str]) -> bool:
    return what == "all" or (not isinstance(what, str) and "all" in what)


def applicable_kinds(what: str | Sequence[str], model: nn.Module, data: Any) -> list[str]:
    """The kinds of ``what`` that can be drawn of ``model`` on ``data`` once it is trained
    (``curves`` and ``gradients`` are taken as applicable); with ``all`` the others are left
    out, while a kind asked for by name that cannot apply is a ``CapasError`` -- raised before
    any training is spent."""
    kinds = []
    for kind in resolve_kinds(what):
        reason = None if kind in ("curves", "gradients") else _not_applicable(kind, model, [], data)
        if reason and not _asks_for_all(what):
            raise CapasError(f"cannot plot {kind}: {reason}")
        if not reason:
            kinds.append(kind)
    return kinds


def make_plots(
    model: nn.Module,
    history: list[dict[str, Any]],
    data: Any,
    out_dir: str | Path,
    what: str | Sequence[str] = "all",
    layer: str | None = None,
    animate_from: str | Path | None = None,
    loss: Loss | None = None,
) -> list[Path]:
    """Draw the requested plots of ``model`` trained on ``data`` (a ``Dataset``, or None) into ``out_dir``.

    ``animate_from`` is a snapshots file (``BoundarySnapshots``): the boundary plot is then
    also written as ``boundary.gif``. ``loss`` (the training loss, with its target encoding;
    default: the model's own) decides the classes the confusion matrix and the decision
    regions show, as training and ``capas evaluate`` do. Returns the paths written, in
    ``PLOT_KINDS`` order.
    """
    kinds = resolve_kinds(what)
    explicit = not _asks_for_all(what)
    out = Path(out_dir)
    written: list[Path] = []
    for kind in kinds:
        reason = _not_applicable(kind, model, history, data)
        if reason:
            if explicit:
                raise CapasError(f"cannot plot {kind}: {reason}")
            continue
        written.extend(_draw(kind, model, history, data, out, layer, animate_from, loss))
    return written


def _not_applicable(kind: str, model: nn.Module, history: list[dict], data: Any) -> str | None:
    """Why ``kind`` cannot be drawn for this model and data (None: no data), or None."""
    if kind == "curves":
        return None if history else "the run has no history"
    if kind == "gradients":
        return None if plots_training.gradient_norm_series(history) else "the history has no grad_norm/<layer> columns"
    kind_of_model = kind_of(model)
    if kind == "attention":
        if kind_of_model != "seq2seq" or model.attention is None:
            return "it needs an encoder-decoder with attention"
    elif kind_of_model not in ("network", None) and not (kind == "weights" and kind_of_model in ("autoencoder", "rbm")):
        return f"it reads the layers of a network, and the run holds a model of kind {kind_of_model}"
    if data is None:
        return "the run's data cannot be reloaded (it was not a named capas dataset)"
    if kind == "attention":
        return None if getattr(data, "pairs", {}).get("test") else "it needs the run's test pairs"
    if kind == "time-gradients":
        return time_gradients.not_applicable(model)
    if kind in filters.FILTER_KINDS:
        return filters.not_applicable(kind, model, data)
    classifier = data.task == "classification"
    if kind == "confusion" and not classifier:
        return "it needs a classification dataset"
    if kind == "boundary" and (tuple(data.input_shape) != (2,) or not classifier):
        return f"it needs a classifier on 2-D inputs, the data's inputs have shape {tuple(data.input_shape)}"
    if kind == "hidden" and not classifier:
        return "it colours the points by class, so it needs a classification dataset"
    if kind == "hidden" and len(list(model.layer_names())) < 2:
        return "the model has no hidden layer"
    return None


def _draw(
    kind: str,
    model: nn.Module,
    history: list[dict],
    data: Any,
    out: Path,
    layer: str | None,
    animate_from: str | Path | None,
    loss: Loss | None,
) -> list[Path]:
    path = out / f"{kind}.png"
    if kind == "curves":
        plots_training.plot_curves(history, path)
    elif kind == "gradients":
        plots_training.plot_gradient_norms(history, path)
    elif kind == "confusion":
        matrix = plots_model.confusion(model, data.x_test, data.y_test, data.num_classes, loss)
        plots_model.plot_confusion(matrix, data.class_names, path)
    elif kind == "boundary":
        plots_model.plot_boundary(model, data.x_train, data.y_train, data.num_classes, path, loss=loss)
        if animate_from is not None:
            gif = out / "boundary.gif"
            frames = snapshots.load_snapshots(animate_from)
            snapshots.animate_boundary(frames, data.x_train, data.y_train, data.num_classes, gif)
            return [path, gif]
    elif kind == "hidden":
        name = layer or projection.default_hidden_layer(model)
        points, how = projection.hidden_projection(model, data.x_test, name)
        path = out / f"hidden-{name}.png"
        units = model.hidden(data.x_test[:1], name)[0].numel()
        projection.plot_hidden(
            points,
            data.y_test,
            data.class_names,
            path,
            f"hidden layer {name}: {how}",
            projection.axis_labels(name, how, units),
        )
    elif kind == "weights":
        plots_model.plot_weights(plots_model.first_layer_weights(model, data.input_shape), path)
    elif kind == "time-gradients":
        return time_gradients.draw_time_gradients(model, data, loss, out)
    elif kind in filters.FILTER_KINDS:
        return filters.draw(kind, model, data, out, layer)
    elif kind == "attention":
        from capas.diagnostics.attention_plots import plot_attention

        source = data.pairs["test"][0][0]
        (output, weights), *_ = model.translate([source], allow_longer=True)
        plot_attention(weights, source, output, path)
    elif kind == "activations":
        activations = plots_model.layer_activations(model, data.x_test[:PROBE_SIZE])
        plots_model.plot_activation_histograms(activations, path)
    return [path]


def plot_run(
    run_dir: str | Path, what: str | Sequence[str] = "all", layer: str | None = None, animate: bool = False
) -> list[Path]:
    """Plots of a saved run into ``RUN_DIR/plots/``, reloading its model, history and data."""
    from capas.data import names
    from capas.data.pairs import PAIR_SOURCES
    from capas.data.subsets import reload_dataset
    from capas.train.rundir import load_run

    run = load_run(run_dir)
    record = run.config.get("data") or {}
    needs_data = not set(resolve_kinds(what)) <= {"curves", "gradients"}
    named = record.get("name") in (*names(), *PAIR_SOURCES)
    data = reload_dataset(record) if needs_data and named else None
    model = run.build_model()
    animate_from = Path(run_dir) / snapshots.SNAPSHOT_FILE if animate else None
    if animate and "boundary" not in applicable_kinds(what, model, data):
        reason = _not_applicable("boundary", model, [], data) or "it is not among the plots asked for"
        raise CapasError(
            f"--animate animates the decision boundary, which cannot be drawn here: {reason}; "
            "use it with --what boundary or all on a 2-D classification run"
        )
    loss = None if data is None else run.loss(data.num_classes)
    return make_plots(model, list(run.history), data, Path(run_dir) / "plots", what, layer, animate_from, loss)
