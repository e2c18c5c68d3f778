"""The run directory: everything a run needs to be inspected, evaluated or resumed.

Layout (docs/ARCHITECTURE.md)::

    model.json          Network.config()           weights.safetensors   model.state_dict()
    state-<epoch>.safetensors   the checkpoint's tensors: model weights, optimizers, named
                        generators (uint8 states), task and callback state
    state.json          the checkpoint's commit record: epoch, the tensor file's name,
                        optimizer param groups, schedules, task and callback JSON, history
    history.json/.csv   one record per epoch       config.json   training config, data, command
    metrics.json        test metrics (written when the run finishes)

Every file is written to a temporary name in the same directory and moved into place
with ``os.replace`` (atomic). A checkpoint is committed by replacing ``state.json``, which
names its tensor file (written first): a run killed at any moment, even between two
files, resumes from one consistent checkpoint. Nothing is unpickled: tensors come from
safetensors, everything else from JSON.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from capas.errors import RunDirError, SpecError
from capas.models.registry import config_of, from_config
from capas.train.history import History

FORMAT = "capas-run"
VERSION = 1
REQUIRED = ("config.json", "model.json", "weights.safetensors")


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then ``os.replace`` it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _strict_json(value: Any) -> Any:
    """NaN and +-inf (not JSON) become None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented, strict JSON (NaN and inf written as null)."""
    text = json.dumps(_strict_json(data), indent=2, allow_nan=False) + "\n"
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_text(path: Path, text: str) -> None:
    """Atomically write ``text``."""
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write ``tensors`` (copied to contiguous CPU tensors) as safetensors."""
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    _atomic_write(Path(path), lambda tmp: save_file(cpu, tmp, metadata=metadata))


def read_json(path: Path) -> Any:
    """Parse a JSON file of a run, or raise RunDirError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; is {Path(path).parent} a complete capas run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); the run directory is damaged") from None


def read_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (no pickle), or RunDirError."""
    from safetensors import safe_open

    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; is {Path(path).parent} a complete capas run directory?") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise RunDirError(f"{path} is not a valid safetensors file ({err}); the run directory is damaged") from None
    return tensors, metadata


def model_config(model: nn.Module) -> dict[str, Any]:
    """The ``config()`` of a registered capas model (``capas.models.registry``), or a record
    naming any other module (not rebuildable from JSON)."""
    config = config_of(model)
    if config is not None:
        return config
    return {"type": "torch_module", "class": type(model).__qualname__, "rebuildable": False}


def save_model(directory: Path, model: nn.Module, epoch: int | None = None) -> None:
    """Write ``model.json`` and ``weights.safetensors`` into ``directory``."""
    directory = Path(directory)
    write_json(directory / "model.json", model_config(model))
    save_weights(directory, model, epoch)


def save_weights(directory: Path, model: nn.Module, epoch: int | None = None) -> None:
    """Write ``weights.safetensors`` (``model.state_dict()``), tagged with ``epoch``."""
    metadata = {"format": FORMAT} | ({} if epoch is None else {"epoch": str(epoch)})
    save_tensors(Path(directory) / "weights.safetensors", model.state_dict(), metadata)


def load_weights(model: nn.Module, weights: dict[str, Tensor], source: Path | str = "weights") -> None:
    """Copy ``weights`` into ``model``; a missing or extra key, or a wrong shape, is a RunDirError."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {extra[:5]}" if extra else "",
                f"wrong shape for {wrong[:5]}" if wrong else "",
            )
            if part
        )
        raise RunDirError(f"the weights in {source} do not fit this model ({detail}); was it built from the same spec?")
    model.load_state_dict(weights)


def load_model(directory: Path) -> nn.Module:
    """Rebuild the model of ``directory`` from ``model.json`` through the model registry
    (its ``"model"`` kind; a ``Network`` when absent) and load its weights."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RunDirError(f"no directory {directory}; give the path of a capas run or model directory")
    config = read_json(directory / "model.json")
    if not isinstance(config, dict) or config.get("rebuildable") is False:
        what = f"a plain {config['class']}" if isinstance(config, dict) and "class" in config else "no capas model"
        raise RunDirError(
            f"{directory / 'model.json'} describes {what}, not a capas model, so it cannot be rebuilt; "
            "load its weights.safetensors into the module yourself"
        )
    try:
        model = from_config(config)
    except (SpecError, KeyError, TypeError, ValueError) as err:
        raise RunDirError(f"{directory / 'model.json'} is not a valid capas model config ({err})") from None
    weights, _ = read_tensors(directory / "weights.safetensors")
    load_weights(model, weights, directory / "weights.safetensors")
    return model


@dataclass
class Run:
    """A capas run directory read back: configs, history, metrics and (lazily) tensors."""

    path: Path
    config: dict[str, Any]
    model_config: dict[str, Any]
    history: History
    metrics: dict[str, Any] | None

    def weights(self) -> dict[str, Tensor]:
        """``weights.safetensors`` as a state dict."""
        return read_tensors(self.path / "weights.safetensors")[0]

    def build_model(self) -> nn.Module:
        """The trained model (rebuilt from model.json through the model registry, weights loaded)."""
        return load_model(self.path)

    def checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Tensor]]:
        """(model weights, state.json, the other state tensors) of the last checkpoint.

        ``state.json`` is the commit point of a checkpoint: it names the tensor file written
        before it, so the two always belong to the same epoch (checked)."""
        state = read_json(self.path / "state.json")
        if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("tensors"), str):
            raise RunDirError(f"{self.path / 'state.json'} is not a capas checkpoint (format marker missing)")
        tensor_file = self.path / Path(state["tensors"]).name
        tensors, meta = read_tensors(tensor_file)
        if meta.get("epoch") != str(state.get("epoch")):
            raise RunDirError(
                f"{tensor_file} holds epoch {meta.get('epoch')} but state.json epoch "
                f"{state.get('epoch')}; the run directory is damaged"
            )
        weights = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
        rest = {k: v for k, v in tensors.items() if not k.startswith("model/")}
        return weights, state, rest


def remove_stale_checkpoints(directory: Path, keep: str) -> None:
    """Delete every checkpoint tensor file but ``keep`` (the one state.json names), and the
    temporary files a killed write left behind."""
    for path in Path(directory).glob("state-*.safetensors"):
        if path.name != keep:
            path.unlink(missing_ok=True)
    for path in Path(directory).glob(".*.tmp"):
        path.unlink(missing_ok=True)


def load_run(path: Path | str) -> Run:
    """Read a run directory, refusing anything that is not a capas run with RunDirError."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"no run directory {path}; pass the directory a 'capas train' run printed")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise RunDirError(f"{path} is not a capas run: missing {', '.join(missing)}")
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RunDirError(f'{path / "config.json"} is not a capas run config (expected "format": "{FORMAT}")')
    if config.get("version") != VERSION:
        raise RunDirError(
            f"{path} was written by run format version {config.get('version')}; this capas reads {VERSION}"
        )
    model_cfg = read_json(path / "model.json")
    history_path = path / "history.json"
    history = History.from_json(read_json(history_path)) if history_path.is_file() else History()
    metrics_path = path / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.is_file() else None
    return Run(path=path, config=config, model_config=model_cfg, history=history, metrics=metrics)


def write_history(directory: Path, history: History) -> None:
    """``history.json`` and ``history.csv``."""
    write_json(Path(directory) / "history.json", history.to_json())
    write_text(Path(directory) / "history.csv", history.to_csv())
