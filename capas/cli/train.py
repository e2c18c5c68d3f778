"""``capas train``, ``capas evaluate`` and ``capas predict``: options in, ``capas.api`` calls, lines out.

``capas train`` with no arguments trains ``64-64-10`` (ReLU, Adam, 30 epochs, batches of
32) on ``digits``: about 0.97 test accuracy in a few seconds on a laptop CPU. Its defaults
are ``capas.fit``'s (``capas/defaults.py``). Nothing here imports torch before a command
runs, so ``capas train --help`` answers at once.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from capas import defaults
from capas.cli import app
from capas.cli.options import IMAGE_SIZE, IMPUTE, TARGET, TASK, flag, refuse_with_resume, typed_options
from capas.errors import TrainingError

#: the only ``capas train`` options that --resume combines with (the rest come from config.json)
_RESUME_OPTIONS = ("epochs", "quiet", "as_json", "nproc", "nnodes", "rdzv")
#: ``capas train`` parameters that are not TrainConfig fields, and the flags whose field has another name
_NOT_FIELDS = (
    "data",
    "data_option",
    "target",
    "impute",
    "task",
    "image_size",
    "model",
    "act",
    "out",
    "quiet",
    "as_json",
    "resume",
    "init_from",
    "init",
    "validation",
    "set_",
    "nproc",
    "nnodes",
    "rdzv",
    "weight_decay",
)
_FIELD_OF = {"freeze": "frozen_layers"}


def _batch_size(text: str) -> int | str:
    if text.strip().lower() == "full":
        return "full"
    try:
        value = int(text)
    except ValueError:
        raise TrainingError(f"--batch-size must be a positive integer or 'full', got '{text}'") from None
    if value < 1:
        raise TrainingError(f"--batch-size must be a positive integer or 'full', got {value}")
    return value


def _class_weights(text: str | None) -> str | list[float] | None:
    if text is None or text.strip().lower() == "none":
        return None
    if text.strip().lower() == "balanced":
        return "balanced"
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise TrainingError(f"--class-weights must be 'balanced' or comma-separated numbers, got '{text}'") from None


def _set_options(ctx: typer.Context, pairs: list[str]) -> dict[str, Any]:
    """The ``--set key=value`` pairs, checked against the TrainConfig fields and against the
    flags given for the same field."""
    from capas.api.recipes import parse_overrides
    from capas.train.config import TrainConfig

    overrides = parse_overrides(pairs)
    unknown = sorted(set(overrides) - set(TrainConfig.model_fields))
    if unknown:
        raise TrainingError(
            f"unknown --set key '{unknown[0]}'; training options are: {', '.join(TrainConfig.model_fields)}"
        )
    for name in typed_options(ctx):
        field = _FIELD_OF.get(name, name)
        if name not in _NOT_FIELDS and field in overrides:
            raise TrainingError(f"{field} is given twice ({flag(ctx, name)} and --set {field}=...); keep one")
    return overrides


@app.command()
def train(
    ctx: typer.Context,
    data: str = typer.Option(
        defaults.DATASET,
        "--data",
        help="Dataset name (see 'capas datasets'), or a path: a .csv/.tsv table with a header, .npz, .npy "
        "(x.npy beside y.npy), a .txt text, or a folder of images in one subfolder per class.",
    ),
    target: str = TARGET,
    impute: str = IMPUTE,
    task: str = TASK,
    image_size: str = IMAGE_SIZE,
    data_option: list[str] = typer.Option(
        [], "--data-option", help="A dataset option as key=value (TOML value), repeatable: --data-option noise=0.2."
    ),
    model: str = typer.Option(
        None,
        "--model",
        help=f"Model spec, e.g. 64-64-10, or a preset: lenet5, lenet, nielsen-ch6, fashion-inception "
        f"(default: <inputs>-{defaults.HIDDEN_UNITS}-<classes>). A GAN or an encoder-decoder as a TOML table: "
        '\'{generator = "8-128-128-2", discriminator = "2-128-128-1", loss = "minimax"}\', or on sequence '
        "pairs (--data dates, addition...) '{hidden = 64, attention = \"dot\"}'.",
    ),
    act: str = typer.Option(
        defaults.ACTIVATION, "--act", help=f"Hidden activation: {', '.join(defaults.ACTIVATIONS)}."
    ),
    init: str = typer.Option(
        None,
        "--init",
        help=f"Weight initialisation of every layer: {', '.join(defaults.INIT_SCHEMES)} "
        "(default: by activation; see 'capas summary SPEC --init').",
    ),
    loss: str = typer.Option(
        None,
        "--loss",
        help=f"{', '.join(defaults.LOSSES)} (default: cross_entropy for classification, mse for regression).",
    ),
    optimizer: str = typer.Option(defaults.OPTIMIZER, "--optimizer", help=", ".join(defaults.OPTIMIZERS) + "."),
    lr: float = typer.Option(
        None,
        "--lr",
        help="Learning rate (default: by optimizer, "
        f"{defaults.ADAPTIVE_LR} for adam, {defaults.default_lr('sgd')} for sgd).",
    ),
    epochs: int = typer.Option(
        None,
        "--epochs",
        help=f"Maximum number of epochs (default {defaults.EPOCHS}; "
        "with --resume: train the run to this many instead).",
    ),
    batch_size: str = typer.Option(
        str(defaults.BATCH_SIZE), "--batch-size", help="B for mini-batch, 'full' for batch, 1 for online."
    ),
    seed: int = typer.Option(defaults.SEED, "--seed", help="Seed for split, init, shuffling, dropout, noise."),
    device: str = typer.Option(defaults.DEVICE, "--device", help="auto, cpu, cuda, cuda:N or mps."),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/<data>-<timestamp>)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary as the last stdout line."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this directory."),
    engine: str = typer.Option(
        defaults.ENGINE,
        "--engine",
        help="auto, fast (compiled whole-epoch kernel), backprop (explicit delta rule) or autograd.",
    ),
    threads: int = typer.Option(
        None, "--threads", help="Torch threads (default: 1 for small nets, all cores for large matmuls)."
    ),
    init_from: Path = typer.Option(None, "--init-from", help="Start from model.json + weights.safetensors in DIR."),
    freeze: str = typer.Option(
        None, "--freeze", help="Layers kept as they are, e.g. 0,1 or dense1,dense2 (with --init-from)."
    ),
    momentum: float = typer.Option(None, "--momentum", help="Momentum nu (sgd, rmsprop)."),
    weight_decay: float = typer.Option(
        None, "--weight-decay", help="The optimizer's weight_decay option (decoupled in adamw)."
    ),
    l2: float = typer.Option(0.0, "--l2", help="L2 penalty lambda (lambda/2 sum w^2)."),
    l1: float = typer.Option(0.0, "--l1", help="L1 penalty lambda (lambda sum |w|)."),
    clip_norm: float = typer.Option(None, "--clip-norm", help="Clip the gradient norm to this value."),
    clip_value: float = typer.Option(None, "--clip-value", help="Clip every gradient component to [-v, v]."),
    tbptt: int = typer.Option(
        None, "--tbptt", help="Truncated BPTT: recurrent layers pass gradients back at most K steps."
    ),
    patience: int = typer.Option(None, "--patience", help="Early stopping patience (epochs) on val_loss."),
    scheduler: str = typer.Option(None, "--scheduler", help="LR schedule: " + ", ".join(defaults.SCHEDULES) + "."),
    validation: float = typer.Option(defaults.VALIDATION, "--validation", help="Share of the training data held out."),
    resample: str = typer.Option("none", "--resample", help="none, over, under or smote (training split only)."),
    class_weights: str = typer.Option(None, "--class-weights", help="'balanced' or comma-separated weights."),
    input_noise: float = typer.Option(0.0, "--input-noise", help="Std of Gaussian noise on training inputs."),
    augment: str = typer.Option(
        None, "--augment", help="Image augmentation per batch, e.g. flip,rotate=15,crop=2,noise=0.1 (docs/cnn.md)."
    ),
    max_norm: float = typer.Option(None, "--max-norm", help="Max-norm constraint on each unit's weights."),
    target_encoding: str = typer.Option(
        "onehot", "--target-encoding", help="MSE/BCE class targets: onehot, tanh (+-0.9), sigmoid (0.1/0.9)."
    ),
    amp: str = typer.Option(
        None, "--amp", help="Mixed precision: bf16 (CUDA or CPU) or fp16 (CUDA, with gradient scaling)."
    ),
    nproc: int = typer.Option(
        None, "--nproc", help="Processes (ranks) on this machine, each with batch B (default 1; a resume: the run's)."
    ),
    nnodes: int = typer.Option(
        1, "--nnodes", help="Machines of a torchrun run (each runs this command; needs --rdzv)."
    ),
    rdzv: str = typer.Option(None, "--rdzv", help="HOST:PORT where the machines of --nnodes meet (torchrun c10d)."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Any other training option (a TrainConfig field) as "
        "key=value with a TOML value, repeatable: --set monitor=val_accuracy "
        "--set scheduler_options={step_size=5}.",
    ),
) -> None:
    """Train a network and print its test accuracy and run directory."""
    from capas.api.fit import build_for, default_spec, fit
    from capas.api.model_tables import is_table, model_from_table
    from capas.api.outputs import claim_output_dir
    from capas.api.seq2seq import is_pairs_data
    from capas.data import load
    from capas.train.rundir import load_model, new_run_dir, remove_if_empty

    started = time.perf_counter()
    from capas.cli.ranks import is_main_rank, start_ranks

    if start_ranks(ctx, nproc=nproc, nnodes=nnodes, rdzv=rdzv, resume=resume, out=out, device=device, data=data):
        return  # the ranks ran the command; rank 0 printed its results
    quiet = quiet or not is_main_rank()  # one progress bar and one report: rank 0's
    command = ["capas", "train", *sys.argv[2:]] if len(sys.argv) > 1 and sys.argv[1] == "train" else None
    if resume is not None:
        from capas.api.fit import resume as resume_run

        refuse_with_resume(ctx, _RESUME_OPTIONS, "config.json")
        result = resume_run(resume, epochs=epochs, quiet=quiet)
    else:
        options: dict[str, Any] = {
            "loss": loss,
            "optimizer": optimizer,
            "lr": lr,
            "epochs": epochs,
            "batch_size": _batch_size(batch_size),
            "engine": engine,
            "threads": threads,
            "seed": seed,
            "device": device,
            "momentum": momentum,
            "l2": l2,
            "l1": l1,
            "clip_norm": clip_norm,
            "clip_value": clip_value,
            "tbptt": tbptt,
            "patience": patience,
            "scheduler": scheduler,
            "resample": resample,
            "class_weights": _class_weights(class_weights),
            "input_noise": input_noise,
            "augment": augment,
            "max_norm": max_norm,
            "amp": amp,
            "target_encoding": target_encoding,
            "frozen_layers": [] if freeze is None else [part.strip() for part in freeze.split(",") if part.strip()],
        }
        options.update(_set_options(ctx, set_))
        if weight_decay is not None:
            options["optimizer_options"] = {**options.get("optimizer_options", {}), "weight_decay": weight_decay}
        if out is None:  # made now (atomically, -2, -3... when taken): two runs never share one
            out = new_run_dir("runs", f"{Path(data).stem or 'data'}-{time.strftime('%Y%m%d-%H%M%S')}")
            ctx.call_on_close(functools.partial(remove_if_empty, out))  # a run that failed to start
        if is_main_rank():  # a multi-process run's directory is rank 0's (the launcher claimed it)
            claim_output_dir(out, hint="choose another --out or --resume it")  # before the data load
        from capas.api.recipes import parse_overrides

        files = {"target": target, "impute": impute, "task": task, "image_size": image_size}
        files = {key: value for key, value in files.items() if value is not None}
        dataset = load(data, seed=options["seed"], validation=validation, **files, **parse_overrides(data_option))
        if init_from is not None:
            if model is not None:
                raise TrainingError("give either --model or --init-from, not both")
            network = load_model(init_from)
        elif is_pairs_data(dataset) or is_table(model):  # a GAN or an encoder-decoder: --model '{...}'
            given = sorted(
                flag(ctx, name) for name in set(typed_options(ctx)) & {"act", "init", "loss", "target_encoding"}
            )
            if given:
                raise TrainingError(
                    f"{', '.join(given)}: a GAN or an encoder-decoder takes its settings in the --model table; "
                    "drop them"
                )
            network, task_options = model_from_table(model, dataset, seed=options["seed"])
            options["task_options"] = task_options
        else:
            network = build_for(
                model or default_spec(dataset), dataset, loss=options["loss"], act=act, seed=options["seed"], init=init
            )
        result = fit(network, dataset, out=out, quiet=quiet, command=command, **options)
    summary = {**result.summary(), "seconds": time.perf_counter() - started}
    if not is_main_rank():
        return
    summary.update(_toy_gan_measures(result))
    if "test_modes" in summary:  # a GAN of the ring or grid toy
        typer.echo(
            f"modes captured: {summary['test_modes']}/{summary['test_total_modes']}  high quality: "
            f"{summary['test_high_quality']:.1%}  reverse KL: {summary['test_reverse_kl']:.4f}"
        )
    if "test_accuracy" in summary:
        typer.echo(f"test accuracy: {summary['test_accuracy']:.4f}  (test loss {summary['test_loss']:.4f})")
    elif "test_exact_match" in summary:  # an encoder-decoder
        typer.echo(
            f"test exact match: {summary['test_exact_match']:.4f}  token accuracy: "
            f"{summary['test_token_accuracy']:.4f}  (test loss {summary['test_loss']:.4f})"
        )
    elif summary.get("test_reconstruction_error") is not None:  # an autoencoder or an RBM
        typer.echo(f"test reconstruction error: {summary['test_reconstruction_error']:.6g}")
    elif summary.get("test_loss") is not None:
        typer.echo(f"test loss: {summary['test_loss']:.6g}")
    if result.stop_reason:
        typer.echo(result.stop_reason)
    typer.echo(f"run directory: {result.run_dir}")
    if as_json:
        typer.echo(json.dumps(summary))


def _toy_gan_measures(result: Any) -> dict[str, Any]:
    """A GAN run of the ring or grid toy: its modes, as ``capas evaluate`` measures them (the
    test_* keys); anything else: nothing."""
    from capas.models.gan import GAN

    if not isinstance(result.model, GAN) or result.run_dir is None:
        return {}
    from capas.api.evaluate import evaluate as evaluate_run
    from capas.errors import CapasError

    try:
        metrics = evaluate_run(result.run_dir).metrics
    except CapasError:  # a GAN of images (its recipe measures it) or of in-memory data
        return {}
    return {key: value for key, value in metrics.items() if key.startswith("test_")}


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by 'capas train'."),
    data: str = typer.Option(
        None,
        "--data",
        help="Evaluate on this dataset's test split instead; for a run trained on a file: every labelled row "
        "of this table (or image folder), encoded as the training file was.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON line."),
    out: Path = typer.Option(None, "--out", help="Also write the metrics to this new JSON file."),
    force: bool = typer.Option(False, "--force", help="Replace the --out file if it exists (never a run's own file)."),
) -> None:
    """Test loss, accuracy, per-class precision/recall/F1 and confusion matrix of a trained run
    (an encoder-decoder: exact match, token accuracy, BLEU; an autoencoder or RBM: the test
    reconstruction error; a GAN of the ring or grid toy: its modes captured)."""
    from capas.api.evaluate import evaluate as evaluate_run
    from capas.api.outputs import check_output_file

    if out is not None:
        check_output_file(out, suffixes=(".json",), force=force)
    result = evaluate_run(run_dir, data)
    record = {"run_dir": str(run_dir), **result.to_json()}
    if out is not None:
        out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(record))
        return
    metrics = result.metrics
    if "test_modes" in metrics:
        typer.echo(f"run {run_dir}: {result.n_samples} samples of its generator against the {result.data} modes")
    else:
        typer.echo(f"run {run_dir} on {result.data} test ({result.n_samples} samples)")
    if "test_loss" in metrics:
        typer.echo(f"test loss: {metrics['test_loss']:.6g}")
    if "test_reconstruction_error" in metrics:  # an autoencoder or an RBM
        energy = metrics.get("test_free_energy")
        typer.echo(
            f"test reconstruction error: {metrics['test_reconstruction_error']:.6g}"
            + ("" if energy is None else f"  free energy: {energy:.6g}")
        )
    if "test_modes" in metrics:  # a GAN of a 2-D toy
        typer.echo(
            f"modes captured: {metrics['test_modes']}/{metrics['test_total_modes']}  high quality: "
            f"{metrics['test_high_quality']:.1%}  reverse KL: {metrics['test_reverse_kl']:.4f}"
        )
    if "test_exact_match" in metrics:
        typer.echo(
            f"test exact match: {metrics['test_exact_match']:.4f}  token accuracy: "
            f"{metrics['test_token_accuracy']:.4f}  BLEU: {metrics['test_bleu']:.4f}"
            + (f"  word BLEU: {metrics['test_word_bleu']:.4f}" if "test_word_bleu" in metrics else "")
        )
    elif result.class_names is not None:
        typer.echo(f"test accuracy: {metrics['test_accuracy']:.4f}  macro F1: {metrics['macro_f1']:.4f}")
        scores = metrics["per_class"]
        for c, name in enumerate(result.class_names):
            typer.echo(
                f"  {name:>12}  precision {scores['precision'][c]:.3f}  recall {scores['recall'][c]:.3f}"
                f"  f1 {scores['f1'][c]:.3f}  support {scores['support'][c]}"
            )
        for line in confusion_lines(metrics["confusion_matrix"], result.class_names):
            typer.echo(line)
    elif "test_rmse" in metrics:
        typer.echo(f"test rmse: {metrics['test_rmse']:.6g}  mae: {metrics['test_mae']:.6g}")


#: more classes than this: the most frequent confusions instead of the whole matrix
MAX_TABLE_CLASSES = 20
MOST_CONFUSED = 10


def confusion_lines(matrix: list[list[int]], class_names: list[str]) -> list[str]:
    """The confusion matrix as aligned text (rows: true class, columns: predicted, both by
    index, rows also by name); past ``MAX_TABLE_CLASSES`` classes a K x K table is
    unreadable, so the ``MOST_CONFUSED`` largest off-diagonal counts are listed instead
    (the whole matrix stays in ``--json`` and ``--out``)."""
    k = len(matrix)
    names = [str(name)[:12] for name in class_names]
    if k > MAX_TABLE_CLASSES:
        pairs = sorted(
            ((matrix[i][j], i, j) for i in range(k) for j in range(k) if i != j and matrix[i][j]), reverse=True
        )[:MOST_CONFUSED]
        lines = [f"confusion matrix: {k} x {k} (in --json); most frequent confusions (true -> predicted):"]
        lines += [f"  {names[i]} -> {names[j]}: {count}" for count, i, j in pairs] or ["  none"]
        return lines
    cell = max(len(str(k - 1)), *(len(str(count)) for row in matrix for count in row))
    digits = len(str(k - 1))
    heads = [f"{i:>{digits}}" + ("" if name == str(i) else f" {name}") for i, name in enumerate(names)]
    label = max(len(head) for head in heads)
    lines = ["confusion matrix (rows: true class, columns: predicted class):"]
    lines.append("  " + " " * label + "".join(f" {j:>{cell}}" for j in range(k)))
    for head, row in zip(heads, matrix):
        lines.append(f"  {head:<{label}}" + "".join(f" {count:>{cell}}" for count in row))
    return lines


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by 'capas train'."),
    inputs: Path = typer.Argument(
        ...,
        metavar="INPUTS",
        help="Samples as .npy (N, *input_shape) or .csv (N, features), raw values; for a run trained on a "
        "file: a table with its columns, or images (a file or a folder).",
    ),
    proba: bool = typer.Option(False, "--proba", help="Also give each class's probability (classifiers)."),
    out: Path = typer.Option(
        None, "--out", help="Write predictions to this new .npy or .csv file instead of printing."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace the --out file if it exists (never an input or run file)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: predictions, their shape and the run directory."
    ),
) -> None:
    """Predict classes (or outputs) for raw samples, preprocessed as the run's training data was."""
    from capas.api.predict import check_output_path, prediction_record, write_predictions
    from capas.api.predict import predict as predict_run

    if out is not None:
        check_output_path(out, (inputs, run_dir), force=force)
    from capas.api.predictions import predict_table, wants_table

    if proba or wants_table(run_dir):  # ids, class names, probabilities
        table = predict_table(run_dir, inputs, proba=proba)
        if out is not None:
            check_output_path(out, (inputs, run_dir), force=force)
            table.write(out)
        if as_json:
            typer.echo(json.dumps({**table.to_json(), "run_dir": str(run_dir)} | ({"out": str(out)} if out else {})))
        elif out is None:
            for row in table.rows():
                typer.echo(" ".join(row))
        else:
            typer.echo(f"wrote {len(table.ids)} predictions to {out}")
        return
    predictions = predict_run(run_dir, inputs)
    if as_json:
        if out is not None:
            write_predictions(predictions, out, force=force)
        typer.echo(json.dumps(prediction_record(predictions, run_dir) | ({"out": str(out)} if out else {})))
        return
    if out is None:
        for row in predictions.cpu().numpy().reshape(len(predictions), -1):
            typer.echo(" ".join(f"{v:g}" for v in row))
        return
    write_predictions(predictions, out, force=force)
    typer.echo(f"wrote {len(predictions)} predictions to {out}")
