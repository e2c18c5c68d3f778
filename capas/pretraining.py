"""Greedy layer-wise unsupervised pre-training of an MLP's hidden layers (RBMs or autoencoders).

Each hidden ``Dense`` layer of the network built from SPEC is trained, bottom-up, as the
hidden layer of an RBM (``method="rbm"``: a DBN) or of a one-layer autoencoder (``"ae"``,
``"dae"`` denoising, ``"sparse-ae"``) whose input is the previous pre-trained layer's
output for the training data (plus optional unlabelled extra inputs). The output layer
keeps its fresh initialisation; backpropagation then fine-tunes everything.

A run directory holds ``model.json`` (``Network.config()``), ``weights.safetensors`` (the
whole network), ``pretrain.json`` (settings and per-layer curves) and
``pretrain.safetensors`` (each layer's decoder -- for RBMs W^T and the visible bias -- plus
a few example inputs, so reconstructions and samples can be drawn later), so that
``capas train --init-from DIR`` fine-tunes it.

``capas.pretrain``, ``capas.freeze``, ``capas.unfreeze`` and ``capas.fine_tune`` are these
functions, re-exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from capas.errors import DataError, RunDirError, SpecError
from capas.models.autoencoder import Autoencoder
from capas.models.dbn import DBN, dense_layers, per_layer
from capas.models.freezing import freeze, unfreeze
from capas.train.rundir import load_model, save_model, save_tensors, write_json

METHODS = ("rbm", "ae", "dae", "sparse-ae")
DEFAULT_LR = {"rbm": 0.1, "ae": 0.003, "dae": 0.003, "sparse-ae": 0.003}
GAUSSIAN_RBM_LR = 0.01
N_EXAMPLES = 16


@dataclass
class PretrainResult:
    """The pre-trained network, one dict per hidden layer (settings + ``curve``), the number
    of unlabelled samples it saw, the run dir."""

    network: nn.Module
    layers: list[dict] = field(default_factory=list)
    n_samples: int = 0
    run_dir: Path | None = None


def pretrain(data: Any, model: str, *, method: str = "rbm", epochs: int = 10,
             layer_epochs: Sequence[int] | None = None, lr: float | None = None,
             layer_lr: Sequence[float] | None = None, batch_size: int = 32, k: int = 1,
             persistent: bool = False, momentum: float = 0.5, act: str = "sigmoid", loss: str | None = None,
             noise: float = 0.3, sparsity_target: float = 0.05, sparsity_weight: float = 0.1,
             unlabelled_extra: Any = None, seed: int = 0, out: str | Path | None = None) -> PretrainResult:
    """Build ``model`` (capas notation, e.g. "64-100-100-10") and pre-train its hidden layers.

    ``data`` is a ``Dataset`` or a registered name; the unlabelled inputs are its training
    inputs plus ``unlabelled_extra`` (a dataset name -- its train and validation inputs,
    never its test set -- or a tensor (M, *input_shape)). ``layer_epochs``/``layer_lr``
    give one value per hidden layer (default lr: 0.1 for RBMs -- 0.01 for a first layer
    with Gaussian visible units, chosen when the inputs are not in [0, 1] -- and 0.003 for
    autoencoders). ``loss`` (default: mse for regression data, else cross_entropy) is the
    network's, for fine-tuning. RBM layers use CD-k (``k``, ``persistent``, ``momentum``); autoencoders use Adam, masking noise ``noise`` ("dae") or a KL sparsity
    penalty (``sparsity_target``, ``sparsity_weight``; "sparse-ae").
    """
    from capas.models import build

    if method not in METHODS:
        raise SpecError(f"unknown pre-training method {method!r}; use one of {', '.join(METHODS)}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise RunDirError(f"the output path {out} is a file; give a directory to write the pre-trained run into")
    dataset = _load(data, seed)
    if loss is None:  # the loss fine-tuning will use, recorded in model.json
        loss = "mse" if getattr(dataset, "task", "classification") == "regression" else "cross_entropy"
    network = build(model, act=act, loss=loss, seed=seed)
    hidden = _hidden_layers(network, method)
    x = _unlabelled_inputs(dataset, unlabelled_extra, seed, hidden[0].in_features)
    n = len(hidden)
    epochs_per_layer = per_layer(list(layer_epochs) if layer_epochs else epochs, n, "layer epochs")
    lr_per_layer = per_layer(list(layer_lr) if layer_lr else (lr or DEFAULT_LR[method]), n, "layer lr")
    if method == "rbm" and lr is None and not layer_lr and not _in_unit_interval(x):
        lr_per_layer[0] = GAUSSIAN_RBM_LR  # real-valued inputs: Gaussian visible units diverge at 0.1
    if min(epochs_per_layer) < 1 or min(lr_per_layer) <= 0 or batch_size < 1:
        raise SpecError(f"pre-training needs epochs >= 1, lr > 0 and batch_size >= 1 for every layer, got epochs "
                        f"{epochs_per_layer}, lr {lr_per_layer}, batch_size {batch_size}")
    if method == "rbm":
        records, decoders = _pretrain_rbm(network, hidden, x, epochs_per_layer, lr_per_layer, seed,
                                          batch_size=batch_size, k=k, persistent=persistent, momentum=momentum)
    else:
        records, decoders = _pretrain_autoencoders(hidden, x, epochs_per_layer, lr_per_layer, seed, method,
                                                   batch_size=batch_size, noise=noise,
                                                   sparsity_target=sparsity_target, sparsity_weight=sparsity_weight)
    for record, name in zip(records, network.layer_names()):
        record["name"] = name
    result = PretrainResult(network, records, x.shape[0])
    if out is not None:
        settings = {"method": method, "spec": model, "act": act, "loss": loss, "data": dataset.name,
                    "data_options": dataset.options, "seed": seed, "n_samples": x.shape[0],
                    "unlabelled_extra": _describe(unlabelled_extra), "batch_size": batch_size,
                    "input_shape": list(dataset.input_shape), "layers": records,
                    **({"k": k, "persistent": persistent, "momentum": momentum} if method == "rbm" else
                       {"noise": noise, "sparsity_target": sparsity_target, "sparsity_weight": sparsity_weight})}
        result.run_dir = write_pretrained(out, network, settings, decoders, x[:N_EXAMPLES])
    return result


def _pretrain_rbm(network: nn.Module, hidden: list[nn.Module], x: torch.Tensor, epochs: list[int],
                  lrs: list[float], seed: int, **cd_options: Any) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Train the hidden layers as a DBN and copy its weights in; one record per layer."""
    visible = "bernoulli" if _in_unit_interval(x) else "gaussian"
    dbn = DBN([hidden[0].in_features, *(layer.out_features for layer in hidden)], visible)
    curves = dbn.fit(x, epochs=epochs, lr=lrs, seed=seed, **cd_options)
    dbn.copy_into(network)
    records, decoders = [], {}
    for i, (rbm, curve) in enumerate(zip(dbn.rbms, curves)):
        records.append({"layer": i, "n_in": rbm.n_visible, "n_out": rbm.n_hidden, "kind": f"rbm-{rbm.visible}",
                        "decoder_act": "sigmoid" if rbm.visible == "bernoulli" else "linear",
                        "epochs": epochs[i], "lr": lrs[i], "curve": curve})
        decoders[f"decoder.{i}.weight"] = rbm.weight.t().contiguous()  # (V, H)
        decoders[f"decoder.{i}.bias"] = rbm.visible_bias.detach().clone()  # (V,)
    return records, decoders


def _pretrain_autoencoders(hidden: list[nn.Module], x: torch.Tensor, epochs: list[int], lrs: list[float],
                           seed: int, method: str, *, batch_size: int, noise: float, sparsity_target: float,
                           sparsity_weight: float) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Train each hidden Dense layer in place as the encoder of a one-layer autoencoder."""
    records, decoders, inputs = [], {}, x
    for i, layer in enumerate(hidden):
        output_act = "sigmoid" if _in_unit_interval(inputs) else "linear"
        options: dict[str, Any] = {"output_act": output_act}
        if method == "dae":
            options.update(corruption="mask", noise=noise)
        if method == "sparse-ae":
            sigmoid_code = layer.activation.name == "sigmoid"
            options.update(sparsity="kl" if sigmoid_code else "l1", sparsity_target=sparsity_target,
                           sparsity_weight=sparsity_weight)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + i)
            autoencoder = Autoencoder(layer, **options)
        curve = autoencoder.fit(inputs, epochs=epochs[i], batch_size=batch_size, lr=lrs[i], seed=seed + i)
        decoder = autoencoder.decoder[0]
        records.append({"layer": i, "n_in": layer.in_features, "n_out": layer.out_features, "kind": method,
                        "decoder_act": output_act, "epochs": epochs[i], "lr": lrs[i], "curve": curve})
        decoders[f"decoder.{i}.weight"] = decoder.weight.detach().clone()  # (V, H)
        decoders[f"decoder.{i}.bias"] = decoder.bias.detach().clone()  # (V,)
        with torch.no_grad():
            inputs = layer(inputs)  # (N, H): the next layer's data
    return records, decoders


def _load(data: Any, seed: int):
    if isinstance(data, str):
        from capas.data import load

        return load(data, seed=seed)
    if not hasattr(data, "x_train"):
        raise DataError(f"pre-training needs a dataset name or a capas Dataset, got {type(data).__name__}")
    return data


def _hidden_layers(network: nn.Module, method: str) -> list[nn.Module]:
    """The Dense layers below the output layer; refuses what greedy stacking cannot pre-train."""
    dense = dense_layers(network)
    if len(dense) != len(network.layers) or len(dense) < 2:
        raise SpecError("greedy pre-training needs an MLP of Dense layers with at least one hidden layer, "
                        "e.g. 64-100-100-10; convolutional or other layers cannot be stacked this way")
    hidden = dense[:-1]
    if method == "rbm" and any(layer.activation.name != "sigmoid" for layer in hidden):
        raise SpecError("RBM pre-training gives sigmoid hidden units: build the network with act='sigmoid' "
                        "(--act sigmoid) or use an autoencoder method (ae, dae, sparse-ae)")
    return hidden


def _unlabelled_inputs(dataset: Any, extra: Any, seed: int, width: int) -> torch.Tensor:
    """Training inputs (+ extra unlabelled inputs) flattened to (N, width)."""
    parts = [dataset.x_train]
    if isinstance(extra, str):
        other = _load(extra, seed)
        parts += [other.x_train, other.x_val]
    elif extra is not None:
        parts.append(torch.as_tensor(extra))
    flat = []
    for part in parts:
        part = part.reshape(part.shape[0], -1).float()  # (N_i, width)
        if part.shape[1] != width:
            raise DataError(f"unlabelled inputs have {part.shape[1]} features per sample but the network's "
                            f"input layer takes {width}; use data of the same shape as {dataset.name}")
        flat.append(part)
    return torch.cat(flat)


def _in_unit_interval(x: torch.Tensor) -> bool:
    return bool(x.min() >= 0 and x.max() <= 1)


def _describe(extra: Any) -> str | None:
    if extra is None or isinstance(extra, str):
        return extra
    return f"tensor of shape {list(torch.as_tensor(extra).shape)}"


def write_pretrained(out: str | Path, network: nn.Module, settings: dict,
                     decoders: dict[str, torch.Tensor], examples: torch.Tensor) -> Path:
    """Write DIR/model.json, weights.safetensors, pretrain.json, pretrain.safetensors (atomically)."""
    run_dir = Path(out)
    save_model(run_dir, network)
    write_json(run_dir / "pretrain.json", settings)
    save_tensors(run_dir / "pretrain.safetensors", {**decoders, "examples": examples})  # examples (n, width)
    return run_dir


def fine_tune(run_dir: str | Path, data: Any, *, frozen: Iterable[int | str] = (), **fit_options: Any):
    """Load a pre-trained run and train it with ``capas.fit``, keeping the ``frozen`` layers
    (indices or names) as they are (``frozen_layers``: recorded, so a resumed run keeps them)."""
    from capas.train import fit

    return fit(load_model(Path(run_dir)), data, frozen_layers=list(frozen), **fit_options)

