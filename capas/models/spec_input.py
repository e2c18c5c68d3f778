"""The three ways to write a network, reduced to one spec line.

A spec string is used as is; a Python list holds token strings and/or layer tables; a
``[model]`` table (from TOML or a dict) has ``spec = "..."`` or ``layers = [...]`` plus
build options. Tables become tokens, so every form goes through the same parser and the
same checks, and builds the same module.

Layer tables (``[[model.layers]]`` in TOML): ``type`` plus that layer's keys, and ``from``
(a list of earlier token indices, the ``+i`` skips) on any top-level layer::

    {type = "input", shape = [1, 28, 28]}
    {type = "dense", units = 30, act = "tanh"}         {type = "maxout", units = 30, pieces = 3}
    {type = "conv", kernel = 5, filters = 6, stride = 1, dilation = 1, padding = "same", act = "relu"}
    {type = "separable_conv", ...as conv}              {type = "conv_maxout", ...as conv, pieces = 2}
    {type = "max_pool", size = 2, stride = 2}          {type = "avg_pool", size = 2}
    {type = "dropout", p = 0.5}   {type = "batch_norm"}   {type = "layer_norm"}   {type = "flatten"}
    {type = "activation", name = "relu"}
    {type = "residual", layers = [...], act = "relu"}  {type = "repeat", times = 3, layers = [...]}
    {type = "concat", branches = [[...], [...]]}

A ``kernel``/``size`` given as one integer K means KxK on an image input. Each layer
table's keys and its token come from the kind's record in ``capas.layers.kinds.KINDS``, so
a registered kind has a table form with no change here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from capas.errors import SpecError
from capas.layers.kinds import KINDS, table_ints
from capas.notation import MAX_DEPTH

BUILD_OPTIONS = ("act", "loss", "output_act", "init", "seed")


def existing_path(text: str) -> Path | None:
    """``text`` as a path when it names an existing file or directory, else None.

    Commands that take "a spec, a recipe or a run directory" try the path first; a spec is
    rarely a valid path (longer than the system's name limit, a NUL byte, a component over
    255 bytes), and the operating system's refusal of such a name means "not a file", not
    an error to show.
    """
    if not isinstance(text, str) or not text or "\0" in text:
        return None
    raw = os.fsencode(text)
    if len(raw) > 4096 or any(len(part) > 255 for part in raw.split(b"/")):
        return None
    path = Path(text)
    try:
        return path if path.exists() else None
    except (OSError, ValueError):
        return None


def spec_text(spec: str | list | dict) -> tuple[str, dict[str, Any]]:
    """(spec line, build options found in a model table) for any accepted form."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict):
        unknown = set(spec) - {"spec", "layers", *BUILD_OPTIONS}
        if unknown or ("spec" in spec) == ("layers" in spec):
            raise SpecError(
                f"a [model] table needs exactly one of 'spec' or 'layers' and may set {', '.join(BUILD_OPTIONS)}; "
                f"got keys {sorted(spec)}"
            )
        options = {k: spec[k] for k in BUILD_OPTIONS if k in spec}
        inner = spec.get("spec", spec.get("layers"))
        if not isinstance(inner, (str, list)):
            raise SpecError(f"[model] spec must be a string and layers a list of layers, got {inner!r:.80}")
        return spec_text(inner)[0], options
    if isinstance(spec, (list, tuple)) and spec:
        first = _table_token(spec[0], dims=0, top_level=True) if isinstance(spec[0], dict) else spec[0]
        if not isinstance(first, str):
            raise SpecError(f"the first entry must be the input shape (a token or an input table), got {first!r}")
        dims = first.count("x") - first.startswith("T")  # the spatial rank of one sample (of one time step)
        return " ".join([first] + [_entry(item, dims, top_level=True, depth=0) for item in spec[1:]]), {}
    raise SpecError(f"a model spec must be a string, a non-empty list of layers or a [model] table, got {spec!r:.80}")


def _entry(item: Any, dims: int, top_level: bool, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise SpecError(f"layer tables nested more than {MAX_DEPTH} deep; flatten the model (repeat takes 'times')")
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return _table_token(item, dims, top_level, depth)
    raise SpecError(f"a layer must be a token string or a table with a 'type', got {item!r:.80}")


def _table_token(table: dict[str, Any], dims: int, top_level: bool, depth: int = 0) -> str:
    """One layer table -> its token; SpecError naming unknown or missing keys."""
    kind = table.get("type")
    if not isinstance(kind, str) or (kind != "input" and kind not in KINDS):
        raise SpecError(f"layer table {table!r:.80} needs 'type' = one of {', '.join(['input', *KINDS])}")
    record = KINDS.get(kind)
    keys, required = (record.table_keys, record.table_required) if record else ({"shape"}, ("shape",))
    allowed = keys | ({"from"} if top_level and kind != "input" else set())
    unknown = set(table) - allowed - {"type"}
    missing = [key for key in required if key not in table]
    if unknown or missing:
        raise SpecError(
            f"layer table of type '{kind}': unknown keys {sorted(unknown)}, missing {missing}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    _check_values(table)
    get = table.get
    if record is None:
        return "x".join(str(n) for n in table_ints(get("shape"), "shape"))
    head = record.table_head(table, dims, lambda item: _entry(item, dims, False, depth + 1))
    options = []
    for key, prefix in (("stride", "s"), ("dilation", "d")):
        if key in table:
            options.append(f"{prefix}{get(key)}")
    if "padding" in table:
        options.append(get("padding") if isinstance(get("padding"), str) else f"p{get('padding')}")
    if "act" in table:
        options.append(str(get("act")))
    sources = table_ints(get("from", []), "from")
    return head + "".join(f":{o}" for o in options) + "".join(f"+{i}" for i in sources)


def _is_count(value: Any) -> bool:
    """A non-negative int (not a bool): what every size, index and count must be."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_values(table: dict[str, Any]) -> None:
    """Scalars must be what they claim to be (no text can smuggle extra tokens in)."""
    for key in ("units", "pieces", "filters", "times", "stride", "dilation"):
        if key in table and not _is_count(table[key]):
            raise SpecError(f"'{key}' must be a positive integer, got {table[key]!r}")
    rate = table.get("p", 0)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise SpecError(f"'p' must be a number in [0, 1), got {rate!r}")
    padding = table.get("padding", 0)
    if not (padding in ("same", "valid") or _is_count(padding)):
        raise SpecError(f"'padding' must be an integer, 'same' or 'valid', got {padding!r}")
    for key in ("act", "name"):
        if key in table and not (isinstance(table[key], str) and re.fullmatch(r"[A-Za-z_]+(:[\d.]+)?", table[key])):
            raise SpecError(f"'{key}' must be an activation name like 'relu' or 'leaky_relu:0.2', got {table[key]!r}")
