"""A recipe's ``[pretrain]`` table: greedy layer-wise pre-training before fine-tuning.

A recipe with ``[pretrain]`` (``recipes/dbn-mnist.toml``, ``recipes/sda-mnist.toml``)
pre-trains the hidden layers of each model's spec with :func:`capas.api.pretrain.pretrain`
(the table's keys are its keyword arguments: ``method = "rbm" | "ae" | "dae" |
"sparse-ae"``, ``epochs``, ``layer_epochs``, ``lr``, ``layer_lr``, ``batch_size``, ``k``,
``persistent``, ``momentum``, ``noise``, ...), then ``[train]`` fine-tunes the whole network
with back-propagation, as Hinton et al. (2006) and the Theano DBN/SdA tutorials do.

The pre-training is written to ``<model's run dir>/pretrain/`` (its stages, its
``pretrain.json``); an interrupted recipe resumes it there (``capas run --resume``), and a
finished one is loaded rather than run again.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from capas.api.outputs import RECIPE_PRETRAIN
from capas.errors import CapasError
from capas.train import rundir

#: the pre-training options a recipe decides elsewhere (its data, spec, act, loss, seed)
_FROM_RECIPE = ("data", "model", "act", "loss", "seed", "out", "quiet", "callbacks", "resume")


def pretrain_keys() -> list[str]:
    """The keys a ``[pretrain]`` table may hold: ``pretrain``'s keyword options."""
    from capas.api.pretrain import pretrain

    return [name for name in inspect.signature(pretrain).parameters if name not in _FROM_RECIPE]


def check_pretrain_table(table: dict[str, Any], where: str) -> None:
    """CapasError naming an unknown ``[pretrain]`` key (before anything trains)."""
    allowed = pretrain_keys()
    for key in table:
        if key not in allowed:
            raise CapasError(f"{where}: unknown key 'pretrain.{key}'; pre-training options are: {', '.join(allowed)}")


def pretrained_network(
    table: dict[str, Any], data: Any, spec: str, *, act: str, loss: str, seed: int, run_dir: Path, quiet: bool
) -> Any:
    """The network of ``spec`` with its hidden layers pre-trained by ``table``'s settings on
    ``data``'s training inputs: run in ``run_dir/pretrain``, resumed there if interrupted,
    loaded if it finished."""
    from capas.api.pretrain import pretrain, resume_pretrain

    check_pretrain_table(table, str(run_dir))
    out = Path(run_dir) / RECIPE_PRETRAIN
    record = out / "pretrain.json"
    if record.is_file():
        if rundir.read_json(record).get("finished"):
            return rundir.load_model(out)
        return resume_pretrain(out, data=data, quiet=quiet).network
    return pretrain(data, spec, act=act, loss=loss, seed=seed, out=out, quiet=quiet, **table).network


def describe_pretraining(table: dict[str, Any], run_dirs: list[Path]) -> str:
    """The report's line: the ``[pretrain]`` settings and each model's pre-training time
    (the sum of its stages' epoch seconds, from ``pretrain.json``)."""
    settings = ", ".join(f"{k} = `{v}`" for k, v in table.items())
    times = []
    for run_dir in run_dirs:
        record = Path(run_dir) / RECIPE_PRETRAIN / "pretrain.json"
        if record.is_file():
            layers = rundir.read_json(record).get("layers", [])
            seconds = sum(point.get("seconds", 0.0) for layer in layers for point in layer.get("curve", []))
            times.append(f"{len(layers)} layers in {seconds:.0f} s")
    return (
        "- pre-training (greedy, then the training below fine-tunes): "
        + settings
        + (f" ({'; '.join(times)})" if times else "")
    )
