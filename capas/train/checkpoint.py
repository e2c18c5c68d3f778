"""Optimizer and scheduler state split into tensors (safetensors) and JSON (no pickle).

``optimizer.state_dict()`` is ``{"state": {index: {name: tensor | number | None}},
"param_groups": [...]}``: tensors (momentum buffers, Adam moments, step counts) go to
``state.safetensors`` as ``optimizer/<index>/<name>`` (a list of tensors, L-BFGS's history, as
``optimizer/<index>/<name>/<i>``), everything else to ``state.json``.
Scheduler state dicts hold only numbers, strings and lists, so they go to JSON whole.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from capas.errors import RunDirError


def _jsonable(value: Any, where: str) -> Any:
    """Tuples -> lists, finite floats kept; anything else non-JSON is an error (no pickle)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    raise RunDirError(f"cannot save {where} of type {type(value).__name__} without pickle")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _is_tensor_list(value: Any) -> bool:
    """A list holding tensors (and possibly None): stored tensor by tensor, not as JSON."""
    return (
        isinstance(value, list)
        and any(isinstance(item, Tensor) for item in value)
        and all(item is None or isinstance(item, Tensor) for item in value)
    )


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, JSON) holding ``optimizer.state_dict()``."""
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{index}/{name}"] = value
            elif _is_tensor_list(value):  # L-BFGS's curvature history: tensors, None where unset
                tensors.update(
                    {f"optimizer/{index}/{name}/{i}": item for i, item in enumerate(value) if item is not None}
                )
                scalars.setdefault(str(index), {})[name] = {"tensor_list": len(value)}
            else:
                scalars.setdefault(str(index), {})[name] = _jsonable(value, f"optimizer state {name}")
    groups = [_jsonable(group, "optimizer param group") for group in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state`; tensors are moved to the parameters' device by torch."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in record.get("scalars", {}).items():
        own = state.setdefault(int(index), {})
        for name, value in _from_json(entries).items():
            if isinstance(value, dict) and set(value) == {"tensor_list"}:
                value = [own.pop(f"{name}/{i}", None) for i in range(int(value["tensor_list"]))]
            own[name] = value
    groups = _from_json(record["param_groups"])
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise RunDirError(f"the saved optimizer state does not fit this optimizer ({err})") from None


def scheduler_state(scheduler: Any) -> dict[str, Any]:
    """JSON of a torch LR scheduler's ``state_dict()``."""
    return _jsonable(scheduler.state_dict(), "scheduler state")


def load_scheduler_state(scheduler: Any, record: dict[str, Any]) -> None:
    """Inverse of :func:`scheduler_state`."""
    scheduler.load_state_dict(_from_json(record))
