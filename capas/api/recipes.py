"""Recipes: a classic experiment in one TOML file — data, model(s), training, plots.

A recipe (``recipes/*.toml``; ``capas run RECIPE``) has these tables; any other key is an
error naming it::

    name = "xor-boundary"           # the default run dir is runs/<name>: a plain folder name
    description = "..."             # first line of the report
    seed = 0                        # data split, init, shuffling

    [data]
    name = "mnist"                  # a capas.data dataset
    fallback = "digits"             # used, with a note, when `name` cannot be loaded offline
    train_size = 1000               # keep only the first N training samples
    label_noise = 0.2               # replace this share of training labels by other classes
    validation = 0.0                # share of the training split held out
    standardize = false             # None: the dataset's default
    options = { noise = 0.2 }       # dataset options (capas.data.load)

    [model]
    spec = "{input}-30-{classes}"   # or a list of specs; {width} with `widths` below
    widths = [2, 8, 32]             # optional sweep: one run per width
    augment = ["none", "rotate=10"] # optional: every model once per augmentation ("none": without)
    act = "sigmoid"                 # hidden activation; output_act, init as capas.build
    loss = "mse"                    # default: cross_entropy for classification, mse for regression

    [train]                         # keyword arguments of capas.fit (epochs, lr, l2, ...)
    [task]                          # the task's own options (capas.fit's task_options), e.g.
                                    # mask_padding = true for padded sequences
    [pretrain]                      # optional: capas.api.pretrain options (method = "rbm", epochs...):
                                    # the hidden layers are pre-trained greedily, then [train] fine-tunes

    [plots]
    what = ["curves", "gradients"]  # kinds of capas.diagnostics.plots, or "all"
    layer = "dense1"                # for "hidden"; default: the last hidden layer
    animate = false                 # also a GIF of the decision regions over epochs

Spec placeholders: ``{input}`` is the data's input shape in the notation (``2``,
``1x28x28``), ``{classes}`` its number of classes (outputs for regression), ``{width}``
the swept width. ``run_recipe`` trains every model, draws its plots into
``<run dir>/plots/`` and writes ``report.md`` (settings, metrics table, plot links). Its
output folder must be new; ``recipe.json`` there records the recipe and each finished model,
so that ``resume_recipe`` (``capas run --resume OUT``) continues an interrupted run.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from capas import defaults
from capas.api.outputs import RECIPE_RECORD, claim_output_dir
from capas.data.subsets import adjust_training_split
from capas.errors import CapasError, CapasWarning, DataError, RunDirError, TrainingInterrupted
from capas.train import rundir

_STRICT = ConfigDict(extra="forbid", frozen=True)
MAX_NAME = 100
SAFE_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
#: the record in a recipe's output folder that ``capas run --resume`` continues from
RECORD = RECIPE_RECORD
RECORD_FORMAT = "capas-recipe"
SPEED_PROBE = 1000  # training samples for the gradient norms at initialisation (Nielsen used 1,000)


class DataSection(BaseModel):
    model_config = _STRICT
    name: str
    fallback: str | None = None
    train_size: int | None = Field(None, ge=1)
    label_noise: float = Field(0.0, ge=0.0, lt=1.0)
    validation: float = defaults.VALIDATION
    standardize: bool | None = None
    options: dict[str, Any] = {}


class ModelSection(BaseModel):
    model_config = _STRICT
    spec: str | list[str]
    widths: list[int] | None = None
    act: str = defaults.ACTIVATION
    loss: str | None = None  # None: the task's loss (capas.defaults.default_loss)
    output_act: str | None = None
    init: str | None = None
    augment: list[str] | None = None  # one run of every model per entry ("none": without); capas.augment

    @model_validator(mode="after")
    def _widths_need_placeholder(self) -> ModelSection:
        if self.widths is not None and (not isinstance(self.spec, str) or "{width}" not in self.spec):
            raise ValueError("`widths` sweeps one spec string containing {width}, e.g. '{input}-{width}-{classes}'")
        return self


class PlotsSection(BaseModel):
    model_config = _STRICT
    what: list[str] | str = ["curves"]
    layer: str | None = None
    animate: bool = False

    @field_validator("what")
    @classmethod
    def _known_kinds(cls, what: list[str] | str) -> list[str] | str:
        from capas.diagnostics.plots import PLOT_KINDS

        unknown = [w for w in ([what] if isinstance(what, str) else what) if w not in (*PLOT_KINDS, "all")]
        if unknown:
            raise ValueError(f"unknown plot {unknown[0]!r}; choose from {', '.join(PLOT_KINDS)} or all")
        return what


class Recipe(BaseModel):
    """A validated recipe; ``load_recipe`` builds it from a TOML file."""

    model_config = _STRICT
    name: str
    description: str = ""
    seed: int = defaults.SEED
    data: DataSection
    model: ModelSection
    train: dict[str, Any] = {}
    task: dict[str, Any] = {}
    pretrain: dict[str, Any] = {}  # greedy pre-training before [train] (capas/api/pretrain_recipe.py)
    plots: PlotsSection = PlotsSection()

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        """The name is the default output folder (runs/<name>): one plain file name, so that no
        recipe writes outside runs/ or straight into it."""
        if not SAFE_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a plain folder name; use letters, digits, '.', '_' and '-' "
                f"(at most {MAX_NAME} characters, starting with a letter or digit), e.g. 'xor-boundary'"
            )
        return name


@dataclass
class VariantResult:
    """One trained model of a recipe."""

    label: str
    spec: str
    width: int | None
    params: int
    run_dir: Path
    history: list[dict[str, Any]]
    test_metrics: dict[str, Any]  # as capas.fit reports them (scalars, per-class lists, confusion matrix)
    plots: list[Path]
    warnings: list[str] = field(default_factory=list)
    initial_grad_norms: dict[str, tuple[float, float]] = field(default_factory=dict)  # layer -> (||dW||, ||db||)


@dataclass
class RecipeResult:
    """Everything ``run_recipe`` did: where, on which data, each model's results."""

    recipe: Recipe
    out_dir: Path
    data_name: str
    data_note: str | None
    variants: list[VariantResult]
    report: Path
    loss: str  # the models' loss: model.loss, else the task's
    extra_plots: list[Path] = field(default_factory=list)


def parse_value(raw: str) -> Any:
    """A ``--set`` value as TOML (``2``, ``0.1``, ``true``, ``[1, 2]``, ``"x"``), else the raw string."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["train.epochs=2", ...]`` -> ``{"train.epochs": 2}`` with TOML-typed values (``--set``)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CapasError(f"--set expects key=value (e.g. train.epochs=5), got {pair!r}")
        overrides[key.strip()] = parse_value(raw.strip())
    return overrides


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``train.epochs``) in a nested dict; tables are created as needed."""
    for dotted, value in overrides.items():
        *tables, key = dotted.split(".")
        node = raw
        for table in tables:
            child = node.setdefault(table, {})
            if not isinstance(child, dict):
                raise CapasError(f"cannot set {dotted!r}: {table!r} is a value, not a table")
            node = child
        node[key] = value
    return raw


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, override and validate a recipe; every problem is a ``CapasError`` naming the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapasError(f"no recipe at {path}; give the path of a .toml recipe (see recipes/)") from None
    except IsADirectoryError:
        raise CapasError(f"{path} is a directory, not a file; give the path of a .toml recipe (see recipes/)") from None
    except UnicodeDecodeError:
        raise CapasError(f"{path} is not UTF-8 text; a recipe is a TOML file (see recipes/)") from None
    except tomllib.TOMLDecodeError as err:
        raise CapasError(f"{path} is not valid TOML: {err}") from None
    raw = apply_overrides(raw, overrides or {})
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as err:
        errors = err.errors()  # a misspelled table is both unknown and missing: name the misspelling
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        if first["type"] == "extra_forbidden":
            raise CapasError(f"{path}: unknown key {key!r}; see the recipe format in capas/api/recipes.py") from None
        raise CapasError(f"{path}: {key}: {first['msg'].removeprefix('Value error, ')}") from None
    check_train_table(recipe.train, path)
    if recipe.pretrain:
        from capas.api.pretrain_recipe import check_pretrain_table

        check_pretrain_table(recipe.pretrain, str(path))
    return recipe


def check_train_table(train: dict[str, Any], path: Path, seed_key: str = "seed") -> None:
    """Reject ``[train]`` keys that are not ``TrainConfig`` fields (the seed is the recipe's top-level
    ``seed_key``: ``seed``, a GAN recipe's ``seeds``) and values ``TrainConfig`` refuses."""
    from capas.train.config import TrainConfig

    allowed = set(TrainConfig.model_fields) - {"seed"}
    for key in train:
        if key not in allowed:
            hint = (
                f"set the top-level {seed_key} instead"
                if key == "seed"
                else f"training options are: {', '.join(sorted(allowed))}"
            )
            raise CapasError(f"{path}: unknown key 'train.{key}'; {hint}")
    try:
        TrainConfig.from_options(**train)  # values too, before any data is loaded or model trained
    except CapasError as err:
        raise CapasError(f"{path}: [train]: {err}") from None


def load_recipe_data(section: DataSection, seed: int, *, fallback_note: str | None = None) -> tuple[Any, str | None]:
    """The recipe's dataset (or its fallback, with a note saying why) and the note; with
    ``fallback_note`` (a resumed run that used the fallback) the fallback, whatever is online now."""
    from capas.data import load

    def load_one(name: str) -> Any:
        data = load(name, seed=seed, validation=section.validation, standardize=section.standardize, **section.options)
        return adjust_training_split(data, section.train_size, section.label_noise)

    if fallback_note is not None and section.fallback is not None:
        return load_one(section.fallback), fallback_note
    try:
        return load_one(section.name), None
    except DataError as err:
        if section.fallback is None or _on_this_machine(section.name):  # a typo or a bad option: no fallback
            raise
        reason = str(err).split(". ")[0].split(";")[0]  # its first sentence
        note = f"{section.name} is not available offline ({reason}); using the fallback dataset {section.fallback}"
    return load_one(section.fallback), note


def _on_this_machine(name: str) -> bool:
    """True unless ``name`` is a registered dataset whose files are missing here: the one
    case a recipe's fallback stands in for (an unknown name is an error, not a fallback)."""
    from capas.data import available

    local = {info.name: info.local for info in available()}
    return local.get(name, True)


def spec_variants(section: ModelSection, data: Any) -> list[tuple[str, str, int | None]]:
    """(label, spec, width) for each model of the recipe, placeholders filled from ``data``."""
    values = {
        "input": "x".join(str(d) for d in data.input_shape),
        "classes": data.num_classes or (data.y_train.shape[1] if data.y_train.dim() > 1 else 1),
    }

    def fill(spec: str, **extra: Any) -> str:
        try:
            return spec.format(**values, **extra)
        except (KeyError, IndexError, ValueError) as err:
            raise CapasError(
                f"model.spec {spec!r}: bad placeholder {err}; use {{input}}, {{classes}} or {{width}}"
            ) from None

    if section.widths is not None:
        return [(f"width-{w}", fill(section.spec, width=w), w) for w in section.widths]  # type: ignore[arg-type]
    specs = [section.spec] if isinstance(section.spec, str) else section.spec
    if len(specs) == 1:
        return [("model", fill(specs[0]), None)]
    return [(f"model-{i + 1}", fill(spec), None) for i, spec in enumerate(specs)]


def run_recipe(
    path: str | Path, *, out: str | Path | None = None, overrides: dict[str, Any] | None = None, quiet: bool = False
) -> RecipeResult:
    """Train every model of the recipe at ``path``, plot, and write ``report.md``.

    ``out`` defaults to ``runs/<recipe name>`` and must be new (absent or empty: nothing is
    overwritten); one model trains in it directly, a sweep in ``out/<label>/`` with the
    report and ``sweep.png`` at ``out``. ``out/recipe.json`` records the recipe and each model
    once it is done, so that an interrupted run continues with :func:`resume_recipe`.
    """
    from capas.api.gan_recipe import is_gan_recipe, read_raw, run_gan_recipe

    raw = read_raw(Path(path))
    if raw is not None and is_gan_recipe(raw):  # kind = "gan": GAN variants over seeds (capas/api/gan_recipe.py)
        return run_gan_recipe(Path(path), apply_overrides(raw, overrides or {}), out, quiet)
    from capas.api.seq2seq import read_raw_recipe, run_seq2seq_recipe

    raw = read_raw_recipe(Path(path))
    if raw is not None:  # kind = "seq2seq": encoder-decoders side by side (capas/api/seq2seq.py)
        return run_seq2seq_recipe(Path(path), apply_overrides(raw, overrides or {}), out=out, quiet=quiet)
    recipe = load_recipe(path, overrides)
    out_dir = Path(out) if out is not None else Path("runs") / recipe.name
    hint = (
        f"continue it with: capas run --resume {out_dir}, or choose another --out"
        if (out_dir / RECORD).is_file()
        else "choose another --out"
    )
    claim_output_dir(out_dir, hint=hint)  # before the data load: a used or unwritable folder costs nothing
    return _run(recipe, Path(path), out_dir, None, quiet)


def resume_recipe(out: str | Path, *, quiet: bool = False) -> RecipeResult:
    """Continue the interrupted recipe run in ``out`` (``capas run --resume OUT``): models that
    finished are kept, the interrupted one resumes from its last checkpoint (``capas.fit(...,
    resume=...)``, so its weights are those of an uninterrupted run), the others train, then
    the report is written, with the numbers an uninterrupted run reports."""
    out_dir = Path(out)
    record = read_record(out_dir)
    if record.get("kind") == "seq2seq":
        from capas.api.seq2seq import resume_seq2seq_recipe

        return resume_seq2seq_recipe(out_dir, record, quiet=quiet)
    if record.get("kind") == "gan":
        from capas.api.gan_recipe import resume_gan_recipe

        return resume_gan_recipe(out_dir, record, quiet=quiet)
    if record.get("finished"):
        raise RunDirError(
            f"the recipe run in {out_dir} already finished (see {out_dir / 'report.md'}); nothing to resume"
        )
    try:
        recipe = Recipe.model_validate(record["recipe"])
        recipe_path = Path(record["recipe_path"])
        if not isinstance(record.get("done"), dict):
            raise TypeError("'done' is not a table")
    except (ValidationError, KeyError, TypeError) as err:
        raise RunDirError(f"{out_dir / RECORD} is not a valid recipe record ({err}); the folder is damaged") from None
    return _run(recipe, recipe_path, out_dir, record, quiet)


def read_record(out_dir: Path) -> dict[str, Any]:
    """``out_dir/recipe.json``, or a RunDirError saying what ``--resume`` expects."""
    if not (out_dir / RECORD).is_file():
        raise RunDirError(f"{out_dir} has no {RECORD}; --resume takes the --out folder of an interrupted `capas run`")
    record = rundir.read_json(out_dir / RECORD)
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise RunDirError(f'{out_dir / RECORD} is not a capas recipe record (expected "format": "{RECORD_FORMAT}")')
    return record


@dataclass
class _Plan:
    """One model of a recipe, built and checked before anything trains."""

    label: str
    spec: str
    width: int | None
    run_dir: Path
    model: Any
    kinds: list[str]
    train: dict[str, Any] = field(default_factory=dict)  # this model's own fit options (its augmentation)


def _run(recipe: Recipe, recipe_path: Path, out_dir: Path, record: dict[str, Any] | None, quiet: bool) -> RecipeResult:
    """Load the data, build and check every model, then train (or keep) each and write the report;
    ``record`` is the recipe.json of a run being resumed (None: a new run)."""
    from capas.api.recipe_report import plot_sweep, write_report

    fallback_note = None if record is None else record.get("data_note")
    data, note = load_recipe_data(recipe.data, recipe.seed, fallback_note=fallback_note)
    if note and not quiet:
        _say("[yellow]note:[/]", note)
    variants = spec_variants(recipe.model, data)
    loss = recipe.model.loss or defaults.default_loss(data.task)
    plans = [
        _plan_variant(recipe, data, loss, label, spec, width, out_dir if len(variants) == 1 else out_dir / label)
        for label, spec, width in variants
    ]
    plans = _augment_variants(recipe.model.augment, plans, out_dir)
    if record is None:  # every model checked: now the folder becomes the recipe's
        record = {
            "format": RECORD_FORMAT,
            "recipe_path": str(recipe_path),
            "recipe": recipe.model_dump(mode="json"),
            "data_note": note,
            "finished": False,
            "done": {},
        }
        rundir.write_json(out_dir / RECORD, record)
    results: list[VariantResult] = []
    try:
        for plan in plans:
            done = record["done"].get(plan.label)
            if done is not None:
                if not quiet:
                    _say(f"[bold]kept {plan.label}:[/]", f"{plan.spec} (finished before)")
                results.append(_kept_variant(plan, done, out_dir))
                continue
            results.append(_train_variant(recipe, data, loss, plan, quiet))
            record["done"][plan.label] = _variant_record(results[-1], out_dir)
            rundir.write_json(out_dir / RECORD, record)
        extra = [plot_sweep(results, out_dir / "sweep.png")] if len(results) > 1 else []
        result = RecipeResult(recipe, out_dir, data.name, note, results, out_dir / "report.md", loss, extra)
        write_report(result, recipe_path)
    except KeyboardInterrupt:  # Ctrl-C, in training (TrainingInterrupted) or between models
        raise TrainingInterrupted(
            f"interrupted after {len(results)} of {len(plans)} models of the recipe in {out_dir}; finished models "
            f"and the last checkpoint are kept; continue with: capas run --resume {out_dir}"
        ) from None
    rundir.write_json(out_dir / RECORD, {**record, "finished": True})
    return result


def _plan_variant(
    recipe: Recipe, data: Any, loss: str, label: str, spec: str, width: int | None, run_dir: Path
) -> _Plan:
    """Build the model and refuse, before any training, plots that cannot apply to it."""
    from capas.diagnostics.plots import applicable_kinds
    from capas.models import build

    section = recipe.model
    model = build(spec, act=section.act, loss=loss, output_act=section.output_act, init=section.init, seed=recipe.seed)
    kinds = applicable_kinds(recipe.plots.what, model, data)  # refuses a named plot that cannot apply
    if "hidden" in kinds and recipe.plots.layer is not None and recipe.plots.layer not in model.layer_names():
        raise CapasError(
            f"plots.layer: unknown layer {recipe.plots.layer!r}; the model's layers are: "
            f"{', '.join(model.layer_names())}"
        )
    return _Plan(label, spec, width, run_dir, model, kinds)


def _augment_variants(augment: list[str] | None, plans: list[_Plan], out_dir: Path) -> list[_Plan]:
    """Every plan once per entry of ``model.augment`` ("none": without augmentation), each in
    its own folder (``<label>-no-augment``, ``<label>-augment-rotate-10``); a fresh model each."""
    if not augment:
        return plans
    from capas.models import Network

    expanded = []
    for plan in plans:
        for spec in augment:
            suffix = "no-augment" if spec == "none" else "augment-" + re.sub(r"[^A-Za-z0-9.]+", "-", spec).strip("-")
            label = suffix if len(plans) == 1 else f"{plan.label}-{suffix}"
            model = Network.from_config(plan.model.config())
            model.load_state_dict(plan.model.state_dict())  # the same initial weights for every variant
            train = {"augment": None if spec == "none" else spec}
            expanded.append(_Plan(label, plan.spec, plan.width, out_dir / label, model, plan.kinds, train))
    return expanded


def _train_variant(recipe: Recipe, data: Any, loss: str, plan: _Plan, quiet: bool) -> VariantResult:
    """Train one model (or resume it from its checkpoint, or take it as it finished), then plot."""
    from capas.api.fit import fit
    from capas.diagnostics.gradients import SpeedOfLearning, loss_gradient_norms
    from capas.diagnostics.plots import make_plots
    from capas.diagnostics.snapshots import SNAPSHOT_FILE, BoundarySnapshots

    run_dir, probe = plan.run_dir, slice(0, SPEED_PROBE)
    if recipe.pretrain and _checkpoint_state(run_dir) is None:  # greedy pre-training first (pretrain_recipe.py)
        from capas.api.pretrain_recipe import pretrained_network

        options = {"act": recipe.model.act, "loss": loss, "seed": recipe.seed, "run_dir": run_dir, "quiet": quiet}
        plan.model = pretrained_network(recipe.pretrain, data, plan.spec, **options)
    initial = loss_gradient_norms(plan.model, data.x_train[probe], data.y_train[probe])  # the fresh model's
    animate = recipe.plots.animate and "boundary" in plan.kinds
    callbacks: list = []  # fit adds the GradientMonitor itself (warn_gradients)
    if "gradients" in plan.kinds:
        callbacks.append(SpeedOfLearning(SPEED_PROBE))
    if animate:
        callbacks.append(BoundarySnapshots(data.x_train, path=run_dir / SNAPSHOT_FILE))
    state = _checkpoint_state(run_dir)
    messages: list[str] = []
    if state is not None and state.get("finished"):  # trained before the interruption, not yet plotted
        if not quiet:
            _say(f"[bold]kept {plan.label}:[/]", f"{plan.spec} (trained before; plotting)")
        model, history, test_metrics = _finished_run(run_dir, data)
    else:
        if state is None:
            _clear_unstarted(run_dir)
            options: dict[str, Any] = {"seed": recipe.seed, "out": run_dir, **recipe.train, **plan.train}
            if recipe.task:
                options["task_options"] = dict(recipe.task)
        else:
            options = {"resume": run_dir}
        if not quiet:
            verb = "training" if state is None else f"resuming (from epoch {state.get('epoch')})"
            _say(f"[bold]{verb} {plan.label}:[/]", plan.spec)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit_result = fit(plan.model, data, quiet=quiet, callbacks=callbacks, **options)
        messages = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, CapasWarning)))
        for w in caught:
            if not issubclass(w.category, CapasWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for message in messages if not quiet else ():
            _say("[red]warning:[/]", message)
        model, history, test_metrics = fit_result.model, list(fit_result.history), dict(fit_result.test_metrics)
    snapshots = run_dir / SNAPSHOT_FILE
    plots = make_plots(
        model,
        history,
        data,
        run_dir / "plots",
        recipe.plots.what,
        recipe.plots.layer,
        snapshots if animate and snapshots.is_file() else None,
        rundir.load_run(run_dir).loss(data.num_classes),  # its classes decided as training decided them
    )
    params = sum(p.numel() for p in model.parameters())
    return VariantResult(
        plan.label, plan.spec, plan.width, params, run_dir, history, test_metrics, plots, messages, initial
    )


def _checkpoint_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's state.json (its last checkpoint), None before the first one."""
    if not (run_dir / "state.json").is_file():
        return None
    state = rundir.read_json(run_dir / "state.json")
    if not isinstance(state, dict):
        raise RunDirError(f"{run_dir / 'state.json'} is not a capas checkpoint; the folder is damaged")
    return state


#: what a run writes before its first checkpoint (config, model, then the epoch-0 checkpoint)
_UNSTARTED = ("config.json", "model.json", "weights.safetensors", "history.json", "history.csv")


def _clear_unstarted(run_dir: Path) -> None:
    """Remove the files of a run interrupted before its first checkpoint (nothing trained), so
    that it starts afresh; anything else in the folder makes the fresh start refuse it."""
    if not run_dir.is_dir():
        return
    for name in _UNSTARTED:
        (run_dir / name).unlink(missing_ok=True)
    for path in (*run_dir.glob("state-*.safetensors"), *run_dir.glob(".*.tmp")):
        path.unlink(missing_ok=True)


#: metrics.json's entries that are not test metrics (the loop adds them)
_RUN_ENTRIES = ("epochs", "engine", "stop_reason")


def _finished_run(run_dir: Path, data: Any) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Model, history and test metrics of a run that finished training (metrics.json; if the
    interruption came before it was written, the run's test metrics are computed again)."""
    from capas.train.evaluation import evaluate_model

    run = rundir.load_run(run_dir)
    model = run.build_model()
    if run.metrics is not None:
        metrics = {k: v for k, v in run.metrics.items() if k not in _RUN_ENTRIES}
    else:
        metrics = evaluate_model(model, data.x_test, data.y_test, run.loss(data.num_classes))
    return model, list(run.history), metrics


def _variant_record(variant: VariantResult, out_dir: Path) -> dict[str, Any]:
    """What recipe.json keeps of a finished model (its run directory keeps the rest)."""
    return {
        "params": variant.params,
        "test_metrics": variant.test_metrics,
        "plots": [p.relative_to(out_dir).as_posix() for p in variant.plots],
        "warnings": variant.warnings,
        "initial_grad_norms": {k: list(v) for k, v in variant.initial_grad_norms.items()},
    }


def _kept_variant(plan: _Plan, done: dict[str, Any], out_dir: Path) -> VariantResult:
    """A model that finished before the interruption, read back from recipe.json and its run."""
    try:
        return VariantResult(
            plan.label,
            plan.spec,
            plan.width,
            int(done["params"]),
            plan.run_dir,
            list(rundir.load_run(plan.run_dir).history),
            dict(done["test_metrics"]),
            [out_dir / p for p in done["plots"]],
            list(done["warnings"]),
            {k: (float(w), float(b)) for k, (w, b) in done["initial_grad_norms"].items()},
        )
    except (KeyError, TypeError, ValueError) as err:
        raise RunDirError(f"{out_dir / RECORD}: the record of {plan.label} is damaged ({err})") from None


def _say(label: str, text: str) -> None:
    """A progress line on stderr (stdout stays for results and ``--json``); ``text`` is not markup."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"{label} {escape(text)}")
