"""``capas train --model '{...}'``: the models made of parts, described by a TOML table.

A layer spec (``64-32-10``) describes one network. An encoder-decoder or a GAN is more than
one network plus the options of its task, so ``--model`` takes them as a TOML inline
table instead:

* on sequence pairs (``--data dates``), an encoder-decoder: ``Seq2Seq``'s keywords
  (``hidden``, ``attention``, ``style``...) and ``Seq2SeqTask``'s (``teacher_forcing``...);
  no table at all gives ``Seq2Seq``'s defaults;
* with ``generator`` and ``discriminator`` specs, a GAN: ``build_gan``'s keywords
  (``noise``, ``packing``, ``act``, ``init``...) and ``GanTask``'s (``loss``, ``d_steps``,
  ``label_smoothing``...), e.g. ``{generator = "8-128-128-2", discriminator =
  "2-128-128-1", loss = "minimax"}``.

:func:`model_from_table` returns the model and its task options (what ``capas.fit`` takes
as ``task_options``, recorded in config.json so that ``--resume`` rebuilds the same task).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import tomllib
from torch import nn

from capas.api.seq2seq import is_pairs_data
from capas.errors import TrainingError

TABLE_EXAMPLES = (
    '--model \'{generator = "8-128-128-2", discriminator = "2-128-128-1"}\' (a GAN), or on sequence pairs '
    "--model '{hidden = 64, attention = \"dot\"}' (an encoder-decoder)"
)


def is_table(text: str | None) -> bool:
    """Whether a ``--model`` text is a TOML table rather than a layer spec."""
    return text is not None and text.strip().startswith("{")


def parse_table(text: str) -> dict[str, Any]:
    """The TOML inline table ``text`` as a dict; TrainingError naming the TOML error."""
    try:
        return tomllib.loads(f"model = {text.strip()}")["model"]
    except tomllib.TOMLDecodeError as err:
        raise TrainingError(f"--model {text.strip()!r} is not a TOML inline table ({err})") from None


def model_from_table(text: str | None, data: Any, *, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """(model, task options) of a ``--model`` table for ``data`` (see the module docstring)."""
    if text is not None and not is_table(text):
        if is_pairs_data(data):
            raise TrainingError(
                f"{data.name} holds sequence pairs, which an encoder-decoder reads: give --model as its options, "
                f"e.g. --model '{{hidden = 64, attention = \"dot\"}}', or leave --model out (not the spec {text!r})"
            )
        raise TrainingError(f"--model {text!r} is a layer spec, not a table; a table is e.g. {TABLE_EXAMPLES}")
    table = {} if text is None else parse_table(text)
    if "generator" in table or "discriminator" in table:
        return _gan(table, seed)
    if is_pairs_data(data):
        return _seq2seq(table, data, seed)
    raise TrainingError(
        f"a --model table describes a GAN or, on sequence pairs, an encoder-decoder: e.g. {TABLE_EXAMPLES}; "
        "for one network give a layer spec such as 64-32-10"
    )


def _split(table: dict[str, Any], build: Callable[..., Any], task: type, what: str) -> tuple[dict, dict]:
    """``table`` split into the keywords of ``build`` and those of ``task``'s constructor;
    TrainingError naming any key that is neither, with the keys that are."""
    skip = {"self", "seed", "data", "gan", "model", "source_tokens", "target_tokens"}
    built = [name for name in inspect.signature(build).parameters if name not in skip]
    tasked = [name for name in inspect.signature(task.__init__).parameters if name not in skip]
    unknown = sorted(set(table) - set(built) - set(tasked))
    if unknown:
        raise TrainingError(
            f"--model: no {what} option {', '.join(unknown)}; the options are {', '.join(built)} "
            f"(the model) and {', '.join(tasked)} (its training)"
        )
    return {k: v for k, v in table.items() if k in built}, {k: v for k, v in table.items() if k in tasked}


def _gan(table: dict[str, Any], seed: int) -> tuple[nn.Module, dict[str, Any]]:
    from capas.models.gan import build_gan
    from capas.tasks.gan import GanTask

    missing = [name for name in ("generator", "discriminator") if name not in table]
    if missing:
        raise TrainingError(f"--model: a GAN needs both a generator and a discriminator spec; add {missing[0]}")
    model_options, task_options = _split(table, build_gan, GanTask, "GAN")
    return build_gan(**model_options, seed=seed), task_options


def _seq2seq(table: dict[str, Any], data: Any, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    from capas.models.seq2seq import Seq2Seq
    from capas.tasks.seq2seq import Seq2SeqTask

    model_options, task_options = _split(table, Seq2Seq, Seq2SeqTask, "encoder-decoder")
    return Seq2Seq.for_data(data, seed=seed, **model_options), task_options
