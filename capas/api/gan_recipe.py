"""GAN recipes: several adversarial settings side by side, over several seeds, measured.

A GAN recipe is a TOML file with ``kind = "gan"`` (``capas run`` dispatches it here)::

    kind = "gan"
    name = "gan-ring"
    description = "..."
    seeds = [0, 1, 2, 3, 4]          # one run per variant and seed (--seed N: just N)
    jobs = 2                         # runs trained at once, one process each (default 1)

    [data]
    name = "ring"                    # a capas.data dataset (ring, grid: the mode measures)
    options = { n = 10000 }          # dataset options
    train_size = 60000               # keep the first N training samples
    symmetric = false                # scale the inputs from [0, 1] to [-1, 1] (a tanh generator)

    [model]
    generator = "8-128-128-2"
    discriminator = "{input}-128-128-1"   # {input}: the (packed) data shape in the notation
    noise = "gaussian"               # or uniform
    act = "relu"                     # generator's hidden activation
    discriminator_act = "leaky_relu"

    [train]                          # keyword arguments of capas.fit (epochs, lr, batch_size...)

    [[variants]]                     # one per setting compared
    label = "packed m=4"
    loss = "non_saturating"          # minimax | non_saturating | least_squares | wasserstein
    packing = 4                      # PacGAN degree
    d_steps = 1                      # and label_smoothing, gp_weight, generator_lr, discriminator_lr
    train = { epochs = 40 }          # overrides of [train] for this variant

    [measures]
    samples = 2500                   # generated samples each run is measured on
    classifier_epochs = 2            # images: the feature classifier capas trains itself

Each run is a capas run directory ``OUT/<variant>/seed-<s>/`` (history, per-epoch sample
grids, samples.gif, exact resume) with its ``measures.json``; ``capas run --resume OUT``
keeps the measured runs, resumes an interrupted one and trains the rest. ``OUT/report.md``
holds the table of measures (mean and standard deviation over the seeds, with the time
each run took), ``OUT/results.json`` the per-run numbers, ``OUT/plots/`` the final
samples of every variant, their training curves and the saturation plot (the generator's
gradient norm under minimax and non-saturating).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tomllib
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from capas.api.outputs import RECIPE_RECORD, claim_output_dir, discard_unstarted_run
from capas.errors import CapasError, RunDirError, TrainingInterrupted

_STRICT = ConfigDict(extra="forbid", frozen=True)
TOYS = ("ring", "grid")
#: each run's measures, written when it is measured (a resumed recipe keeps measured runs)
MEASURES = "measures.json"


class GanData(BaseModel):
    model_config = _STRICT
    name: str
    options: dict[str, Any] = {}
    train_size: int | None = Field(None, ge=1)
    symmetric: bool = False


class GanModel(BaseModel):
    model_config = _STRICT
    generator: str
    discriminator: str
    noise: Literal["gaussian", "uniform"] = "gaussian"
    act: str | None = None
    discriminator_act: str | None = None
    init: str | None = None


class GanVariant(BaseModel):
    model_config = _STRICT
    label: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._=-]{0,60}$")
    loss: str = "non_saturating"
    packing: int = Field(1, ge=1)
    d_steps: int = Field(1, ge=1)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    gp_weight: float = Field(10.0, ge=0.0)
    generator_lr: float | None = Field(None, gt=0)
    discriminator_lr: float | None = Field(None, gt=0)
    train: dict[str, Any] = {}


class GanMeasures(BaseModel):
    model_config = _STRICT
    samples: int = Field(2500, ge=10)
    classifier_epochs: int = Field(2, ge=1)


class GanRecipe(BaseModel):
    model_config = _STRICT
    kind: Literal["gan"]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    description: str = ""
    seeds: list[int] = Field([0], min_length=1)
    seed: int | None = Field(None, ge=0)  # --seed N: that seed alone
    data: GanData
    model: GanModel
    train: dict[str, Any] = {}
    variants: list[GanVariant] = Field(min_length=1)
    measures: GanMeasures = GanMeasures()
    jobs: int = Field(1, ge=1, le=64)  # runs trained at once, each in its own process (set threads = 1)

    @property
    def run_seeds(self) -> list[int]:
        return [self.seed] if self.seed is not None else list(self.seeds)


@dataclass
class GanRun:
    """One trained GAN of the recipe (what ``capas run --json`` lists as a model)."""

    label: str
    spec: str
    run_dir: Path
    seed: int
    seconds: float
    test_metrics: dict[str, Any]


@dataclass
class GanRecipeResult:
    recipe: GanRecipe
    out_dir: Path
    data_name: str
    report: Path
    variants: list[GanRun] = field(default_factory=list)
    data_note: str | None = None
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)


def is_gan_recipe(raw: dict[str, Any]) -> bool:
    """Whether a parsed recipe TOML is a GAN recipe (``kind = "gan"``)."""
    return raw.get("kind") == "gan"


def load_gan_recipe(path: Path, raw: dict[str, Any]) -> GanRecipe:
    """Validate a parsed GAN recipe, [train] and each variant's overrides of it included, so
    that a recipe that cannot run is refused before any output is claimed."""
    from capas.api.recipes import check_train_table

    try:
        recipe = GanRecipe.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise CapasError(
            f"{path}: {key}: {first['msg']} (see the GAN recipe format in capas/api/gan_recipe.py)"
        ) from None
    for variant in recipe.variants:
        check_train_table({**recipe.train, **variant.train}, path, seed_key="seeds")
    return recipe


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")


def run_gan_recipe(path: Path, raw: dict[str, Any], out: str | Path | None, quiet: bool) -> GanRecipeResult:
    """Train every variant of the GAN recipe over its seeds, measure, plot, write report.md."""
    recipe = load_gan_recipe(path, raw)
    out_dir = Path(out) if out is not None else Path("runs") / recipe.name
    claim_output_dir(out_dir, hint="choose another --out, or continue it with capas run --resume")
    record = {"format": "capas-recipe", "kind": "gan", "recipe_path": str(path), "recipe": raw, "finished": False}
    return _run(recipe, out_dir, record, quiet)


def resume_gan_recipe(out_dir: Path, record: dict[str, Any], *, quiet: bool = False) -> GanRecipeResult:
    """Continue an interrupted GAN recipe (``capas run --resume OUT``): measured runs are kept,
    interrupted ones resume from their last checkpoint (the weights of an uninterrupted run),
    the rest train; then the report is written."""
    if record.get("finished"):
        raise RunDirError(
            f"the recipe run in {out_dir} already finished (see {out_dir / 'report.md'}); nothing to resume"
        )
    path = Path(record.get("recipe_path", "recipe.toml"))
    return _run(load_gan_recipe(path, record.get("recipe", {})), out_dir, record, quiet)


@dataclass(frozen=True)
class _Job:
    """One (variant, seed) run: everything a worker process needs to train it."""

    label: str
    seed: int
    run_dir: Path
    generator: str
    discriminator: str
    build: dict[str, Any]  # build_gan's keywords (noise, packing, act, discriminator_act, init)
    fit: dict[str, Any]  # capas.fit's keywords ([train] with the variant's overrides)
    task_options: dict[str, Any]


def _jobs(recipe: GanRecipe, x: torch.Tensor, out_dir: Path, measure_toy: bool) -> list[_Job]:
    data_shape = "x".join(map(str, x.shape[1:]))
    jobs = []
    for variant in recipe.variants:
        packed = "x".join(map(str, (x.shape[1] * variant.packing, *x.shape[2:])))
        model = recipe.model
        build = {"noise": model.noise, "packing": variant.packing, "act": model.act,
                 "discriminator_act": model.discriminator_act, "init": model.init}  # fmt: skip
        task_options = {
            "loss": variant.loss, "d_steps": variant.d_steps, "label_smoothing": variant.label_smoothing,
            "gp_weight": variant.gp_weight, "generator_lr": variant.generator_lr,
            "discriminator_lr": variant.discriminator_lr, "grid": 512 if measure_toy else 64,
        }  # fmt: skip
        for seed in recipe.run_seeds:
            jobs.append(
                _Job(variant.label, seed, out_dir / _slug(variant.label) / f"seed-{seed}", model.generator,
                     model.discriminator.format(input=packed, data=data_shape), build,
                     {**recipe.train, **variant.train}, task_options)
            )  # fmt: skip
    return jobs


def _train(job: _Job, x: torch.Tensor) -> None:
    """Train one run into its run directory (resuming it if it has a checkpoint). Runs in a
    worker process when the recipe has ``jobs`` > 1, so it takes and returns plain data."""
    from capas.api.fit import fit
    from capas.models.gan import build_gan
    from capas.train import rundir

    if (job.run_dir / "state.json").is_file():
        fit(rundir.load_model(job.run_dir), x, resume=job.run_dir, quiet=True)
        return
    discard_unstarted_run(job.run_dir)
    gan = build_gan(job.generator, job.discriminator, seed=job.seed, **job.build)
    fit(gan, x, seed=job.seed, out=job.run_dir, quiet=True, task_options=job.task_options, **job.fit)


def _run(recipe: GanRecipe, out_dir: Path, record: dict[str, Any], quiet: bool) -> GanRecipeResult:
    from capas.data import load
    from capas.diagnostics import gan_measures
    from capas.models.gan import build_gan
    from capas.train import rundir

    data = load(recipe.data.name, seed=0, validation=0.0, **recipe.data.options)
    x = data.x_train if recipe.data.train_size is None else data.x_train[: recipe.data.train_size]
    y = data.y_train if recipe.data.train_size is None else data.y_train[: recipe.data.train_size]
    if recipe.data.symmetric:
        x = 2 * x - 1
    measure_toy = recipe.data.name in TOYS
    judge = None
    if not measure_toy:
        if not quiet:
            print(f"training the feature classifier on {recipe.data.name} ({recipe.measures.classifier_epochs} epochs)")
        judge = gan_measures.train_feature_classifier(x, y, data.num_classes, epochs=recipe.measures.classifier_epochs)
    rundir.write_json(out_dir / RECIPE_RECORD, record)
    jobs = _jobs(recipe, x, out_dir, measure_toy)
    runs: dict[Path, GanRun] = {}

    def measure(job: _Job) -> None:
        """Sample the trained run, score the samples, keep them in measures.json."""
        gan = rundir.load_model(job.run_dir)
        history = json.loads((job.run_dir / "history.json").read_text())
        seconds = sum(row.get("seconds", 0.0) for row in history)
        samples = gan.sample(recipe.measures.samples, torch.Generator().manual_seed(job.seed))
        if measure_toy:
            from capas.data.gan_toys import SIGMAS, mode_centres

            name = recipe.data.name
            sigma = recipe.data.options.get("sigma", SIGMAS[name])
            metrics = gan_measures.mode_measures(samples, mode_centres(name), sigma).to_json()
        else:
            n = min(recipe.measures.samples, len(data.x_test), len(x))
            other = 2 * data.x_test[:n] - 1 if recipe.data.symmetric else data.x_test[:n]
            metrics = gan_measures.image_measures(judge, samples[:n], x[:n], other, data.num_classes)
        metrics["seconds"] = seconds
        rundir.write_json(job.run_dir / MEASURES, metrics)
        adopt(job, metrics)
        if not quiet:
            print(f"{job.label} seed {job.seed}: {_brief(metrics)} ({seconds:.1f} s)", flush=True)

    def adopt(job: _Job, metrics: dict[str, Any]) -> None:
        spec = json.loads((job.run_dir / "model.json").read_text())["generator"]["spec"]
        runs[job.run_dir] = GanRun(job.label, spec, job.run_dir, job.seed, metrics["seconds"], metrics)

    pending = []
    for job in jobs:
        if (job.run_dir / MEASURES).is_file():
            adopt(job, json.loads((job.run_dir / MEASURES).read_text()))
        else:
            pending.append(job)
    try:
        if recipe.jobs == 1 or len(pending) < 2:
            for job in pending:
                _train(job, x)
                measure(job)
        else:
            _train_in_processes(pending, x, min(recipe.jobs, len(pending)), measure)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted while training the GAN recipe {recipe.name}; continue with: capas run --resume {out_dir}"
        ) from None
    result = GanRecipeResult(recipe, out_dir, recipe.data.name, out_dir / "report.md")
    result.variants = [runs[job.run_dir] for job in jobs]
    result.summary = _summarise(result.variants)
    _plots_and_report(result, x, build_gan, measure_toy)
    rundir.write_json(out_dir / RECIPE_RECORD, {**record, "finished": True})
    return result


def _train_in_processes(jobs: list[_Job], x: torch.Tensor, workers: int, measure: Any) -> None:
    """Train ``jobs`` in ``workers`` fresh (spawned) processes, measuring each as it ends.
    Each run is seeded on its own, so its result does not depend on which worker ran it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train, job, x): job for job in jobs}
        for future in as_completed(futures):
            future.result()  # a worker's error is raised here, with its own message
            measure(futures[future])


def _brief(metrics: dict[str, Any]) -> str:
    if "modes" in metrics:
        return f"{metrics['modes']}/{metrics['total_modes']} modes, {100 * metrics['high_quality']:.1f}% high quality, reverse KL {metrics['reverse_kl']:.3f}"
    classes = metrics["classes"]
    return (
        f"Fréchet {metrics['frechet']:.2f} (real vs real {metrics['frechet_real_vs_real']:.2f}), "
        f"{classes['covered']}/{classes['num_classes']} classes, class KL {classes['kl']:.3f}"
    )


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    if "modes" in metrics:
        keys = {
            "modes": metrics["modes"],
            "high_quality_%": 100 * metrics["high_quality"],
            "reverse_kl": metrics["reverse_kl"],
        }
    else:
        keys = {
            "frechet": metrics["frechet"], "frechet_real_vs_real": metrics["frechet_real_vs_real"],
            "classes_covered": metrics["classes"]["covered"], "class_kl": metrics["classes"]["kl"],
        }  # fmt: skip
    return {**keys, "seconds": metrics["seconds"]}


def _summarise(runs: list[GanRun]) -> dict[str, dict[str, Any]]:
    """Per variant: mean and standard deviation of every number over its seeds."""
    summary: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(run.label for run in runs):
        rows = [_numbers(run.test_metrics) for run in runs if run.label == label]
        summary[label] = {}
        for key in rows[0]:
            values = np.array([r[key] for r in rows], dtype=np.float64)
            spread = float(values.std()) if np.isfinite(values).all() else math.nan  # a reverse KL may be inf
            summary[label][key] = {"mean": float(values.mean()), "std": spread}
        summary[label]["seeds"] = len(rows)
    return summary


def _plots_and_report(result: GanRecipeResult, x: torch.Tensor, build_gan: Any, toy: bool) -> None:
    from capas.diagnostics.gan_plots import generator_gradient_norms, plot_gan_history, plot_saturation, save_samples
    from capas.train import rundir

    recipe, out_dir = result.recipe, result.out_dir
    plots = out_dir / "plots"
    lines = [f"# {recipe.name}", "", recipe.description, "", f"Data: `{recipe.data.name}`, {len(x)} training samples; "
             f"seeds {recipe.run_seeds}. Generator `{recipe.model.generator}`, discriminator `{recipe.model.discriminator}`.", ""]  # fmt: skip
    keys = [k for k in next(iter(result.summary.values())) if k != "seeds"]
    lines.append("| variant | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---|" * len(keys))
    for label, row in result.summary.items():
        cells = [f"{row[k]['mean']:.3g} ± {row[k]['std']:.2g}" for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Mean ± standard deviation over the seeds; seconds: wall time of each run's training.", ""]
    first = recipe.run_seeds[0]
    for run in result.variants:
        if run.seed != first:
            continue
        slug = _slug(run.label)
        gan = rundir.load_model(run.run_dir)
        samples = gan.sample(2000 if toy else 64, torch.Generator().manual_seed(first))
        picture = save_samples(samples, plots / f"{slug}-samples.png", x if toy else None)
        history = json.loads((run.run_dir / "history.json").read_text())
        curves = plot_gan_history(history, plots / f"{slug}-curves.png", run.label)
        lines += [f"## {run.label} (seed {first})", "", f"![samples]({picture.relative_to(out_dir)}) "
                  f"![curves]({curves.relative_to(out_dir)}) [animation]({(run.run_dir / 'samples.gif').relative_to(out_dir)})", ""]  # fmt: skip
    fresh = build_gan(recipe.model.generator, recipe.model.discriminator.format(input="x".join(map(str, x.shape[1:])), data=""),
                      noise=recipe.model.noise, act=recipe.model.act, discriminator_act=recipe.model.discriminator_act,
                      init=recipe.model.init, seed=first)  # fmt: skip
    norms = generator_gradient_norms(fresh, x, steps=200, seed=first)
    saturation = plot_saturation(norms, plots / "saturation.png")
    lines += ["## Why the generator minimises -log D(G(z))", "",
              f"![saturation]({saturation.relative_to(out_dir)})", "",
              f"Generator gradient norm after 200 discriminator steps: minimax {norms['minimax'][-1]:.3g}, "
              f"non-saturating {norms['non_saturating'][-1]:.3g} (at the start: {norms['minimax'][0]:.3g} and "
              f"{norms['non_saturating'][0]:.3g}).", ""]  # fmt: skip
    result.report.write_text("\n".join(lines))
    (out_dir / "results.json").write_text(json.dumps({
        "summary": result.summary,
        "runs": [{"label": r.label, "seed": r.seed, "run_dir": str(r.run_dir), "measures": r.test_metrics} for r in result.variants],
        "saturation": {name: [values[0], values[-1]] for name, values in norms.items()},
    }, indent=2))  # fmt: skip


def read_raw(path: Path) -> dict[str, Any] | None:
    """The parsed TOML at ``path``, or None if it cannot be read (``load_recipe`` says why)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
