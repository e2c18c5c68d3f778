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

A ``kernel``/``size`` given as one integer K means KxK on an image input.
"""

from __future__ import annotations

import re
from typing import Any

from capas.errors import SpecError
from capas.notation import format_rate

BUILD_OPTIONS = ("act", "loss", "output_act", "init", "seed")
_PREFIX = {"dense": "d", "maxout": "mx", "conv": "c", "separable_conv": "sc", "conv_maxout": "cmx",
           "max_pool": "mp", "avg_pool": "ap"}
_KEYS = {
    "input": {"shape"},
    "dense": {"units", "act"},
    "maxout": {"units", "pieces"},
    "conv": {"kernel", "filters", "stride", "dilation", "padding", "act"},
    "separable_conv": {"kernel", "filters", "stride", "dilation", "padding", "act"},
    "conv_maxout": {"kernel", "filters", "pieces", "stride", "dilation", "padding"},
    "max_pool": {"size", "stride"},
    "avg_pool": {"size", "stride"},
    "dropout": {"p"},
    "batch_norm": set(),
    "layer_norm": set(),
    "flatten": set(),
    "activation": {"name"},
    "residual": {"layers", "act"},
    "repeat": {"times", "layers"},
    "concat": {"branches"},
}
_REQUIRED = {"input": ("shape",), "dense": ("units",), "maxout": ("units",), "conv": ("kernel", "filters"),
             "separable_conv": ("kernel", "filters"), "conv_maxout": ("kernel", "filters", "pieces"),
             "max_pool": ("size",), "avg_pool": ("size",), "dropout": ("p",), "activation": ("name",),
             "residual": ("layers",), "repeat": ("times", "layers"), "concat": ("branches",)}


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
        dims = first.count("x")
        return " ".join([first] + [_entry(item, dims, top_level=True) for item in spec[1:]]), {}
    raise SpecError(f"a model spec must be a string, a non-empty list of layers or a [model] table, got {spec!r:.80}")


def _entry(item: Any, dims: int, top_level: bool) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return _table_token(item, dims, top_level)
    raise SpecError(f"a layer must be a token string or a table with a 'type', got {item!r:.80}")


def _table_token(table: dict[str, Any], dims: int, top_level: bool) -> str:
    """One layer table -> its token; SpecError naming unknown or missing keys."""
    kind = table.get("type")
    if not isinstance(kind, str) or kind not in _KEYS:
        raise SpecError(f"layer table {table!r:.80} needs 'type' = one of {', '.join(_KEYS)}")
    allowed = _KEYS[kind] | ({"from"} if top_level and kind != "input" else set())
    unknown = set(table) - allowed - {"type"}
    missing = [key for key in _REQUIRED.get(kind, ()) if key not in table]
    if unknown or missing:
        raise SpecError(
            f"layer table of type '{kind}': unknown keys {sorted(unknown)}, missing {missing}; "
            f"it takes {', '.join(sorted(allowed))}"
        )
    _check_values(table)
    get = table.get
    if kind == "input":
        return "x".join(str(n) for n in _ints(get("shape"), "shape"))
    if kind in ("dense", "maxout"):
        head = _PREFIX[kind] + "x".join(str(n) for n in [get("units")] + ([get("pieces")] if "pieces" in table else []))
    elif kind in _PREFIX:
        window = _ints(get("kernel", get("size")), "kernel" if "kernel" in table else "size")
        window = window * max(dims, 1) if len(window) == 1 and kind not in ("max_pool", "avg_pool") else window
        counts = [get("filters")] if "filters" in table else []
        counts += [get("pieces")] if kind == "conv_maxout" else []
        head = _PREFIX[kind] + "x".join(str(n) for n in [*window, *counts])
    elif kind == "dropout":
        head = f"drop{format_rate(get('p'))}"
    elif kind in ("batch_norm", "layer_norm", "flatten"):
        head = {"batch_norm": "bn", "layer_norm": "ln", "flatten": "flat"}[kind]
    elif kind == "activation":
        head = str(get("name"))
    elif kind == "concat":
        branches = get("branches")
        if not isinstance(branches, list) or not all(isinstance(b, list) for b in branches):
            raise SpecError("a concat table needs branches = [[layers...], [layers...]]")
        head = "cat(" + ", ".join(" ".join(_entry(i, dims, False) for i in b) for b in branches) + ")"
    else:
        layers = get("layers")
        if not isinstance(layers, list):
            raise SpecError(f"a {kind} table needs layers = [...] (a list of layers)")
        name = "res" if kind == "residual" else f"rep{get('times')}"
        head = f"{name}(" + " ".join(_entry(i, dims, False) for i in layers) + ")"
    options = []
    for key, prefix in (("stride", "s"), ("dilation", "d")):
        if key in table:
            options.append(f"{prefix}{get(key)}")
    if "padding" in table:
        options.append(get("padding") if isinstance(get("padding"), str) else f"p{get('padding')}")
    if "act" in table:
        options.append(str(get("act")))
    sources = _ints(get("from", []), "from")
    return head + "".join(f":{o}" for o in options) + "".join(f"+{i}" for i in sources)


def _is_count(value: Any) -> bool:
    """A non-negative int (not a bool): what every size, index and count must be."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _ints(value: Any, key: str) -> list[int]:
    values = [value] if isinstance(value, int) else value
    if not isinstance(values, list) or not all(_is_count(v) for v in values):
        raise SpecError(f"'{key}' must be a non-negative integer or a list of them, got {value!r}")
    return values


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
