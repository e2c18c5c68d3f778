"""``capas.predict``: predictions of a trained run (or model) for raw samples.

Raw means as the dataset stores them (digits' 0..16 pixels): a run applies the scaling and
standardisation its training data had (``config.json``'s ``data.preprocessing``), so the
samples a user has at hand can be given as they are.

Inputs are checked before the model sees them, because a network answers anything: a NaN
row comes out as class 0, a complex array cast to real loses half of each value, and a
stored divisor of 0 turns every sample into NaN (class 0 again). Each of these is refused
with a one-line :class:`DataError` instead of a silently wrong prediction.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from capas.api.outputs import check_output_file
from capas.data import Standardizer
from capas.data.fitted import read_new, reads_files
from capas.data.formats import check_npy_size
from capas.errors import DataError
from capas.train.rundir import load_run

SUFFIXES = (".npy", ".csv")
#: how many offending row indices an error message lists
SHOWN_ROWS = 5


def predict(
    run_or_model: str | Path | nn.Module,
    inputs: str | Path | np.ndarray | Tensor,
    *,
    preprocessing: dict[str, Any] | None = None,
) -> Tensor:
    """Class labels (N,) or outputs (N, K) for ``inputs``.

    Args:
        run_or_model: a run directory or a model with ``input_shape`` and ``predict``.
        inputs: a ``.npy`` / ``.csv`` file, or an array/tensor (N, *input_shape), (N, features)
            or one sample (``input_shape`` or its flat size): one prediction.
        preprocessing: a run's ``data.preprocessing`` record; default: the run's own
            (a bare model: none).
    """
    source = "the preprocessing"
    if isinstance(run_or_model, (str, Path)):
        run = load_run(run_or_model)
        if preprocessing is None:
            preprocessing = run_preprocessing(run.config, run.path / "config.json")
            source = f"{run.path / 'config.json'} data.preprocessing"
        model = run.build_model()
    else:
        model = run_or_model
    check_predicts(model, run_or_model if isinstance(run_or_model, (str, Path)) else "the model")
    if isinstance(inputs, (str, Path)) and reads_files(preprocessing or {}):  # a run trained on a file
        array = read_new(preprocessing, inputs).x  # encoded as the training file was
    else:
        array = read_inputs(Path(inputs)) if isinstance(inputs, (str, Path)) else inputs
    x = prepare(array, tuple(model.input_shape), preprocessing or {}, source=source)
    return model.predict(x)


def check_predicts(model: nn.Module, where: str | Path) -> None:
    """DataError unless ``model`` maps samples to outputs (a Network: classifier or
    regressor), naming the command that serves the model it is instead."""
    from capas.models import Network
    from capas.models.registry import kind_of, noun

    if isinstance(model, Network) or (hasattr(model, "predict") and hasattr(model, "input_shape")):
        return
    kind = kind_of(model)
    hints = {
        "seq2seq": f"give it text with capas translate {where} TEXT",
        "gan": f"draw samples from it with capas sample {where} --n 64 --out grid.png",
    }
    hint = hints.get(kind, f"see what it learned with capas plot {where}, or fine-tune it with capas train --init-from")
    raise DataError(f"{where} holds {noun(model)}, not a classifier or regressor, so it predicts nothing; {hint}")


def run_preprocessing(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """``config["data"]["preprocessing"]`` (``{}`` when absent); DataError when it is not a table."""
    data = config.get("data", {})
    record = data.get("preprocessing", {}) if isinstance(data, dict) else data
    if not isinstance(record, dict):
        raise DataError(
            f"{path}: data.preprocessing must be an object, got {type(record).__name__}; the run is damaged"
        )
    return record


def prediction_record(predictions: Tensor, run_dir: str | Path | None) -> dict[str, Any]:
    """The JSON object ``capas predict --json`` prints: predictions as nested lists, their shape
    and the run they came from."""
    values = predictions.detach().cpu()
    return {
        "predictions": values.tolist(),
        "shape": list(values.shape),
        "run_dir": None if run_dir is None else str(run_dir),
    }


def read_inputs(path: Path) -> np.ndarray:
    """The numeric array in a ``.npy`` file or a comma-separated ``.csv`` (one sample a row;
    a first row that is not numbers is a header and skipped)."""
    if not path.is_file():
        raise DataError(f"no input file {path}; give a .npy or .csv file of samples")
    if path.suffix not in SUFFIXES:
        raise DataError(f"unsupported input file {path.name}; use .npy or .csv")
    try:
        if path.suffix == ".npy":
            check_npy_size(path)
            array = np.load(path, allow_pickle=False)
        else:
            array = _read_csv(path)
    except (ValueError, OSError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot read {path} ({reason}); it must be a numeric .npy or comma-separated .csv") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path} is not a single array; save the samples with numpy.save")
    check_numeric(array, str(path))
    return array


def _read_csv(path: Path) -> np.ndarray:
    """Rows of numbers; a header (a first row with a field that is not a number) is skipped."""
    with path.open(encoding="utf-8", errors="strict") as handle:
        first = handle.readline()
    fields = [field.strip() for field in first.split(",")]
    header = any(field and not _is_number(field) for field in fields)
    with warnings.catch_warnings():  # an empty file is reported as "no samples", not warned about
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, skiprows=int(header), encoding="utf-8")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_numeric(array: np.ndarray | Tensor, source: str) -> None:
    """Real numbers only: a complex array would lose its imaginary part silently, and text or
    objects are not samples."""
    dtype = array.dtype
    if isinstance(array, Tensor):
        if array.is_complex():
            raise DataError(f"{source} holds complex values ({dtype}); give the real samples (e.g. x.real)")
        return
    if dtype.kind == "c":
        raise DataError(f"{source} holds complex values ({dtype}); give the real samples (e.g. x.real)")
    if dtype.kind not in "biuf":
        raise DataError(f"{source} holds {dtype} values, not numbers; save the samples as a numeric array")


def prepare(
    array: np.ndarray | Tensor,
    input_shape: tuple[int, ...],
    preprocessing: dict[str, Any],
    *,
    source: str = "the preprocessing",
) -> Tensor:
    """(N, *input_shape) float32 tensor, with the run's scaling and standardisation applied.

    Samples of another shape with as many values (flat rows (N, prod(input_shape)), digits'
    (N, 8, 8) or (N, 1, 8, 8) images for a 64-input MLP) are reshaped to the input shape; one
    sample alone (``input_shape``, or any shape of prod(input_shape) values) becomes a batch
    of one. Empty input, NaN/inf values and complex numbers are refused (DataError), and so
    is a stored divisor that is 0 or not finite (``source`` names where it was read).
    """
    if not isinstance(array, (np.ndarray, Tensor)):
        try:
            array = np.asarray(array)
        except (ValueError, TypeError) as err:
            raise DataError(f"inputs must be an array of numbers ({err})") from None
    check_numeric(array, "the input")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below by row
        x = torch.as_tensor(np.asarray(array, dtype=np.float32) if isinstance(array, np.ndarray) else array)
    x = x.to(torch.float32)
    x = _batched(x, input_shape)
    bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten().tolist()
        shown = ", ".join(map(str, rows[:SHOWN_ROWS])) + (", ..." if len(rows) > SHOWN_ROWS else "")
        raise DataError(
            f"{len(rows)} input row(s) hold NaN or infinite values (or values beyond float32), rows {shown}; "
            "fix or drop them before predicting"
        )
    if not isinstance(preprocessing, dict):
        raise DataError(f"{source} must be an object, got {type(preprocessing).__name__}")
    if "scale" in preprocessing:
        x = x / _divide_by(preprocessing["scale"], source)
    if "standardize" in preprocessing:
        x = _standardize(x, preprocessing["standardize"], input_shape, source)
    return x


def _batched(x: Tensor, input_shape: tuple[int, ...]) -> Tensor:
    """``x`` as (N, *input_shape): a batch of samples of the right size, or one sample."""
    width = math.prod(input_shape)
    if x.ndim >= 1 and len(x) == 0:
        raise DataError(f"the input has no samples (shape {tuple(x.shape)}); give at least one row")
    if x.ndim >= 2 and tuple(x.shape[1:]) == tuple(input_shape):
        return x
    if x.ndim >= 2 and math.prod(x.shape[1:]) == width:
        return x.reshape(len(x), *input_shape)
    if x.ndim == 1 and width == 1:  # one value per sample for a one-input model
        return x.reshape(len(x), *input_shape)
    if x.ndim >= 1 and x.numel() == width:  # a single sample
        return x.reshape(1, *input_shape)
    shape = f"(N, {', '.join(map(str, input_shape))})" + ("" if len(input_shape) == 1 else f" or (N, {width})")
    raise DataError(f"input has shape {tuple(x.shape)} but the model expects {shape}, or one sample of {width} values")


def _divide_by(scale: Any, source: str) -> float:
    """The stored ``scale.divide_by``: a finite number other than 0, or DataError."""
    value = scale.get("divide_by") if isinstance(scale, dict) else None
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or number == 0:
        raise DataError(
            f"{source}.scale.divide_by is {value!r}; a divisor must be a finite number other than 0 "
            "(the run's config.json is damaged: retrain, or fix the value)"
        )
    return float(number)


def _standardize(x: Tensor, record: Any, input_shape: tuple[int, ...], source: str) -> Tensor:
    """``(x - mean) / std`` with the stored statistics, checked: a std of 0 or a NaN would turn
    every sample into NaN (predicted as class 0)."""
    if not isinstance(record, dict):
        raise DataError(f"{source}.standardize must be an object with mean and std, got {type(record).__name__}")
    try:
        standardizer = Standardizer.from_dict(record)
    except DataError as err:
        raise DataError(f"{source}.standardize: {err}") from None
    mean, std = standardizer.mean, standardizer.std
    width = math.prod(input_shape)
    if mean.numel() != width:
        raise DataError(
            f"{source}.standardize holds {mean.numel()} statistics for a model of {width} inputs; the run is damaged"
        )
    for name, values in (("mean", mean), ("std", std)):
        if not bool(torch.isfinite(values).all()):
            raise DataError(f"{source}.standardize.{name} holds NaN or infinite values; the run is damaged")
    zero = (std == 0).flatten().nonzero().flatten().tolist()
    if zero:
        shown = ", ".join(map(str, zero[:SHOWN_ROWS])) + (", ..." if len(zero) > SHOWN_ROWS else "")
        raise DataError(
            f"{source}.standardize.std is 0 for {len(zero)} feature(s) ({shown}); a divisor must not be 0 "
            "(the run's config.json is damaged: retrain, or set those std values to 1)"
        )
    standardizer.mean, standardizer.std = mean.reshape(input_shape), std.reshape(input_shape)
    return standardizer.transform(x)


def check_output_path(path: Path, inputs: tuple[str | Path, ...] = (), *, force: bool = False) -> None:
    """A predictions file must be ``.npy`` or ``.csv`` in an existing, writable directory, not
    one of ``inputs``, not inside a run directory, and new unless ``force`` (replacing one's
    own earlier predictions on purpose); checked before any work, so a long prediction never
    ends in an unwritable path or destroys a file."""
    check_output_file(path, suffixes=SUFFIXES, inputs=inputs, force=force)


def write_predictions(predictions: Tensor, path: Path, *, force: bool = False) -> None:
    """Save predictions (N,) or (N, K) as ``.npy`` (as they are) or ``.csv`` (one row each);
    an existing file is replaced only with ``force``."""
    check_output_path(path, force=force)
    values = predictions.cpu().numpy()
    if path.suffix == ".npy":
        np.save(path, values)
    else:
        np.savetxt(path, values.reshape(len(values), -1), delimiter=",", fmt="%g")
