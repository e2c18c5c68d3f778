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

Writers hold :func:`lock` (``DIR/.lock``) for a whole fit, so a second process writing the
same directory is refused instead of mixing two runs; :func:`new_run_dir` gives default
run names that never collide. A failed write (full disk, I/O error) is an ``OSError``
naming the file, never a raw ``SafetensorError``, and leaves no temporary file behind.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from capas import defaults
from capas.errors import CapasError, CapasWarning, RunDirError, SpecError
from capas.models.registry import config_of, from_config
from capas.objectives import Loss
from capas.train.history import History

FORMAT = "capas-run"
VERSION = 1
REQUIRED = ("config.json", "model.json", "weights.safetensors")


#: the lock file of a run directory (see :func:`lock`)
LOCK_FILE = ".lock"


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then ``os.replace`` it onto ``path``.

    The temporary file is created like a plain ``open()`` would (mode 0666 minus the umask,
    so a run's files are as readable as its directories; ``tempfile.mkstemp`` would make them
    0600), exclusively, under a random name; a writer that recreates it (safetensors makes
    its files 0600) gets that mode back. It is removed again if anything fails (a killed
    process leaves it; the next checkpoint's :func:`remove_stale_checkpoints` deletes it). An
    ``OSError`` is re-raised naming ``path`` rather than the temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            mode = os.fstat(fd).st_mode & 0o777
            os.close(fd)
            break
        except FileExistsError:
            continue
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        write(str(tmp))
        if os.stat(tmp).st_mode & 0o777 != mode:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


def os_error_reason(err: OSError) -> str:
    """``err`` in words ("no space left on device"), without the file name."""
    text = os.strerror(err.errno) if err.errno else str(err)
    return text[:1].lower() + text[1:]


def is_disk_full(err: OSError) -> bool:
    """Whether ``err`` says the disk (or the user's quota, or the file size limit) is full."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


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
    _atomic_write(Path(path), lambda tmp: _save_file(cpu, tmp, metadata))


def _save_file(tensors: dict[str, Tensor], tmp: str, metadata: dict[str, str] | None) -> None:
    """safetensors' ``save_file``, its I/O failures (a ``SafetensorError`` that says "os error
    28" on a full disk) turned into the ``OSError`` they are."""
    try:
        save_file(tensors, tmp, metadata=metadata)
    except SafetensorError as err:
        code = re.search(r"os error (\d+)", str(err))
        if code is None:
            raise
        number = int(code.group(1))
        raise OSError(number, os.strerror(number), tmp) from None


#: nesting a run's JSON may have (capas writes at most ~6 levels): deeper input would end
#: in a RecursionError in the parser or in any code that walks it
MAX_JSON_DEPTH = 32


def read_json(path: Path) -> Any:
    """Parse a JSON file of a run, or raise RunDirError naming it (also for JSON nested
    deeper than :data:`MAX_JSON_DEPTH`)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; is {Path(path).parent} a complete capas run directory?") from None
    except IsADirectoryError:
        raise RunDirError(f"{path} is a directory, not a JSON file; the run directory is damaged") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path} is not valid JSON ({err}); the run directory is damaged") from None
    except RecursionError:  # nested deeper than the parser's recursion limit
        data, too_deep = None, True
    else:
        too_deep = _json_depth(data) > MAX_JSON_DEPTH
    if too_deep:
        raise RunDirError(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep; the run directory is damaged")
    return data


def _json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return deepest


def _kind(value: Any) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def expect(value: Any, types: type | tuple[type, ...], path: Path, key: str, what: str) -> Any:
    """``value`` when it is of ``types`` (a bool is not a number here), else a RunDirError
    naming the file and the key."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        raise RunDirError(f"{path}: {key} must be {what}, got {_kind(value)}; the run directory is damaged")
    return value


def read_history(path: Path) -> History:
    """``history.json``: a list of per-epoch objects, each with an integer ``epoch`` and
    numbers (or null) as values (RunDirError naming the file, entry and key otherwise)."""
    records = expect(read_json(path), list, path, "the file", "a list of per-epoch objects")
    for index, record in enumerate(records):
        expect(record, dict, path, f"entry {index}", "an object")
        expect(record.get("epoch"), int, path, f"entry {index}: epoch", "an integer")
        for key, value in record.items():
            expect(value, (int, float, type(None)), path, f"entry {index}: {key}", "a number or null")
    return History.from_json(records)


def check_train_config(train: Any, path: Path) -> None:
    """``config.json``'s ``train`` table must be valid TrainConfig options (RunDirError naming the key)."""
    from capas.train.config import TrainConfig

    expect(train, dict, path, "train", "an object of training options")
    try:
        TrainConfig.from_options(**train)
    except (CapasError, TypeError, ValueError) as err:
        raise RunDirError(f"{path}: train: {str(err).splitlines()[0]}; the run directory is damaged") from None


def check_run_config(config: dict[str, Any], path: Path) -> None:
    """The tables of ``config.json`` other code reads, type-checked: ``train``, ``data``
    (``name``, ``options``, ``preprocessing``, ``num_classes``, ``task``) and ``task``."""
    check_train_config(config.get("train"), path)
    data = expect(config.get("data", {}), dict, path, "data", "an object")
    expect(data.get("name"), (str, type(None)), path, "data.name", "a dataset name or null")
    for key in ("options", "preprocessing"):
        expect(data.get(key, {}), dict, path, f"data.{key}", "an object")
    expect(data.get("task"), (str, type(None)), path, "data.task", "a string")
    classes = expect(data.get("num_classes"), (int, type(None)), path, "data.num_classes", "an integer or null")
    if classes is not None and classes < 1:
        raise RunDirError(f"{path}: data.num_classes must be at least 1, got {classes}; the run directory is damaged")
    task = expect(config.get("task", {}), dict, path, "task", "an object")
    expect(task.get("options"), (dict, type(None)), path, "task.options", "an object")
    expect(task.get("kind"), (str, type(None)), path, "task.kind", "a string")


#: the numeric hyperparameters a torch optimizer's param group may hold
GROUP_NUMBERS = ("lr", "momentum", "dampening", "weight_decay", "eps", "alpha", "rho", "lr_decay", "lambd", "t0")


def _check_param_group(group: Any, path: Path, key: str) -> None:
    """An optimizer param group: its parameter indices and hyperparameters must be numbers."""
    expect(group, dict, path, key, "an object")
    for index in expect(group.get("params"), list, path, f"{key}.params", "a list of parameter indices"):
        expect(index, int, path, f"{key}.params", "a list of parameter indices")
    for name in GROUP_NUMBERS:
        if group.get(name) is not None:
            expect(group[name], (int, float), path, f"{key}.{name}", "a number")
    if "betas" in group:
        betas = expect(group["betas"], list, path, f"{key}.betas", "a list of two numbers")
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas):
            raise RunDirError(f"{path}: {key}.betas must be a list of two numbers; the run directory is damaged")


def check_state(state: dict[str, Any], path: Path) -> None:
    """The fields of ``state.json`` a resume reads, type-checked (RunDirError naming the key)."""
    epoch = expect(state.get("epoch"), int, path, "epoch", "a non-negative integer")
    if epoch < 0:
        raise RunDirError(f"{path}: epoch must be a non-negative integer, got {epoch}; the run directory is damaged")
    for key in ("optimizers", "schedules", "callbacks", "task"):
        table = expect(state.get(key, {}), dict, path, key, "an object")
        if key != "task":
            for name, entry in table.items():
                expect(entry, dict, path, f"{key}.{name}", "an object")
    for name, entry in state.get("optimizers", {}).items():
        groups = expect(entry.get("param_groups"), list, path, f"optimizers.{name}.param_groups", "a list")
        for index, group in enumerate(groups):
            _check_param_group(group, path, f"optimizers.{name}.param_groups[{index}]")
        scalars = expect(entry.get("scalars", {}), dict, path, f"optimizers.{name}.scalars", "an object")
        for index, values in scalars.items():
            key = f"optimizers.{name}.scalars.{index}"
            if not index.isdigit():
                raise RunDirError(f"{path}: {key} must be keyed by a parameter index; the run directory is damaged")
            expect(values, dict, path, key, "an object")
    history = expect(state.get("history", []), list, path, "history", "a list of per-epoch objects")
    for index, record in enumerate(history):
        expect(record, dict, path, f"history[{index}]", "an object")
    expect(state.get("stop_reason"), (str, type(None)), path, "stop_reason", "a string or null")
    expect(state.get("finished", False), bool, path, "finished", "true or false")


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

    def loss(self, num_classes: int | None, name: str | None = None) -> Loss:
        """The loss the run trained with (``name``, else its config's, else its model's, else
        the task's default), bound to ``num_classes`` and the run's target encoding: what
        evaluation and plots decide classes by (a squared-error net's codes are not classes)."""
        train = self.config.get("train", {}) if isinstance(self.config.get("train"), dict) else {}
        built_for = self.model_config.get("loss") or (self.model_config.get("options") or {}).get("loss")
        task = "classification" if num_classes else "regression"
        chosen = name or train.get("loss") or built_for or defaults.default_loss(task)
        return Loss(chosen, num_classes=num_classes, target_encoding=train.get("target_encoding", "onehot"))

    def checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Tensor]]:
        """(model weights, state.json, the other state tensors) of the last checkpoint.

        ``state.json`` is the commit point of a checkpoint: it names the tensor file written
        before it, so the two always belong to the same epoch (checked)."""
        state = read_json(self.path / "state.json")
        if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("tensors"), str):
            raise RunDirError(f"{self.path / 'state.json'} is not a capas checkpoint (format marker missing)")
        check_state(state, self.path / "state.json")
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
    temporary files a killed write left behind: ours (``.<name>.<random>.tmp``) and those of
    safetensors, which writes through its own ``.tmpXXXXXX`` (safe: the caller holds
    :func:`lock`, so no other process is writing one)."""
    directory = Path(directory)
    for path in directory.glob("state-*.safetensors"):
        if path.name != keep:
            path.unlink(missing_ok=True)
    for path in [*directory.glob(".*.tmp"), *directory.glob(".tmp*")]:
        if path.is_file():
            path.unlink(missing_ok=True)


@contextmanager
def lock(directory: Path | str) -> Iterator[Path]:
    """Hold ``DIRECTORY/.lock`` (created, with the directory, if needed) while writing it.

    A second process (or a second fit in this one) that tries to write the same directory
    while the lock is held gets a one-line RunDirError naming the holder's pid. The lock is
    an advisory ``flock`` (``msvcrt.locking`` of its first byte on Windows) on an open file,
    so the operating system releases it when the holder exits, even after ``kill -9``: a
    stale ``.lock`` file never blocks anyone. The file is removed on release (while still
    locked); a process that locked a file just unlinked that way sees that the path no
    longer names its file and tries again, so two holders never coexist."""
    directory = Path(directory)
    path = directory / LOCK_FILE
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise RunDirError(
                f"cannot write to {directory}: {os_error_reason(err)}; choose another directory"
            ) from None
        if not _try_lock(fd):
            os.lseek(fd, 1, os.SEEK_SET)
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise RunDirError(
                f"{directory} is being written by another capas process ({who}); wait for it to finish, "
                "or write to another directory"
            )
        if _names(path, fd):
            break
        os.close(fd)  # locked a file its holder had just removed: lock the current one
    try:
        os.ftruncate(fd, 1)  # byte 0 is the one msvcrt locks; the holder's pid follows it
        os.lseek(fd, 1, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield directory
    finally:
        if sys.platform != "win32":
            path.unlink(missing_ok=True)  # still locked: nobody can take it in between
        os.close(fd)  # releases the lock
        if sys.platform == "win32":  # an open file cannot be removed there
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # another process opened it meanwhile; it stays for them


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd``."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False


def _try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on ``fd``; False if another holder has it."""
    os.lseek(fd, 0, os.SEEK_SET)
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def new_run_dir(parent: Path | str, name: str) -> Path:
    """Create and return ``parent/name``, or ``name-2``, ``name-3``... when taken.

    ``os.mkdir`` is atomic, so two runs started in the same second (``runs/digits-<second>``)
    never get the same directory."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create {parent}: {os_error_reason(err)}; give --out DIR") from None
    suffix = 1
    while True:
        path = parent / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            suffix += 1
        except OSError as err:
            raise RunDirError(f"cannot create {path}: {os_error_reason(err)}; give --out DIR") from None


def remove_if_empty(directory: Path | str) -> None:
    """Remove ``directory`` if it is empty (a run directory made for a run that failed to start)."""
    try:
        Path(directory).rmdir()
    except OSError:
        pass  # not empty (the run wrote something), or already gone


def _checked_history(path: Path, history: History) -> History:
    """``history`` unless the checkpoint (``state.json``, the commit record, which holds the
    history too) has more epochs: an emptied or truncated ``history.json`` is then replaced
    by the checkpoint's (with a warning unless it is the checkpoint's beginning, as a kill
    between the two writes leaves it), rather than read as a shorter run."""
    try:
        state = read_json(path / "state.json") if (path / "state.json").is_file() else None
    except RunDirError:
        return history  # a damaged checkpoint is reported by whatever needs it (a resume)
    saved = state.get("history") if isinstance(state, dict) else None
    if not isinstance(saved, list) or len(saved) <= len(history) or not all(isinstance(r, dict) for r in saved):
        return history
    checkpointed = History.from_json(saved)
    if history and list(checkpointed[: len(history)]) == list(history):
        return checkpointed  # a run stopped between committing state.json and refreshing history.json
    warnings.warn(
        f"{path / 'history.json'} holds {len(history)} epoch(s) but the checkpoint in state.json holds "
        f"{len(saved)}; using the checkpoint's history (history.json was emptied or truncated)",
        CapasWarning,
        stacklevel=3,
    )
    return checkpointed


def load_run(path: Path | str) -> Run:
    """Read a run directory, refusing anything that is not a capas run with RunDirError."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"no run directory {path}; pass the directory a 'capas train' run printed")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        if (path / "pretrain.json").is_file():  # a greedy pre-training: its network is trained by fine-tuning
            raise RunDirError(
                f"{path} is a pre-training, not a training run; fine-tune its network with "
                f"capas train --init-from {path} (or continue it with capas pretrain --resume {path})"
            )
        raise RunDirError(f"{path} is not a capas run: missing {', '.join(missing)}")
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RunDirError(f'{path / "config.json"} is not a capas run config (expected "format": "{FORMAT}")')
    if config.get("version") != VERSION:
        raise RunDirError(
            f"{path} was written by run format version {config.get('version')}; this capas reads {VERSION}"
        )
    check_run_config(config, path / "config.json")
    model_cfg = expect(read_json(path / "model.json"), dict, path / "model.json", "the file", "an object")
    history_path = path / "history.json"
    history = read_history(history_path) if history_path.exists() else History()
    history = _checked_history(path, history)
    metrics_path = path / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.exists() else None
    expect(metrics, (dict, type(None)), metrics_path, "the file", "an object")
    return Run(path=path, config=config, model_config=model_cfg, history=history, metrics=metrics)


def write_history(directory: Path, history: History) -> None:
    """``history.json`` and ``history.csv``."""
    write_json(Path(directory) / "history.json", history.to_json())
    write_text(Path(directory) / "history.csv", history.to_csv())
