"""Greedy layer-wise unsupervised pre-training (RBMs or autoencoders) on the training loop.

Each hidden ``Dense`` layer of the network built from SPEC is trained, bottom-up, as the
hidden layer of an RBM (``method="rbm"``: a DBN) or of a one-layer autoencoder (``"ae"``,
``"dae"`` denoising, ``"sparse-ae"``) whose input is the previous pre-trained layer's
output for the training data (plus optional unlabelled extra inputs). The output layer
keeps its fresh initialisation; backpropagation then fine-tunes everything. A ``DBN``
given instead of a spec is trained the same way, one RBM per stage.

Every layer is one *stage*: a ``capas.train.Trainer`` run of a
``ContrastiveDivergenceTask`` or an ``AutoencoderTask``, with the loop's progress bar,
history and checkpoints. With ``out=DIR`` each stage is a run directory ``DIR/stage1``,
``DIR/stage2``... (config.json, model.json of the stage's RBM or autoencoder, weights,
state, history), and DIR holds:

- ``pretrain.json``: the settings, ``"finished"``, and per layer its settings and curve;
- when finished, ``model.json`` + ``weights.safetensors`` of the whole network (so
  ``capas train --init-from DIR`` fine-tunes it) and ``pretrain.safetensors`` (each
  layer's decoder -- for RBMs W^T and the visible bias -- and a few example inputs, so
  ``capas plot DIR`` draws reconstructions and samples).

:func:`resume_pretrain` continues a killed pre-training: finished stages are loaded, the
interrupted one resumes from its last checkpoint, the later ones run; the weights are
bit-identical to those of an uninterrupted run. DIR's lock (``capas.train.rundir.lock``) is
held for the whole pre-training, so a second writer is refused; Ctrl-C raises
``TrainingInterrupted`` and a full disk a ``RunDirError``, both naming
``capas pretrain --resume DIR``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from capas import defaults
from capas.api.outputs import claim_output_dir
from capas.errors import DataError, RunDirError, SpecError, TrainingInterrupted
from capas.models.autoencoder import Autoencoder
from capas.models.dbn import DBN, dense_layers
from capas.models.freezing import freeze, unfreeze
from capas.tasks import AutoencoderTask, ContrastiveDivergenceTask
from capas.train import rundir
from capas.train.callbacks import Callback
from capas.train.config import TrainConfig
from capas.train.loop import Trainer
from capas.train.task import Task

METHODS = ("rbm", "ae", "dae", "sparse-ae")
DEFAULT_LR = {"rbm": 0.1, "ae": 0.003, "dae": 0.003, "sparse-ae": 0.003}
GAUSSIAN_RBM_LR = 0.01
N_EXAMPLES = 16
#: the autoencoders' optimizer (the RBMs use the contrastive-divergence rule)
AE_OPTIMIZER = "adam"

__all__ = ["PretrainResult", "fine_tune", "freeze", "pretrain", "resume_pretrain", "unfreeze"]


@dataclass
class PretrainResult:
    """The pre-trained network (or DBN), one dict per hidden layer (settings + ``curve``),
    the number of unlabelled samples it saw, the run dir, the settings (pretrain.json's)."""

    network: nn.Module
    layers: list[dict] = field(default_factory=list)
    n_samples: int = 0
    run_dir: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stage:
    """One hidden layer's training: the task, its options, and how its output feeds the next."""

    task: Task
    config: TrainConfig
    transform: Callable[[torch.Tensor], torch.Tensor]  # (N, n_in) -> (N, n_out): the next stage's inputs
    record: dict[str, Any]


def pretrain(
    data: Any,
    model: str | DBN,
    *,
    method: str = "rbm",
    epochs: int = 10,
    layer_epochs: Sequence[int] | None = None,
    lr: float | None = None,
    layer_lr: Sequence[float] | None = None,
    batch_size: int = 32,
    k: int = 1,
    persistent: bool = False,
    momentum: float = 0.5,
    act: str = "sigmoid",
    loss: str | None = None,
    noise: float = 0.3,
    sparsity_target: float = 0.05,
    sparsity_weight: float = 0.1,
    unlabelled_extra: Any = None,
    seed: int = defaults.SEED,
    device: str = "cpu",
    out: str | Path | None = None,
    quiet: bool = False,
    callbacks: Sequence[Callback] = (),
) -> PretrainResult:
    """Pre-train the hidden layers of ``model`` greedily and return the network.

    Args:
        data: a ``Dataset``, a registered name, or unlabelled inputs (N, ...) as a tensor;
            the unlabelled inputs are its training inputs plus ``unlabelled_extra`` (a
            dataset name -- its train and validation inputs, never its test set -- or a
            tensor (M, *input_shape)).
        model: capas notation of an MLP (e.g. "64-100-100-10"), built with ``act`` and
            ``seed``; or a ``DBN`` (``method`` "rbm"), whose RBMs are trained in place.
        layer_epochs, layer_lr: one value per hidden layer (default ``epochs``, and lr 0.1
            for RBMs -- 0.01 for a first layer with Gaussian visible units, chosen when the
            inputs are not in [0, 1] -- or 0.003 for autoencoders, trained with Adam).
        k, persistent, momentum: CD-k / PCD-k settings of RBM layers.
        noise: masking probability of "dae"; ``sparsity_target``/``sparsity_weight``: the
            KL (sigmoid code) or L1 penalty of "sparse-ae".
        loss: the network's loss for fine-tuning (default: mse for regression data, else
            cross_entropy), recorded in model.json.
        seed: stage l trains with seed ``seed + l`` (its shuffling, sampling, corruption).
        device: where the stages train (the returned network is on the CPU).
        out: run directory (see the module docstring); None writes nothing.
        quiet: no progress bars; ``callbacks``: extra callbacks of every stage's loop.
    """
    if method not in METHODS:
        raise SpecError(f"unknown pre-training method {method!r}; use one of {', '.join(METHODS)}")
    if out is not None:  # before the data load: a bad or used output costs nothing
        claim_output_dir(out, hint="choose another output directory, or resume that pre-training")
    dataset = _load(data, seed)
    if isinstance(model, DBN):
        if method != "rbm":
            raise SpecError(f"a DBN is a stack of RBMs; pre-train it with method 'rbm', not {method!r}")
        network, hidden, spec = model, None, None
        widths = model.sizes[:-1]
    else:
        if not isinstance(model, str):
            raise SpecError(f"pre-training takes an MLP spec (e.g. '64-100-10') or a DBN, got {type(model).__name__}")
        from capas.models import build

        if loss is None:  # the loss fine-tuning will use, recorded in model.json
            loss = "mse" if getattr(dataset, "task", "classification") == "regression" else "cross_entropy"
        network, spec = build(model, act=act, loss=loss, seed=seed), model
        hidden = _hidden_layers(network, method)
        widths = [layer.in_features for layer in hidden]
    x = _unlabelled_inputs(dataset, unlabelled_extra, seed, widths[0])
    n = len(widths)
    epochs_per_layer = per_layer(list(layer_epochs) if layer_epochs else epochs, n, "layer epochs")
    lr_per_layer = per_layer(list(layer_lr) if layer_lr else (lr or DEFAULT_LR[method]), n, "layer lr")
    if method == "rbm" and hidden is not None and lr is None and not layer_lr and not _in_unit_interval(x):
        lr_per_layer[0] = GAUSSIAN_RBM_LR  # real-valued inputs: Gaussian visible units diverge at 0.1
    if min(epochs_per_layer) < 1 or min(lr_per_layer) <= 0 or batch_size < 1:
        raise SpecError(
            f"pre-training needs epochs >= 1, lr > 0 and batch_size >= 1 for every layer, got epochs "
            f"{epochs_per_layer}, lr {lr_per_layer}, batch_size {batch_size}"
        )
    settings = {
        "method": method,
        "spec": spec,
        "act": act,
        "loss": loss,
        "data": getattr(dataset, "name", None),
        "data_options": dict(getattr(dataset, "options", {}) or {}),
        "seed": seed,
        "device": device,
        "n_samples": x.shape[0],
        "unlabelled_extra": _describe(unlabelled_extra),
        "batch_size": batch_size,
        "input_shape": list(dataset.shape[1:] if isinstance(dataset, torch.Tensor) else dataset.input_shape),
        "layer_epochs": epochs_per_layer,
        "layer_lr": lr_per_layer,
        "dbn": model.config() if isinstance(model, DBN) else None,
        **(
            {"k": k, "persistent": persistent, "momentum": momentum}
            if method == "rbm"
            else {"noise": noise, "sparsity_target": sparsity_target, "sparsity_weight": sparsity_weight}
        ),
    }
    if out is None:
        with _interrupts_name_the_resume(out):
            return _stages(network, hidden, x, settings, out, resume=False, quiet=quiet, callbacks=callbacks)
    with rundir.lock(out):
        if (Path(out) / "pretrain.json").exists():  # checked under the lock: another one started meanwhile
            raise RunDirError(f"{out} already holds a pre-training; write to another directory or resume it")
        with _writing(out):
            rundir.write_json(Path(out) / "pretrain.json", {**settings, "finished": False, "layers": []})
        with _interrupts_name_the_resume(out):
            return _stages(network, hidden, x, settings, out, resume=False, quiet=quiet, callbacks=callbacks)


def resume_pretrain(
    run_dir: str | Path,
    *,
    data: Any = None,
    unlabelled_extra: Any = None,
    quiet: bool = False,
    callbacks: Sequence[Callback] = (),
) -> PretrainResult:
    """Continue the pre-training in ``run_dir`` (killed or interrupted) with its recorded
    settings: stages that finished are loaded from their run directories, the interrupted
    one resumes from its last checkpoint, the later ones run. ``data`` (and a tensor
    ``unlabelled_extra``) must be given again when they were not registry datasets."""
    run_dir = Path(run_dir)
    if not (run_dir / "pretrain.json").is_file():
        raise RunDirError(f"{run_dir} has no pretrain.json; resume a directory written by `capas pretrain --out`")
    with rundir.lock(run_dir):  # read under the lock: a pre-training running there now is refused
        return _resume(run_dir, data, unlabelled_extra, quiet, callbacks)


def _resume(
    run_dir: Path, data: Any, unlabelled_extra: Any, quiet: bool, callbacks: Sequence[Callback]
) -> PretrainResult:
    settings = rundir.read_json(run_dir / "pretrain.json")
    if settings.get("finished"):
        raise RunDirError(f"the pre-training in {run_dir} already finished; nothing to resume")
    if data is None:
        if settings["data"] is None:
            raise RunDirError(f"{run_dir} was pre-trained on in-memory inputs; pass them: resume_pretrain(dir, data=x)")
        from capas.data import load

        data = load(settings["data"], **settings["data_options"])
    extra = settings["unlabelled_extra"]
    if unlabelled_extra is None and extra is not None:
        if not _is_dataset_name(extra):
            raise RunDirError(
                f"{run_dir} used unlabelled extra inputs given as a {extra}; pass them again: "
                "resume_pretrain(dir, unlabelled_extra=x)"
            )
        unlabelled_extra = extra
    dataset = _load(data, settings["seed"])
    if settings["dbn"] is not None:  # a DBN object: rebuilt with its initial weights (from its seed)
        network, hidden = DBN.from_config(settings["dbn"]), None
        width = network.sizes[0]
    else:
        from capas.models import build

        network = build(settings["spec"], act=settings["act"], loss=settings["loss"], seed=settings["seed"])
        hidden = _hidden_layers(network, settings["method"])
        width = hidden[0].in_features
    x = _unlabelled_inputs(dataset, unlabelled_extra, settings["seed"], width)
    if x.shape[0] != settings["n_samples"]:
        raise DataError(
            f"the data has {x.shape[0]} unlabelled samples but {run_dir} was pre-trained on "
            f"{settings['n_samples']}; pass the same data"
        )
    with _interrupts_name_the_resume(run_dir):
        return _stages(network, hidden, x, settings, run_dir, resume=True, quiet=quiet, callbacks=callbacks)


@contextmanager
def _interrupts_name_the_resume(out: str | Path | None) -> Iterator[None]:
    """Ctrl-C between or inside stages is a TrainingInterrupted naming the resume command."""
    try:
        yield
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:
        if out is None:
            raise TrainingInterrupted(
                "pre-training interrupted; nothing was saved (no output directory was given)"
            ) from None
        raise TrainingInterrupted(
            f"pre-training interrupted; the finished stages are kept in {out}; continue with: {_resume_command(out)}"
        ) from None


def _resume_command(out: str | Path) -> str:
    return f"capas pretrain --resume {out}"


@contextmanager
def _writing(out: str | Path) -> Iterator[None]:
    """DIR's own files: an OSError (full disk...) is a one-line RunDirError naming the resume."""
    try:
        yield
    except OSError as err:
        fix = "free some space" if rundir.is_disk_full(err) else "fix that"
        raise RunDirError(
            f"{rundir.os_error_reason(err)} while writing {err.filename or out}; the finished stages are kept; "
            f"{fix} and resume with: {_resume_command(out)}"
        ) from None


def _stages(
    network: nn.Module,
    hidden: list[nn.Module] | None,
    x: torch.Tensor,
    settings: dict[str, Any],
    out: str | Path | None,
    *,
    resume: bool,
    quiet: bool,
    callbacks: Sequence[Callback],
) -> PretrainResult:
    """Train the stages bottom-up (each on the previous one's outputs), then write DIR."""
    dbn = _stage_dbn(network, hidden, x, settings)
    records, decoders, inputs = [], {}, x
    for index in range(len(settings["layer_epochs"])):
        stage = _make_stage(index, dbn, hidden, inputs, settings)
        history = _train_stage(
            stage,
            inputs,
            None if out is None else Path(out) / f"stage{index + 1}",
            resume=resume,
            quiet=quiet,
            callbacks=callbacks,
        )
        stage.record["curve"] = [_curve_record(entry) for entry in history]
        records.append(stage.record)
        decoders.update(_decoder(index, stage.task.model))
        device = next(stage.task.model.parameters()).device
        with torch.no_grad():
            inputs = stage.transform(inputs.to(device))  # (N, n_out): the next stage's data
    if dbn is not None and dbn is not network:
        dbn.copy_into(network)
    network.cpu()
    names = network.layer_names() if hidden is not None else [f"rbm{i + 1}" for i in range(len(records))]
    for record, name in zip(records, names):
        record["name"] = name
    result = PretrainResult(network, records, x.shape[0], settings=settings)
    if out is not None:
        with _writing(out):
            result.run_dir = write_pretrained(
                out, network, {**settings, "finished": True, "layers": records}, decoders, x[:N_EXAMPLES]
            )
    return result


def _stage_dbn(
    network: nn.Module, hidden: list[nn.Module] | None, x: torch.Tensor, settings: dict[str, Any]
) -> DBN | None:
    """The DBN whose RBMs are the stages of an "rbm" pre-training (the given one, or one over
    the hidden layers, copied into the network at the end); None for autoencoders."""
    if settings["method"] != "rbm":
        return None
    if hidden is None:
        return network
    visible = "bernoulli" if _in_unit_interval(x) else "gaussian"
    return DBN([hidden[0].in_features, *(layer.out_features for layer in hidden)], visible, seed=settings["seed"])


def _make_stage(
    index: int, dbn: DBN | None, hidden: list[nn.Module] | None, inputs: torch.Tensor, settings: dict[str, Any]
) -> Stage:
    """Stage ``index``: an RBM of the DBN, or an autoencoder around hidden layer ``index``."""
    seed, method = settings["seed"] + index, settings["method"]
    epochs, lr = settings["layer_epochs"][index], settings["layer_lr"][index]
    common = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": settings["batch_size"],
        "seed": seed,
        "device": settings["device"],
        "warn_gradients": False,
        "grad_norms": False,
    }
    if dbn is not None:
        rbm = dbn.rbms[index]
        task: Task = ContrastiveDivergenceTask(rbm, k=settings["k"], persistent=settings["persistent"])
        config = TrainConfig.from_options(momentum=settings["momentum"], **common)
        record = {
            "layer": index,
            "n_in": rbm.n_visible,
            "n_out": rbm.n_hidden,
            "kind": f"rbm-{rbm.visible}",
            "decoder_act": "sigmoid" if rbm.visible == "bernoulli" else "linear",
            "epochs": epochs,
            "lr": lr,
        }
        return Stage(task, config, rbm.hidden_probs, record)
    layer = hidden[index]
    output_act = "sigmoid" if _in_unit_interval(inputs) else "linear"
    options: dict[str, Any] = {"output_act": output_act, "seed": seed}
    if method == "dae":
        options.update(corruption="mask", noise=settings["noise"])
    if method == "sparse-ae":
        sigmoid_code = layer.activation.name == "sigmoid"
        options.update(
            sparsity="kl" if sigmoid_code else "l1",
            sparsity_target=settings["sparsity_target"],
            sparsity_weight=settings["sparsity_weight"],
        )
    task = AutoencoderTask(Autoencoder(layer, **options))
    config = TrainConfig.from_options(optimizer=AE_OPTIMIZER, **common)
    record = {
        "layer": index,
        "n_in": layer.in_features,
        "n_out": layer.out_features,
        "kind": method,
        "decoder_act": output_act,
        "epochs": epochs,
        "lr": lr,
    }
    return Stage(task, config, layer, record)


def _train_stage(
    stage: Stage,
    inputs: torch.Tensor,
    stage_dir: Path | None,
    *,
    resume: bool,
    quiet: bool,
    callbacks: Sequence[Callback],
) -> list[dict[str, Any]]:
    """Train one stage (fresh, resumed from its checkpoint, or loaded when it had finished);
    its history records."""
    hint = None if stage_dir is None else _resume_command(stage_dir.parent)
    if resume and stage_dir is not None and (stage_dir / "config.json").is_file():
        run = rundir.load_run(stage_dir)
        state = rundir.read_json(stage_dir / "state.json")
        if state.get("finished"):  # set after the stage's weights and metrics were written
            rundir.load_weights(stage.task.model, run.weights(), stage_dir / "weights.safetensors")
            return list(run.history)
        config = TrainConfig.from_options(**run.config["train"])
        trainer = Trainer(stage.task, config, callbacks=callbacks, quiet=quiet, out=stage_dir, resume_command=hint)
        return list(trainer.fit(inputs, resume=run).history)
    # new, or killed before its config.json (no run yet): the stage starts (again), overwriting leftovers
    trainer = Trainer(stage.task, stage.config, callbacks=callbacks, quiet=quiet, out=stage_dir, resume_command=hint)
    return list(trainer.fit(inputs).history)


def _curve_record(entry: dict[str, Any]) -> dict[str, Any]:
    """A stage's history entry as a pretrain.json curve point: ``train_`` dropped from the
    names (``reconstruction_error``, ``free_energy``, ``pseudo_log_likelihood``, ``loss``)."""
    return {key.removeprefix("train_"): value for key, value in entry.items()}


def _decoder(index: int, model: nn.Module) -> dict[str, torch.Tensor]:
    """Layer ``index``'s way back to its input: an RBM's W^T (V, H) and visible bias (V,),
    an autoencoder's decoder weight (V, H) and bias (V,); on the CPU."""
    if isinstance(model, Autoencoder):
        weight, bias = model.decoder[0].weight, model.decoder[0].bias
    else:
        weight, bias = model.weight.t(), model.visible_bias
    return {
        f"decoder.{index}.weight": weight.detach().cpu().contiguous(),
        f"decoder.{index}.bias": bias.detach().cpu().clone(),
    }


def per_layer(value: Any, n_layers: int, name: str) -> list:
    """One value per layer: a scalar is repeated, a sequence must have ``n_layers`` items."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise SpecError(
                f"{name} gives {len(value)} values for {n_layers} layers; give one per layer "
                f"(e.g. {','.join(['5'] * n_layers)}) or a single value for all"
            )
        return list(value)
    return [value] * n_layers


def _load(data: Any, seed: int) -> Any:
    """A Dataset, a registered name (loaded with ``seed``) or unlabelled inputs as a tensor."""
    if isinstance(data, str):
        from capas.data import load

        return load(data, seed=seed)
    if isinstance(data, torch.Tensor):
        return data
    if not hasattr(data, "x_train"):
        raise DataError(
            f"pre-training needs a dataset name, a capas Dataset or an input tensor (N, ...), got {type(data).__name__}"
        )
    return data


def _hidden_layers(network: nn.Module, method: str) -> list[nn.Module]:
    """The Dense layers below the output layer; refuses what greedy stacking cannot pre-train."""
    dense = dense_layers(network)
    if len(dense) != len(network.layers) or len(dense) < 2:
        raise SpecError(
            "greedy pre-training needs an MLP of Dense layers with at least one hidden layer, "
            "e.g. 64-100-100-10; convolutional or other layers cannot be stacked this way"
        )
    hidden = dense[:-1]
    if method == "rbm" and any(layer.activation.name != "sigmoid" for layer in hidden):
        raise SpecError(
            "RBM pre-training gives sigmoid hidden units: build the network with act='sigmoid' "
            "(--act sigmoid) or use an autoencoder method (ae, dae, sparse-ae)"
        )
    return hidden


def _unlabelled_inputs(dataset: Any, extra: Any, seed: int, width: int) -> torch.Tensor:
    """Training inputs (+ extra unlabelled inputs) flattened to (N, width)."""
    parts = [dataset if isinstance(dataset, torch.Tensor) else dataset.x_train]
    if isinstance(extra, str):
        other = _load(extra, seed)
        parts += [other.x_train, other.x_val]
    elif extra is not None:
        parts.append(torch.as_tensor(extra))
    flat = []
    for part in parts:
        part = part.reshape(part.shape[0], -1).float()  # (N_i, width)
        if part.shape[1] != width:
            raise DataError(
                f"unlabelled inputs have {part.shape[1]} features per sample but the network's "
                f"input layer takes {width}; use data of the same shape as the training inputs"
            )
        flat.append(part)
    return torch.cat(flat)


def _in_unit_interval(x: torch.Tensor) -> bool:
    return bool(x.min() >= 0 and x.max() <= 1)


def _describe(extra: Any) -> str | None:
    """pretrain.json's record of ``unlabelled_extra``: a dataset name, or a tensor's shape."""
    if extra is None or isinstance(extra, str):
        return extra
    return f"tensor of shape {list(torch.as_tensor(extra).shape)}"


def _is_dataset_name(described: str) -> bool:
    return not described.startswith("tensor of shape")


def write_pretrained(
    out: str | Path, network: nn.Module, settings: dict, decoders: dict[str, torch.Tensor], examples: torch.Tensor
) -> Path:
    """Write DIR/model.json, weights.safetensors, pretrain.json, pretrain.safetensors (each
    atomically; pretrain.json, saying ``"finished": true``, last)."""
    run_dir = Path(out)
    rundir.save_model(run_dir, network)
    rundir.save_tensors(run_dir / "pretrain.safetensors", {**decoders, "examples": examples})  # examples (n, width)
    rundir.write_json(run_dir / "pretrain.json", settings)
    return run_dir


def fine_tune(run_dir: str | Path, data: Any, *, frozen: Iterable[int | str] = (), **fit_options: Any):
    """Load a pre-trained run and train it with ``capas.fit``, keeping the ``frozen`` layers
    (indices or names) as they are (``frozen_layers``: recorded, so a resumed run keeps them)."""
    from capas.api.fit import fit

    return fit(rundir.load_model(Path(run_dir)), data, frozen_layers=list(frozen), **fit_options)
