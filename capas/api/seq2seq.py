"""Encoder-decoders from Python and the CLI: :func:`translate` (``capas translate``) and the
seq2seq recipe kind (``capas run recipes/dates.toml``).

A seq2seq recipe is a TOML file with ``kind = "seq2seq"``; it trains one model per
``[[models]]`` entry on the same pairs, side by side, each in ``OUT/<label>/`` through
``capas.fit`` (so each run has checkpoints and exact resume), then writes ``OUT/report.md``
(a table of test metrics, epochs and seconds; targets met or not; attention plots)::

    kind = "seq2seq"
    name = "dates"
    description = "..."
    seed = 0

    [data]                       # capas.data.pairs.load_pairs(name, seed=, validation=, **options)
    name = "dates"
    validation = 0.05
    options = { n = 20000 }

    [[models]]                   # Seq2Seq options (embed, hidden, encoder, decoder, attention...)
    label = "attention"
    options = { hidden = 64, attention = "additive" }

    [task]                       # Seq2SeqTask options (teacher forcing and its schedule)
    [train]                      # capas.fit options (epochs, batch_size, lr, patience...)
    [plots]
    example = "3 de mayo de 1979"   # heatmap after training and attention over training
    [targets]
    test_exact_match = 0.995     # the report says, per model, whether each is reached
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, ValidationError

from capas import defaults
from capas.api.outputs import check_output_file, claim_output_dir, discard_unstarted_run
from capas.errors import CapasError, RunDirError, TrainingInterrupted
from capas.train import rundir

_STRICT = ConfigDict(extra="forbid", frozen=True)
RECORD = "recipe.json"


# ---- capas translate -----------------------------------------------------------------------
@dataclass
class Translation:
    """One translated string: its source, output, and the heatmap written (if asked)."""

    source: str
    output: str
    plot: Path | None = None


def translate(
    run_dir: str | Path,
    texts: list[str],
    *,
    beam: int = 1,
    attention: str | Path | None = None,
    allow_longer: bool = False,
    force: bool = False,
) -> list[Translation]:
    """Translate ``texts`` with the seq2seq model saved in ``run_dir`` (greedy, or beam search
    of width ``beam``); with ``attention`` (a .png or .svg), draw each text's heatmap there
    (several texts: ``<stem>-1.png``, ``<stem>-2.png``...), replacing an existing file only
    with ``force``. Bad input is a one-line ``CapasError``."""
    from capas.models.registry import noun
    from capas.models.seq2seq import Seq2Seq

    model = rundir.load_model(Path(run_dir))
    if not isinstance(model, Seq2Seq):
        raise CapasError(f"{run_dir} holds {noun(model)}, not an encoder-decoder; train one with a seq2seq recipe")
    targets = []
    if attention is not None:  # checked before any work: a picture format, nothing overwritten unless force
        path = Path(attention)
        names = (
            [path]
            if len(texts) == 1
            else [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, len(texts) + 1)]
        )
        targets = [check_output_file(p, suffixes=(".png", ".svg"), force=force, option="--attention") for p in names]
    outputs = model.translate(list(texts), beam=beam, allow_longer=allow_longer)
    results = [Translation(text, output) for text, (output, _) in zip(texts, outputs)]
    if targets:
        from capas.diagnostics.attention_plots import plot_attention

        for target, result, (_, weights) in zip(targets, results, outputs):
            result.plot = plot_attention(weights, result.source, result.output, target)
    return results


# ---- the seq2seq recipe kind ---------------------------------------------------------------
class PairsSection(BaseModel):
    model_config = _STRICT
    name: str
    validation: float = defaults.VALIDATION
    options: dict[str, Any] = {}


class ModelEntry(BaseModel):
    model_config = _STRICT
    label: str
    options: dict[str, Any] = {}


class PlotsSection(BaseModel):
    model_config = _STRICT
    example: str | None = None


class Seq2SeqRecipe(BaseModel):
    model_config = _STRICT
    kind: str = "seq2seq"
    name: str
    description: str = ""
    seed: int = defaults.SEED
    data: PairsSection
    models: list[ModelEntry]
    task: dict[str, Any] = {}
    train: dict[str, Any] = {}
    plots: PlotsSection = PlotsSection()
    targets: dict[str, float] = {}


@dataclass
class Seq2SeqVariant:
    label: str
    spec: str  # the model options, as text (what `capas run --json` prints as the spec)
    run_dir: Path
    test_metrics: dict[str, Any]
    epochs: int
    seconds: float
    val_exact_match: float | None
    params: int
    plots: list[Path] = field(default_factory=list)


@dataclass
class Seq2SeqRecipeResult:
    recipe: Seq2SeqRecipe
    out_dir: Path
    data_name: str
    data_note: str | None
    variants: list[Seq2SeqVariant]
    report: Path


def load_seq2seq_recipe(raw: dict[str, Any], path: Path) -> Seq2SeqRecipe:
    """Validate a parsed seq2seq recipe; a CapasError naming the first bad key."""
    try:
        recipe = Seq2SeqRecipe.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise CapasError(f"{path}: {key}: {first['msg']}") from None
    labels = [m.label for m in recipe.models]
    if not labels or len(set(labels)) != len(labels):
        raise CapasError(f"{path}: [[models]] needs at least one entry, each with its own label")
    _check_tables(recipe, path)
    return recipe


def _check_tables(recipe: Seq2SeqRecipe, path: Path) -> None:
    """[train] and [task] checked before any output is claimed or model trained: a recipe
    that cannot run leaves nothing behind."""
    from capas.api.recipes import check_train_table
    from capas.data.vocab import SPECIALS
    from capas.models.seq2seq import Seq2Seq
    from capas.tasks import for_model

    check_train_table(recipe.train, path)
    probe = Seq2Seq([*SPECIALS, "a"], [*SPECIALS, "a"], embed=1, hidden=1)  # a task needs a model to check against
    try:
        for_model(probe, **recipe.task)
    except CapasError as err:
        raise CapasError(f"{path}: [task]: {err}") from None


def run_seq2seq_recipe(
    path: Path, raw: dict[str, Any], *, out: str | Path | None = None, quiet: bool = False
) -> Seq2SeqRecipeResult:
    """Train every model of the seq2seq recipe ``raw`` (read from ``path``) and write the report."""
    recipe = load_seq2seq_recipe(raw, path)
    out_dir = Path(out) if out is not None else Path("runs") / recipe.name
    claim_output_dir(out_dir, hint="choose another --out, or continue it with capas run --resume")
    record = {"format": "capas-recipe", "kind": "seq2seq", "recipe_path": str(path), "recipe": raw, "finished": False}
    return _run(recipe, path, out_dir, record, quiet)


def resume_seq2seq_recipe(out_dir: Path, record: dict[str, Any], *, quiet: bool = False) -> Seq2SeqRecipeResult:
    """Continue an interrupted seq2seq recipe: finished models kept, the interrupted one resumed."""
    if record.get("finished"):
        raise RunDirError(
            f"the recipe run in {out_dir} already finished (see {out_dir / 'report.md'}); nothing to resume"
        )
    path = Path(record.get("recipe_path", "recipe.toml"))
    return _run(load_seq2seq_recipe(record.get("recipe", {}), path), path, out_dir, record, quiet)


def _run(recipe: Seq2SeqRecipe, path: Path, out_dir: Path, record: dict[str, Any], quiet: bool) -> Seq2SeqRecipeResult:
    from capas.api.fit import fit
    from capas.data.pairs import load_pairs
    from capas.diagnostics.attention_plots import AttentionOverTraining, plot_attention
    from capas.models.seq2seq import Seq2Seq

    data = load_pairs(recipe.data.name, seed=recipe.seed, validation=recipe.data.validation, **recipe.data.options)
    unknown = [] if recipe.plots.example is None else data.source_vocab.unknown_symbols(recipe.plots.example)
    if unknown:  # found now, not after the first model has trained
        raise CapasError(
            f"{path}: plots.example {recipe.plots.example!r} holds symbols the {data.name} sources never use: "
            f"{', '.join(map(repr, unknown))}; give an example written with theirs"
        )
    models = [(entry, Seq2Seq.for_data(data, seed=recipe.seed, **entry.options)) for entry in recipe.models]
    rundir.write_json(out_dir / RECORD, record)
    variants = []
    for entry, model in models:
        run_dir = out_dir / entry.label
        state = rundir.read_json(run_dir / "state.json") if (run_dir / "state.json").is_file() else None
        callbacks = []
        if recipe.plots.example is not None and model.attention is not None and state is None:
            callbacks.append(
                AttentionOverTraining(recipe.plots.example, run_dir / "plots" / "attention_over_training.png")
            )
        if not quiet:
            _say(f"training {entry.label}: {_describe(entry.options)}")
        started = time.perf_counter()
        try:
            if state is not None and state.get("finished"):
                result = None
            elif state is not None:
                result = fit(rundir.load_model(run_dir), data, resume=run_dir, quiet=quiet)
            else:
                discard_unstarted_run(run_dir)
                options = {"seed": recipe.seed, "out": run_dir, "task_options": recipe.task, **recipe.train}
                result = fit(model, data, quiet=quiet, callbacks=callbacks, **options)
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"interrupted while training {entry.label}; continue with: capas run --resume {out_dir}"
            ) from None
        seconds = time.perf_counter() - started
        run = rundir.load_run(run_dir)
        trained = result.model if result is not None else run.build_model()
        metrics = {k: v for k, v in (run.metrics or {}).items() if k.startswith("test_")}
        history = list(run.history)
        seconds = sum(h.get("seconds", 0.0) for h in history) or seconds
        plots = [p for p in [run_dir / "plots" / "attention_over_training.png"] if p.is_file()]
        if recipe.plots.example is not None and trained.attention is not None:
            (output, weights), *_ = trained.translate([recipe.plots.example], allow_longer=True)
            plots.append(plot_attention(weights, recipe.plots.example, output, run_dir / "plots" / "attention.png"))
        params = sum(p.numel() for p in trained.parameters())
        val = history[-1].get("val_exact_match") if history else None
        variants.append(
            Seq2SeqVariant(
                entry.label, _describe(entry.options), run_dir, metrics, len(history), seconds, val, params, plots
            )
        )
        record.setdefault("done", {})[entry.label] = True
        rundir.write_json(out_dir / RECORD, record)
    report = _write_report(recipe, path, out_dir, data, variants)
    rundir.write_json(out_dir / RECORD, {**record, "finished": True})
    return Seq2SeqRecipeResult(recipe, out_dir, data.name, None, variants, report)


def is_pairs_data(data: Any) -> bool:
    """True for sequence pairs (a :class:`capas.data.pairs.PairsDataset`): data that an
    encoder-decoder reads and an MLP spec cannot."""
    return getattr(data, "source_vocab", None) is not None


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"


METRICS = ("test_exact_match", "test_token_accuracy", "test_bleu", "test_loss")


def _write_report(recipe: Seq2SeqRecipe, path: Path, out_dir: Path, data: Any, variants: list[Seq2SeqVariant]) -> Path:
    sizes = ", ".join(f"{k} {len(v)}" for k, v in data.pairs.items())
    lines = [
        f"# {recipe.name}",
        "",
        recipe.description,
        "",
        f"- recipe: `{path}`; seed {recipe.seed}",
        f"- data: `{data.name}` {dict(recipe.data.options)} ({sizes}); vocabularies "
        f"{len(data.source_vocab)} -> {len(data.target_vocab)} symbols",
        f"- training: {recipe.train or 'capas defaults'}; task: {recipe.task or 'teacher forcing 1.0'}",
        "",
        "Validation is drawn like the training split; the test split may differ (e.g. longer strings). "
        "Test metrics decode greedily; token accuracy is per output position, `<eos>` included; BLEU is "
        "corpus BLEU-4 over characters (word BLEU: over words, for targets with spaces); seconds are the "
        "training epochs' (validation included).",
        "",
    ]
    words = any("test_word_bleu" in v.test_metrics for v in variants)
    columns = (*METRICS[:3], "test_word_bleu", METRICS[3]) if words else METRICS
    lines += [
        "| model | options | params | epochs | seconds | val exact match | test exact match | "
        "test token accuracy | test BLEU | " + ("test word BLEU | " if words else "") + "test loss |",
        "|---" * (6 + len(columns)) + "|",
    ]
    for v in variants:
        m = v.test_metrics
        cells = [f"{m[k]:.4f}" if isinstance(m.get(k), float) else "-" for k in columns]
        val = "-" if v.val_exact_match is None else f"{v.val_exact_match:.4f}"
        head = f"| {v.label} | {v.spec} | {v.params:,} | {v.epochs} | {v.seconds:.0f} | {val} | "
        lines.append(head + " | ".join(cells) + " |")
    if recipe.targets:
        lines += ["", "## Targets", ""]
        for v in variants:
            for key, goal in recipe.targets.items():
                value = v.test_metrics.get(key)
                verdict = "reached" if value is not None and value >= goal else "NOT reached"
                shown = "missing" if value is None else f"{value:.4f}"
                lines.append(f"- {v.label}: {key} {shown} (target >= {goal}): {verdict}")
    plots = [(v.label, p) for v in variants for p in v.plots]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"- {label}: [{p.name}]({p.relative_to(out_dir).as_posix()})" for label, p in plots]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def read_raw_recipe(path: Path) -> dict[str, Any] | None:
    """The parsed TOML of ``path`` if it declares ``kind = "seq2seq"``, else None."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # the generic loader reports it
    return raw if raw.get("kind") == "seq2seq" else None


def _say(text: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[bold]{escape(text)}[/]")


__all__ = ["Translation", "resume_seq2seq_recipe", "run_seq2seq_recipe", "translate"]
