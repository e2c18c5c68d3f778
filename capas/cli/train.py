"""``capas train``, ``capas evaluate`` and ``capas predict``.

``capas train`` with no arguments trains ``64-64-10`` (ReLU, Adam, 30 epochs, batches of
32) on ``digits``: about 0.97 test accuracy in a few seconds on a laptop CPU.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import typer

from capas.cli import app
from capas.errors import CapasError, DataError, RunDirError, TrainingError

#: learning rate when --lr is not given: what each optimizer family is usually run with.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "adadelta": 1.0, "rmsprop": 0.001}
ADAPTIVE_LR = 0.003
#: the only ``capas train`` options that --resume combines with (the rest come from config.json)
_RESUME_OPTIONS = ("resume", "epochs", "quiet", "as_json")


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


def _default_spec(dataset: Any) -> str:
    """``<inputs>-64-<outputs>`` for the dataset (``64-64-10`` for digits)."""
    inputs = math.prod(dataset.input_shape)
    outputs = dataset.num_classes if dataset.num_classes is not None else dataset.y_train.shape[1]
    return f"{inputs}-64-{outputs}"


def _summary_line(result: Any) -> dict[str, Any]:
    metrics = result.test_metrics
    last = result.history[-1] if result.history else {}
    summary = {
        "test_loss": metrics.get("test_loss"),
        "epochs": len(result.history),
        "train_loss": last.get("train_loss"),
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "engine": result.engine,
        "run_dir": str(result.run_dir) if result.run_dir else None,
    }
    if "test_accuracy" in metrics:
        summary["test_accuracy"] = metrics["test_accuracy"]
    for key in ("test_mse", "test_rmse", "test_mae"):
        if key in metrics:
            summary[key] = metrics[key]
    return summary


@app.command()
def train(
    ctx: typer.Context,
    data: str = typer.Option("digits", "--data", help="Dataset name (see 'capas datasets')."),
    model: str = typer.Option(None, "--model", help="Model spec, e.g. 64-64-10 (default: <inputs>-64-<classes>)."),
    act: str = typer.Option("relu", "--act", help="Hidden activation: relu, tanh, sigmoid, ..."),
    loss: str = typer.Option(None, "--loss", help="cross_entropy, mse, mse_half_sum, binary_cross_entropy."),
    optimizer: str = typer.Option("adam", "--optimizer", help="sgd, momentum, nesterov, adam, rmsprop, ..."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default depends on the optimizer)."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum number of epochs (default 30; with --resume: "
                               "train the run to this many instead)."),
    batch_size: str = typer.Option("32", "--batch-size", help="B for mini-batch, 'full' for batch, 1 for online."),
    seed: int = typer.Option(0, "--seed", help="Seed for split, init, shuffling, dropout, noise."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/<data>-<timestamp>)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary as the last stdout line."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this directory."),
    engine: str = typer.Option("auto", "--engine", help="auto, backprop (explicit delta rule) or autograd."),
    init_from: Path = typer.Option(None, "--init-from", help="Start from model.json + weights.safetensors in DIR."),
    freeze: str = typer.Option(None, "--freeze",
                               help="Layers kept as they are, e.g. 0,1 or dense1,dense2 (with --init-from)."),
    momentum: float = typer.Option(None, "--momentum", help="Momentum nu (sgd, rmsprop)."),
    weight_decay: float = typer.Option(None, "--weight-decay",
                                       help="The optimizer's weight_decay option (decoupled in adamw)."),
    l2: float = typer.Option(0.0, "--l2", help="L2 penalty lambda (lambda/2 sum w^2)."),
    l1: float = typer.Option(0.0, "--l1", help="L1 penalty lambda (lambda sum |w|)."),
    clip_norm: float = typer.Option(None, "--clip-norm", help="Clip the gradient norm to this value."),
    clip_value: float = typer.Option(None, "--clip-value", help="Clip every gradient component to [-v, v]."),
    patience: int = typer.Option(None, "--patience", help="Early stopping patience (epochs) on val_loss."),
    scheduler: str = typer.Option(None, "--scheduler", help="step, exponential, cosine, triangular, one_cycle, ..."),
    validation: float = typer.Option(0.1, "--validation", help="Share of the training data held out."),
    resample: str = typer.Option("none", "--resample", help="none, over, under or smote (training split only)."),
    class_weights: str = typer.Option(None, "--class-weights", help="'balanced' or comma-separated weights."),
    input_noise: float = typer.Option(0.0, "--input-noise", help="Std of Gaussian noise on training inputs."),
    max_norm: float = typer.Option(None, "--max-norm", help="Max-norm constraint on each unit's weights."),
    target_encoding: str = typer.Option("onehot", "--target-encoding",
                                        help="MSE/BCE class targets: onehot, tanh (+-0.9), sigmoid (0.1/0.9)."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (CUDA)."),
) -> None:
    """Train a network and print its test accuracy and run directory."""
    from capas.data import load
    from capas.train import fit

    started = time.perf_counter()
    command = ["capas", "train", *sys.argv[2:]] if len(sys.argv) > 1 and sys.argv[1] == "train" else None
    if resume is not None:
        from capas.train.rundir import load_model, load_run

        given = sorted(f"--{name.replace('_', '-')}" for name in ctx.params if name not in _RESUME_OPTIONS
                       and getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE")
        if given:
            raise TrainingError(f"--resume takes its options from the run's config.json; drop {', '.join(given)} "
                                "(only --epochs, --quiet and --json go with --resume)")
        run = load_run(resume)
        saved = run.config.get("data", {})
        if not saved.get("name"):
            raise RunDirError(f"{resume} was trained on in-memory data; resume it from Python with "
                              "capas.fit(model, data, resume=RUN_DIR)")
        dataset = load(saved["name"], **saved.get("options", {}))
        network = load_model(resume)
        result = fit(network, dataset, resume=resume, quiet=quiet, epochs=epochs)
    else:
        if out is None:
            out = Path("runs") / f"{data}-{time.strftime('%Y%m%d-%H%M%S')}"
        if out.exists() and any(out.iterdir()):
            raise RunDirError(f"{out} already exists and is not empty; choose another --out or --resume it")
        dataset = load(data, seed=seed, validation=validation)
        network = _network(model, init_from, dataset, act, loss, seed)
        options: dict[str, Any] = {
            "momentum": momentum, "l2": l2, "l1": l1, "clip_norm": clip_norm, "clip_value": clip_value,
            "patience": patience, "scheduler": scheduler, "resample": resample,
            "class_weights": _class_weights(class_weights), "input_noise": input_noise, "max_norm": max_norm,
            "amp": amp, "target_encoding": target_encoding,
            "frozen_layers": [] if freeze is None else [part.strip() for part in freeze.split(",") if part.strip()],
            "optimizer_options": {} if weight_decay is None else {"weight_decay": weight_decay},
        }
        result = fit(
            network, dataset, loss=loss, optimizer=optimizer,
            lr=lr if lr is not None else DEFAULT_LR.get(optimizer.lower(), ADAPTIVE_LR),
            epochs=30 if epochs is None else epochs, batch_size=_batch_size(batch_size), engine=engine, seed=seed, device=device,
            out=out, quiet=quiet, command=command, **options,
        )
    summary = {**_summary_line(result), "seconds": time.perf_counter() - started}
    if "test_accuracy" in summary:
        typer.echo(f"test accuracy: {summary['test_accuracy']:.4f}  (test loss {summary['test_loss']:.4f})")
    elif summary.get("test_loss") is not None:
        typer.echo(f"test loss: {summary['test_loss']:.6g}")
    if result.stop_reason:
        typer.echo(result.stop_reason)
    typer.echo(f"run directory: {result.run_dir}")
    if as_json:
        typer.echo(json.dumps(summary))


def _network(spec: str | None, init_from: Path | None, dataset: Any, act: str, loss: str | None, seed: int) -> Any:
    """The model to train: rebuilt from --init-from, else built from the spec with ``seed``."""
    from capas.models import build
    from capas.train.fit import network_loss
    from capas.train.rundir import load_model

    if init_from is not None:
        if spec is not None:
            raise TrainingError("give either --model or --init-from, not both")
        return load_model(init_from)
    default_loss = "cross_entropy" if dataset.task == "classification" else "mse"
    return build(spec or _default_spec(dataset), act=act, loss=network_loss(loss or default_loss), seed=seed)


def _run_dataset(run: Any, name: str | None) -> Any:
    """The run's own test data (same name, options, seed), or dataset ``name`` with the run's seed."""
    from capas.data import load

    saved = run.config.get("data", {})
    if name is None:
        if not saved.get("name"):
            raise RunDirError(f"{run.path} was trained on in-memory data; pass --data NAME to evaluate it")
        return load(saved["name"], **saved.get("options", {}))
    options = saved.get("options", {})
    return load(name, seed=options.get("seed", 0), validation=options.get("validation", 0.1))


def _run_loss(run: Any, num_classes: int | None) -> Any:
    from capas.train.losses import Loss

    train_cfg = run.config["train"]
    model_loss = run.model_config.get("loss") or run.model_config.get("options", {}).get("loss")
    name = train_cfg.get("loss") or model_loss or ("cross_entropy" if num_classes else "mse")
    return Loss(name, num_classes=num_classes, target_encoding=train_cfg.get("target_encoding", "onehot"))


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by 'capas train'."),
    data: str = typer.Option(None, "--data", help="Evaluate on this dataset's test split instead."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON line."),
) -> None:
    """Test loss, accuracy, per-class precision/recall/F1 and confusion matrix of a trained run."""
    from capas.train.evaluation import evaluate_model
    from capas.train.rundir import load_run

    run = load_run(run_dir)
    model = run.build_model()
    dataset = _run_dataset(run, data)
    if len(dataset.x_test) == 0:
        raise DataError(f"dataset {dataset.name} has no test split to evaluate on")
    metrics = evaluate_model(model, dataset.x_test, dataset.y_test, _run_loss(run, dataset.num_classes))
    if as_json:
        typer.echo(json.dumps({"run_dir": str(run_dir), "data": dataset.name, **metrics}))
        return
    typer.echo(f"run {run_dir} on {dataset.name} test ({len(dataset.x_test)} samples)")
    typer.echo(f"test loss: {metrics['test_loss']:.6g}")
    if "test_accuracy" in metrics:
        typer.echo(f"test accuracy: {metrics['test_accuracy']:.4f}  macro F1: {metrics['macro_f1']:.4f}")
        scores = metrics["per_class"]
        for c, name in enumerate(dataset.class_names):
            typer.echo(f"  {name:>12}  precision {scores['precision'][c]:.3f}  recall {scores['recall'][c]:.3f}"
                       f"  f1 {scores['f1'][c]:.3f}  support {scores['support'][c]}")
    else:
        typer.echo(f"test rmse: {metrics['test_rmse']:.6g}  mae: {metrics['test_mae']:.6g}")


def _read_inputs(path: Path) -> Any:
    import numpy as np

    if not path.is_file():
        raise DataError(f"no input file {path}; give a .npy or .csv file of samples")
    if path.suffix not in (".npy", ".csv"):
        raise DataError(f"unsupported input file {path.name}; use .npy or .csv")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            array = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read {path} ({err}); it must be a numeric .npy or comma-separated .csv") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{path} holds {array.dtype} values, not numbers; save the samples as a numeric array")
    return array


def _prepare(array: Any, input_shape: tuple[int, ...], preprocessing: dict[str, Any]) -> Any:
    """(N, *input_shape) float32 tensor, with the run's scaling and standardisation applied."""
    import torch

    from capas.data import Standardizer

    x = torch.as_tensor(array, dtype=torch.float32)
    width = math.prod(input_shape)
    fits = x.ndim >= 2 and tuple(x.shape[1:]) == tuple(input_shape)
    if not fits and x.ndim == 2 and x.shape[1] == width:
        x = x.reshape(len(x), *input_shape)
    elif not fits:
        shape = f"(N, {', '.join(map(str, input_shape))})" + ("" if len(input_shape) == 1 else f" or (N, {width})")
        raise DataError(f"input has shape {tuple(x.shape)} but the model expects {shape}")
    if "scale" in preprocessing:
        x = x / float(preprocessing["scale"]["divide_by"])
    if "standardize" in preprocessing:
        standardizer = Standardizer.from_dict(preprocessing["standardize"])
        if standardizer.mean.numel() == width:  # statistics of an image fed to an MLP, or vice versa
            standardizer.mean = standardizer.mean.reshape(input_shape)
            standardizer.std = standardizer.std.reshape(input_shape)
        x = standardizer.transform(x)
    return x


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run directory written by 'capas train'."),
    inputs: Path = typer.Argument(..., help="Samples as .npy (N, *input_shape) or .csv (N, features), raw values."),
    out: Path = typer.Option(None, "--out", help="Write predictions to this .npy or .csv file instead of printing."),
) -> None:
    """Predict classes (or outputs) for raw samples, preprocessed as the run's training data was."""
    import numpy as np

    from capas.train.rundir import load_run

    if out is not None and (out.suffix not in (".npy", ".csv") or not out.parent.is_dir()):
        raise CapasError(f"--out must be a .npy or .csv file in an existing directory, got {out}")
    run = load_run(run_dir)
    model = run.build_model()
    x = _prepare(_read_inputs(inputs), tuple(model.input_shape), run.config.get("data", {}).get("preprocessing", {}))
    predictions = model.predict(x).cpu().numpy()
    if out is None:
        for row in predictions.reshape(len(predictions), -1):
            typer.echo(" ".join(f"{v:g}" for v in row))
        return
    if out.suffix == ".npy":
        np.save(out, predictions)
    else:
        np.savetxt(out, predictions.reshape(len(predictions), -1), delimiter=",", fmt="%g")
    typer.echo(f"wrote {len(predictions)} predictions to {out}")
