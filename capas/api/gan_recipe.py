"""GAN recipes: several adversarial settings side by side, over several seeds, measured.

A GAN recipe is a TOML file with ``kind = "gan"`` (``capas run`` dispatches it here)::

    kind = "gan"
    name = "gan-ring"
    description = "..."
    seeds = [0, 1, 2, 3, 4]          # one run per variant and seed (--seed N: just N)

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
grids, samples.gif, exact resume). ``OUT/report.md`` holds the table of measures (mean and
standard deviation over the seeds, with the time each run took), ``OUT/results.json`` the
per-run numbers, ``OUT/plots/`` the final samples of every variant, their training curves
and the saturation plot (the generator's gradient norm under minimax and non-saturating).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tomllib
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from capas.api.outputs import claim_output_dir
from capas.errors import CapasError

_STRICT = ConfigDict(extra="forbid", frozen=True)
TOYS = ("ring", "grid")


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
    try:
        return GanRecipe.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise CapasError(
            f"{path}: {key}: {first['msg']} (see the GAN recipe format in capas/api/gan_recipe.py)"
        ) from None


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")


def run_gan_recipe(path: Path, raw: dict[str, Any], out: str | Path | None, quiet: bool) -> GanRecipeResult:
    """Train every variant of the GAN recipe over its seeds, measure, plot, write report.md."""
    from capas.api.fit import fit
    from capas.data import load
    from capas.diagnostics import gan_measures
    from capas.models.gan import build_gan

    recipe = load_gan_recipe(path, raw)
    out_dir = Path(out) if out is not None else Path("runs") / recipe.name
    claim_output_dir(out_dir, hint="choose another --out")
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
    result = GanRecipeResult(recipe, out_dir, recipe.data.name, out_dir / "report.md")
    data_shape = "x".join(map(str, x.shape[1:]))
    for variant in recipe.variants:
        packed = "x".join(map(str, (x.shape[1] * variant.packing, *x.shape[2:])))
        discriminator = recipe.model.discriminator.format(input=packed, data=data_shape)
        options = {**recipe.train, **variant.train}
        task_options = {
            "loss": variant.loss, "d_steps": variant.d_steps, "label_smoothing": variant.label_smoothing,
            "gp_weight": variant.gp_weight, "generator_lr": variant.generator_lr,
            "discriminator_lr": variant.discriminator_lr, "grid": 512 if measure_toy else 64,
        }  # fmt: skip
        for seed in recipe.run_seeds:
            run_dir = out_dir / _slug(variant.label) / f"seed-{seed}"
            gan = build_gan(
                recipe.model.generator, discriminator, noise=recipe.model.noise, packing=variant.packing,
                act=recipe.model.act, discriminator_act=recipe.model.discriminator_act, init=recipe.model.init,
                seed=seed,
            )  # fmt: skip
            started = time.perf_counter()
            fit(gan, x, seed=seed, out=run_dir, quiet=True, task_options=task_options, **options)
            seconds = time.perf_counter() - started
            samples = gan.sample(recipe.measures.samples, torch.Generator().manual_seed(seed))
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
            (run_dir / "measures.json").write_text(json.dumps(metrics, indent=2))
            result.variants.append(
                GanRun(variant.label, gan.config()["generator"]["spec"], run_dir, seed, seconds, metrics)
            )
            if not quiet:
                print(f"{variant.label} seed {seed}: {_brief(metrics)} ({seconds:.1f} s)", flush=True)
    result.summary = _summarise(result.variants)
    _plots_and_report(result, x, build_gan, measure_toy)
    return result


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
