"""``capas.evaluate``: the test metrics of a trained run (or model) on a dataset's test split.

A run directory is evaluated on its own test data (same dataset name, options and seed, so
the split is the one it never trained on) with its own loss and target encoding, which
reproduces the test metrics ``fit`` reported; another dataset is loaded with the run's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from capas import defaults
from capas.data.fitted import reads_files
from capas.errors import DataError, RunDirError
from capas.objectives.losses import Loss
from capas.train.evaluation import evaluate_model
from capas.train.rundir import Run, load_run, read_json


@dataclass
class Evaluation:
    """Metrics of one model on one dataset's test split."""

    data: str  # the dataset's name
    n_samples: int
    class_names: list[str] | None  # None for regression
    metrics: dict[str, Any]  # test_loss, test_accuracy + per_class + confusion_matrix, or test_mse/rmse/mae

    def to_json(self) -> dict[str, Any]:
        """``{"data": name, **metrics}``: what ``capas evaluate --json`` prints (with the run dir)."""
        return {"data": self.data, **self.metrics}


def evaluate(
    run_or_model: str | Path | nn.Module, data: str | Any | None = None, *, loss: str | None = None
) -> Evaluation:
    """Test metrics of ``run_or_model`` on ``data``'s test split.

    Args:
        run_or_model: a run directory (``capas train``/``capas.fit(out=...)``) or a model.
        data: a dataset name or ``Dataset``; for a run, None means the run's own test data.
        loss: the loss reported as ``test_loss``; default: the run's training loss, else the
            model's own, else the task's (``capas.defaults.default_loss``).
    """
    if isinstance(run_or_model, (str, Path)):
        run = load_run(run_or_model)
        model = run.build_model()  # refuses weights whose names or shapes do not fit model.json
        check_one_run(run)
        dataset = run_dataset(run, data)
        bound = run.loss(dataset.num_classes, loss)
    else:
        if data is None:
            raise DataError("evaluating a model needs data: a dataset name or a capas Dataset")
        model = run_or_model
        dataset = _load(data, defaults.SEED, defaults.VALIDATION)
        name = loss or getattr(model, "loss", None) or defaults.default_loss(dataset.task)
        bound = Loss(name, num_classes=dataset.num_classes)
    if len(dataset.x_test) == 0:
        raise DataError(f"dataset {dataset.name} has no test split to evaluate on")
    metrics = _task_metrics(model, dataset)
    if metrics is None:
        metrics = evaluate_model(model, dataset.x_test, dataset.y_test, bound)
    classes = list(dataset.class_names) if "test_accuracy" in metrics else None
    n = GAN_SAMPLES if "test_modes" in metrics else len(dataset.x_test)  # a GAN: its own samples are scored
    return Evaluation(dataset.name, n, classes, metrics)


def _task_metrics(model: nn.Module, dataset: Any) -> dict[str, Any] | None:
    """The test metrics of a model whose task is not supervised learning (None for one that
    is): an encoder-decoder's exact match, token accuracy and BLEU of greedy decoding; an
    autoencoder's or an RBM's reconstruction error (and free energy) of the test inputs."""
    from capas.models.autoencoder import Autoencoder
    from capas.models.gan import GAN
    from capas.models.rbm import RBM
    from capas.models.seq2seq import Seq2Seq

    if isinstance(model, (Autoencoder, RBM)):
        from capas.tasks import autoencoder, rbm

        measure = autoencoder.test_metrics if isinstance(model, Autoencoder) else rbm.test_metrics
        return measure(model, model.check_data(dataset.x_test))

    if isinstance(model, GAN):
        return gan_mode_metrics(model, dataset)
    if not isinstance(model, Seq2Seq):
        return None
    from capas.tasks.seq2seq import test_metrics

    if not hasattr(dataset, "target_vocab") or dataset.target_vocab.tokens != model.target_vocab.tokens:
        raise DataError(
            f"dataset {dataset.name} is not made of this encoder-decoder's symbol pairs; evaluate it on "
            "the pairs it was trained on (leave --data out) or on a pairs dataset of the same vocabulary"
        )
    return test_metrics(model, dataset.x_test, dataset.y_test)


#: samples a toy GAN is measured on (the GAN recipes' default)
GAN_SAMPLES = 2500


def gan_mode_metrics(model: Any, dataset: Any) -> dict[str, Any]:
    """A GAN of a 2-D toy (ring, grid): modes captured, high-quality share, reverse KL and
    the mode histogram of :data:`GAN_SAMPLES` samples (noise seeded 0), as its recipe
    measures them. Images need a feature classifier trained on the data: their recipe's."""
    from capas.data.gan_toys import SIGMAS, mode_centres
    from capas.diagnostics.gan_measures import mode_measures

    if dataset.name not in SIGMAS:
        raise DataError(
            f"capas evaluate measures GANs of the 2-D toys ({', '.join(SIGMAS)}) by their modes; a GAN of "
            f"{dataset.name} is measured by its recipe (Fréchet distance on a classifier capas trains: "
            "capas run recipes/gan-mnist.toml), or save its samples with capas sample RUN --npy"
        )
    import torch

    samples = model.sample(GAN_SAMPLES, torch.Generator().manual_seed(0))
    sigma = dataset.options.get("sigma", SIGMAS[dataset.name])
    measures = mode_measures(samples, mode_centres(dataset.name), sigma).to_json()
    return {f"test_{key}" if key != "histogram" else "mode_histogram": value for key, value in measures.items()}


def check_one_run(run: Run) -> None:
    """Refuse a run directory whose files belong to different runs: a finished run's
    metrics.json must describe the epochs of its history, and its weights must be those of
    the last of them (a second run written over a first leaves the first one's metrics next
    to its own weights and history, and evaluating that would report a run that never was)."""
    if run.metrics is None or not isinstance(run.metrics.get("epochs"), int):
        return  # unfinished (evaluated as its last checkpoint) or not recorded
    state = read_json(run.path / "state.json") if (run.path / "state.json").is_file() else None
    if isinstance(state, dict) and state.get("finished") is False:
        return  # a finished run being trained longer: its metrics.json is from its last finish
    tag = _weights_epoch(run.path / "weights.safetensors")
    last = run.history[-1].get("epoch") if len(run.history) else 0
    if run.metrics["epochs"] != len(run.history) or (tag is not None and tag != last):
        raise RunDirError(
            f"{run.path} mixes files of different runs: metrics.json reports {run.metrics['epochs']} epochs, "
            f"history.json has {len(run.history)} and the weights are from epoch {tag}; "
            "evaluate an intact run or train again into a new directory"
        )


def _weights_epoch(path: Path) -> int | None:
    """The epoch a run's weights file is tagged with (None when untagged)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        epoch = (handle.metadata() or {}).get("epoch")
    return int(epoch) if epoch is not None and epoch.isdigit() else None


def _load(data: str | Any, seed: int, validation: float) -> Any:
    if isinstance(data, str):
        from capas.data import load

        return load(data, seed=seed, validation=validation)
    return data


def run_dataset(run: Run, data: str | Any | None) -> Any:
    """The run's own test data (same name, options, seed), or ``data`` (a name loaded with
    the run's seed and validation share, or a ``Dataset`` as it is)."""
    saved = run.config.get("data", {})
    if data is None:
        if not saved.get("name"):
            raise RunDirError(f"{run.path} was trained on in-memory data; pass --data NAME to evaluate it")
        from capas.data.subsets import reload_dataset

        return reload_dataset(saved)
    options = saved.get("options", {})
    if isinstance(data, (str, Path)) and reads_files(saved.get("preprocessing") or {}):
        from capas.api.predictions import labelled_file_dataset

        return labelled_file_dataset(run, data)  # every row, encoded as the training file was
    return _load(data, options.get("seed", defaults.SEED), options.get("validation", defaults.VALIDATION))
