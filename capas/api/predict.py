"""``capas.predict``: predictions of a trained run (or model) for raw samples.

Raw means as the dataset stores them (digits' 0..16 pixels): a run applies the scaling and
standardisation its training data had (``config.json``'s ``data.preprocessing``), so the
samples a user has at hand can be given as they are.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from capas.data import Standardizer
from capas.errors import CapasError, DataError
from capas.train.rundir import load_run

SUFFIXES = (".npy", ".csv")


def predict(
    run_or_model: str | Path | nn.Module,
    inputs: str | Path | np.ndarray | Tensor,
    *,
    preprocessing: dict[str, Any] | None = None,
) -> Tensor:
    """Class labels (N,) or outputs (N, K) for ``inputs``.

    Args:
        run_or_model: a run directory or a model with ``input_shape`` and ``predict``.
        inputs: a ``.npy`` / ``.csv`` file, or an array/tensor (N, *input_shape) or (N, features).
        preprocessing: a run's ``data.preprocessing`` record; default: the run's own
            (a bare model: none).
    """
    if isinstance(run_or_model, (str, Path)):
        run = load_run(run_or_model)
        model = run.build_model()
        if preprocessing is None:
            preprocessing = run.config.get("data", {}).get("preprocessing", {})
    else:
        model = run_or_model
    array = read_inputs(Path(inputs)) if isinstance(inputs, (str, Path)) else inputs
    x = prepare(array, tuple(model.input_shape), preprocessing or {})
    return model.predict(x)


def read_inputs(path: Path) -> np.ndarray:
    """The numeric array in a ``.npy`` file or a comma-separated ``.csv`` (one sample a row)."""
    if not path.is_file():
        raise DataError(f"no input file {path}; give a .npy or .csv file of samples")
    if path.suffix not in SUFFIXES:
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


def prepare(array: np.ndarray | Tensor, input_shape: tuple[int, ...], preprocessing: dict[str, Any]) -> Tensor:
    """(N, *input_shape) float32 tensor, with the run's scaling and standardisation applied;
    samples of another shape with as many values (flat rows (N, prod(input_shape)), digits'
    (N, 1, 8, 8) images for a 64-input MLP) are reshaped to the input shape."""
    x = torch.as_tensor(array, dtype=torch.float32)
    width = math.prod(input_shape)
    fits = x.ndim >= 2 and tuple(x.shape[1:]) == tuple(input_shape)
    if not fits and x.ndim >= 2 and math.prod(x.shape[1:]) == width:
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


def check_output_path(path: Path) -> None:
    """A predictions file must be ``.npy`` or ``.csv`` in an existing directory (checked
    before any work, so a long prediction never ends in an unwritable path)."""
    if path.suffix not in SUFFIXES or not path.parent.is_dir():
        raise CapasError(f"--out must be a .npy or .csv file in an existing directory, got {path}")


def write_predictions(predictions: Tensor, path: Path) -> None:
    """Save predictions (N,) or (N, K) as ``.npy`` (as they are) or ``.csv`` (one row each)."""
    check_output_path(path)
    values = predictions.cpu().numpy()
    if path.suffix == ".npy":
        np.save(path, values)
    else:
        np.savetxt(path, values.reshape(len(values), -1), delimiter=",", fmt="%g")
