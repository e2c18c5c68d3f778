"""The compact model notation: one line of text -> a tree of :class:`LayerSpec`.

A spec is the input shape followed by layer tokens, separated by spaces or one dash, so
the course's MLP sizes ``784-30-10`` and the token form ``1x28x28 c5x5x6 mp2 d10`` are
the same language (a bare number ``30`` is a dense layer ``d30``).

==================  =====================================================================
token               meaning
==================  =====================================================================
``N``, ``CxL``,     first token only: the input, a vector of N features, a 1-D signal
``CxHxW``           with C channels of length L, or a C-channel HxW image
``dN`` or ``N``     dense layer of N units
``mxNxK``           dense maxout: N units, each the max of K linear pieces (``mxN``: K=2)
``cKxF``            1-D convolution: F filters of width K (on ``CxL`` inputs)
``cKxKxF``          2-D convolution: F filters of KxK (on ``CxHxW`` inputs)
``scKxKxF``         depthwise-separable convolution (Xception): KxK per channel, then 1x1
``cmxKxKxFxP``      convolutional maxout: F maps, each the max of P filters
``mpK``, ``apK``    max / average pooling over KxK windows (stride K unless ``:sN``)
``dropP``           dropout with probability P, e.g. ``drop0.5``
``bn``, ``ln``      batch / layer normalisation
``flat``            flatten to a vector (dense layers also flatten on their own)
``relu``, ...       a standalone activation layer (any name of ``capas.layers.ACTIVATIONS``)
``res(...)``        residual block: f(x) + x, with a learned 1x1/linear projection of x
                    when the block changes the shape
``repN(...)``       the same layers applied N times with tied weights (recursive net)
``cat(A, B, ...)``  parallel branches (Inception) whose outputs are concatenated
==================  =====================================================================

Options follow a token after ``:`` — ``:sN`` stride, ``:dN`` dilation, ``:pN`` padding,
``:same``/``:valid`` padding, or an activation name (``d30:tanh``, ``c3x3x8:leaky_relu:0.2``).
A skip connection (the slides' "redes hacia adelante", where a layer also receives an
earlier layer's output) is written ``+i`` after a token: the layer's input is the previous
output concatenated with the output of token ``i`` (0 is the input, 1 the first layer
token...), e.g. ``784-30-30+0-10``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from capas.errors import SpecError
from capas.layers.activations import canonical_name, get_activation

_NUMBERED = {  # token prefix -> (kind, how many "x"-separated integers it may carry)
    "d": ("dense", (1,)),
    "mx": ("maxout", (1, 2)),
    "c": ("conv", (2, 3)),
    "sc": ("separable_conv", (2, 3)),
    "cmx": ("conv_maxout", (3, 4)),
    "mp": ("max_pool", (1, 2)),
    "ap": ("avg_pool", (1, 2)),
}
_BARE = {"bn": "batch_norm", "ln": "layer_norm", "flat": "flatten"}
_BLOCKS = {"res": "residual", "rep": "repeat", "cat": "concat"}
_PREFIX = {kind: prefix for prefix, (kind, _) in _NUMBERED.items()} | {v: k for k, v in _BARE.items()}
_WINDOW = {"stride", "dilation", "padding"}
_OPTIONS = {  # the ':option' keys each kind accepts
    "dense": {"activation"},
    "conv": _WINDOW | {"activation"},
    "separable_conv": _WINDOW | {"activation"},
    "conv_maxout": _WINDOW,
    "max_pool": {"stride"},
    "avg_pool": {"stride"},
    "residual": {"activation"},
}

_LEX = re.compile(r"(?P<space>[\s\-]+)|(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<word>[^\s\-(),]+)")
_NUMBERED_RE = re.compile(r"(cmx|mx|sc|mp|ap|c|d)(\d+(?:x\d+)*)")
_SHAPE_RE = re.compile(r"\d+(?:x\d+){0,2}")
_BLOCK_RE = re.compile(r"(res|cat|rep)(\d*)")
_DROP_RE = re.compile(r"drop(\d+\.?\d*|\.\d+)")
_MAX_INT = 999_999_999
_BIG_NUMBER_RE = re.compile(r"(?<![.\d])\d{10,}")  # an integer above _MAX_INT (not decimals)


@dataclass(frozen=True)
class LayerSpec:
    """One token of a spec, checked for syntax but not yet for shapes.

    ``sizes`` are the integers of the token in order (``c5x5x6`` -> (5, 5, 6)); their
    meaning depends on ``kind`` and on the input rank, which the builder knows.
    """

    kind: str
    sizes: tuple[int, ...] = ()
    stride: int | None = None
    dilation: int | None = None
    padding: int | str | None = None
    activation: str | None = None
    rate: float | None = None
    sources: tuple[int, ...] = ()
    times: int = 1
    branches: tuple[tuple[LayerSpec, ...], ...] = ()
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)

    def token(self) -> str:
        """The canonical text of this layer; ``parse`` reads it back to an equal spec."""
        if self.kind in _BLOCKS.values():
            inner = ", ".join(" ".join(layer.token() for layer in branch) for branch in self.branches)
            name = {"residual": "res", "concat": "cat", "repeat": f"rep{self.times}"}[self.kind]
            head = f"{name}({inner})"
        elif self.kind == "activation":
            head = self.activation or ""
        elif self.kind == "dropout":
            head = f"drop{format_rate(self.rate)}"
        else:
            head = _PREFIX[self.kind] + "x".join(map(str, self.sizes))
        options = [f"s{self.stride}" if self.stride else "", f"d{self.dilation}" if self.dilation else ""]
        if self.padding is not None:
            options.append(self.padding if isinstance(self.padding, str) else f"p{self.padding}")
        if self.kind != "activation" and self.activation:
            options.append(self.activation)
        return head + "".join(f":{o}" for o in options if o) + "".join(f"+{i}" for i in self.sources)


def format_rate(rate: float) -> str:
    """A dropout rate as plain decimals ('0.00001', never '1e-05', which has a dash)."""
    return f"{rate:.12f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the input shape, the top-level layers and the text they came from."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    text: str = field(compare=False)

    def canonical(self) -> str:
        """One canonical line for this network (what ``Network.config()`` stores)."""
        return " ".join(["x".join(map(str, self.input_shape))] + [layer.token() for layer in self.layers])

    def error(self, layer: LayerSpec, message: str) -> SpecError:
        """A SpecError pointing at ``layer`` in the original text."""
        return spec_error(self.text, (layer.start, layer.end), message)


def spec_error(text: str, span: tuple[int, int], message: str) -> SpecError:
    """A SpecError that shows ``text`` with a caret line under ``span``."""
    start, end = span
    return SpecError(f"{message}\n    {text}\n    {' ' * start}{'^' * max(1, end - start)}")


def parse(text: str) -> Spec:
    """Parse one spec line; SpecError with a caret under the first bad token."""
    if not isinstance(text, str):
        raise SpecError(f"a model spec must be a string like '784-30-10', got {type(text).__name__}")
    tokens = _lex(text)
    if not tokens or tokens[0][0] != "word":
        raise spec_error(text, (0, max(1, len(text))), "a spec starts with the input shape, e.g. 784 or 1x28x28")
    _, value, start, end = tokens[0]
    if not _SHAPE_RE.fullmatch(value) or any(int(n) == 0 for n in value.split("x")):
        raise spec_error(
            text, (start, end), f"expected the input shape first (N, CxL or CxHxW with sizes >= 1), got '{value}'"
        )
    parser = _Parser(text, tokens, 1)
    layers = parser.sequence(top_level=True)
    if parser.pos < len(tokens):
        _, value, start, end = tokens[parser.pos]
        raise spec_error(text, (start, end), f"unexpected '{value}': a ')' or ',' outside a block")
    if not layers:
        raise spec_error(text, (end, end + 1), "expected at least one layer after the input shape, e.g. 784-10")
    spec = Spec(tuple(int(n) for n in value.split("x")), tuple(layers), text)
    for index, layer in enumerate(spec.layers, start=1):
        for source in layer.sources:
            if source >= index:
                raise spec.error(layer, f"skip '+{source}' must name an earlier token: 0 (the input) to {index - 1}")
    return spec


def _lex(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) for each word, '(', ')' and ','; separators dropped.

    A dash must stand alone between two layers ('784-30-10'): a doubled, leading or
    trailing dash ('784-30-') most likely lost a layer, so it is an error, not a space.
    """
    tokens = []
    matches = list(_LEX.finditer(text))
    for i, match in enumerate(matches):
        if match.lastgroup != "space":
            for number in _BIG_NUMBER_RE.finditer(match.group()):
                span = (match.start() + number.start(), match.start() + number.end())
                raise spec_error(text, span, f"'{number.group()}' is too large; sizes and counts go up to {_MAX_INT:,}")
            tokens.append((match.lastgroup, match.group(), match.start(), match.end()))
            continue
        dashes = match.group().count("-")
        after_layer = i > 0 and matches[i - 1].lastgroup in ("word", "close")
        before_layer = i + 1 < len(matches) and matches[i + 1].lastgroup in ("word", "open")
        if dashes > 1 or (dashes and not (after_layer and before_layer)):
            dash = match.start() + match.group().index("-")
            raise spec_error(text, (dash, match.end()), "a '-' goes between two layers, e.g. 784-30-10: is a layer missing?")
    return tokens


class _Parser:
    """Recursive descent over the lexed tokens (blocks nest)."""

    def __init__(self, text: str, tokens: list[tuple[str, str, int, int]], pos: int) -> None:
        self.text, self.tokens, self.pos = text, tokens, pos

    def sequence(self, top_level: bool) -> list[LayerSpec]:
        layers = []
        while self.pos < len(self.tokens) and self.tokens[self.pos][0] == "word":
            layers.append(self.layer(top_level))
        return layers

    def layer(self, top_level: bool) -> LayerSpec:
        _, word, start, end = self.tokens[self.pos]
        self.pos += 1
        head, options = _split_options(word)
        block = _BLOCK_RE.fullmatch(head)
        has_paren = self._peek("open") and self.tokens[self.pos][2] == end  # 'name(' with no space
        if block and has_paren and not options:
            return self.block(block, start, top_level)
        if has_paren:
            raise spec_error(
                self.text, (start, end + 1), f"'{word}(' is not a block; blocks are res(...), repN(...), cat(..., ...)"
            )
        layer = _layer_token(self.text, head, start, start + len(head))
        return _apply_options(self.text, layer, options, start + len(head), end, top_level)

    def block(self, match: re.Match, start: int, top_level: bool) -> LayerSpec:
        name, count = match.group(1), match.group(2)
        if (name == "rep") != bool(count) or (count and int(count) < 1):
            expected = "rep followed by a count >= 1, e.g. rep3(d30)" if name == "rep" else f"'{name}(' with no number"
            raise spec_error(self.text, (start, match.end() + start), f"expected {expected}")
        self.pos += 1  # the '('
        branches = [self.sequence(top_level=False)]
        while self._peek("comma"):
            self.pos += 1
            branches.append(self.sequence(top_level=False))
        if not self._peek("close"):
            where = self.tokens[self.pos][2:] if self.pos < len(self.tokens) else (len(self.text), len(self.text) + 1)
            raise spec_error(self.text, where, f"expected ')' to close the '{name}(' opened here at column {start + 1}")
        end = self.tokens[self.pos][3]
        self.pos += 1
        if any(not branch for branch in branches):
            raise spec_error(
                self.text, (start, end), f"empty layer list in '{name}(...)'; put at least one layer in each part"
            )
        if name != "cat" and len(branches) > 1:
            raise spec_error(
                self.text, (start, end), f"only cat(...) takes several ','-separated branches, not {name}(...)"
            )
        branches = tuple(map(tuple, branches))
        layer = LayerSpec(_BLOCKS[name], times=int(count or 1), branches=branches, start=start, end=end)
        options = ""
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "word" and self.tokens[self.pos][2] == end:
            _, options, _, opt_end = self.tokens[self.pos]
            if options[0] not in ":+":
                message = f"after ')' expected a space, ':option' or '+skip', got '{options}'"
                raise spec_error(self.text, (end, opt_end), message)
            self.pos += 1
            layer = replace(layer, end=opt_end)
        return _apply_options(self.text, layer, options, end, layer.end, top_level)

    def _peek(self, kind: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos][0] == kind


def _split_options(word: str) -> tuple[str, str]:
    """'c3x3x8:s2+0' -> ('c3x3x8', ':s2+0')."""
    cut = min((i for i in (word.find(":"), word.find("+")) if i >= 0), default=len(word))
    return word[:cut], word[cut:]


def _layer_token(text: str, head: str, start: int, end: int) -> LayerSpec:
    """The layer a token head names (no options yet)."""
    if not head:
        message = "a ':option' or '+skip' must be attached to a layer token, with no space"
        raise spec_error(text, (start, end + 1), message)
    if head.isdigit():
        head = "d" + head
    if head in _BARE:
        return LayerSpec(_BARE[head], start=start, end=end)
    if match := _DROP_RE.fullmatch(head):
        rate = float(match.group(1))
        if not 0 <= rate < 1:
            raise spec_error(text, (start, end), f"dropout probability must be in [0, 1), got {rate:g}")
        return LayerSpec("dropout", rate=rate, start=start, end=end)
    if match := _NUMBERED_RE.fullmatch(head):
        kind, counts = _NUMBERED[match.group(1)]
        sizes = tuple(int(n) for n in match.group(2).split("x"))
        if len(sizes) not in counts or min(sizes) < 1:
            raise spec_error(text, (start, end), f"'{head}': {_EXPECTED[kind]}")
        return LayerSpec(kind, sizes, start=start, end=end)
    try:
        return LayerSpec("activation", activation=canonical_name(head), start=start, end=end)
    except SpecError:
        raise spec_error(text, (start, end), f"unknown layer '{head}'; expected {_KNOWN}") from None


_EXPECTED = {
    "dense": "write dN with N >= 1 units, e.g. d30",
    "maxout": "write mxN (N units, 2 pieces) or mxNxK (K pieces), e.g. mx30x3",
    "conv": "write cKxF (1-D) or cKxKxF (2-D) with sizes >= 1, e.g. c5x5x6",
    "separable_conv": "write scKxF (1-D) or scKxKxF (2-D), e.g. sc3x3x16",
    "conv_maxout": "write cmxKxFxP (1-D) or cmxKxKxFxP (2-D), e.g. cmx3x3x16x2",
    "max_pool": "write mpK or mpKxK with K >= 1, e.g. mp2",
    "avg_pool": "write apK or apKxK with K >= 1, e.g. ap2",
}
_KNOWN = (
    "dN, mxNxK, cKxKxF, scKxKxF, cmxKxKxFxP, mpK, apK, dropP, bn, ln, flat, an activation, "
    "res(...), repN(...), cat(...)"
)


def _apply_options(text: str, layer: LayerSpec, options: str, start: int, end: int, top_level: bool) -> LayerSpec:
    """Read ':opt' and '+i' suffixes (``options``, found at ``start``) into ``layer``."""
    changes: dict[str, Any] = {"sources": ()}
    pos = start
    for match in re.finditer(r"([:+])([^:+]*)", options):
        sep, value = match.groups()
        span = (pos + match.start(), pos + match.end())
        if not value:
            raise spec_error(text, span, f"empty '{sep}' in '{options}'")
        if sep == "+":
            if not value.isdigit():
                raise spec_error(text, span, f"a skip is '+i' with i the index of an earlier token, got '+{value}'")
            if not top_level:
                raise spec_error(text, span, "skips '+i' are only allowed on top-level layers, not inside blocks")
            changes["sources"] += (int(value),)
            continue
        key = _option_key(value)
        if key == "activation_value":
            if layer.kind == "activation" and "activation" not in changes:
                changes["activation"] = layer.activation
            if "activation" not in changes:
                expected = "expected :sN, :dN, :pN, :same, :valid or an activation"
                raise spec_error(text, span, f"':{value}' is not an option; {expected}")
            changes["activation"] += ":" + value
            continue
        if key == "activation":
            try:
                name = canonical_name(value)
            except SpecError as err:
                raise spec_error(text, span, str(err)) from None
        if key not in _OPTIONS.get(layer.kind, ()) or key in changes:
            why = "is repeated" if key in changes else f"does not apply to {layer.kind.replace('_', ' ')} layers"
            raise spec_error(text, span, f"option ':{value}' {why}")
        if key == "activation":
            changes[key] = name
        elif key == "padding":
            changes[key] = value if value in ("same", "valid") else int(value[1:])
        else:
            changes[key] = int(value[1:])
            if changes[key] < 1:
                raise spec_error(text, span, f"':{value}': {key} must be at least 1")
    if changes.get("activation"):
        try:
            get_activation(changes["activation"])
        except SpecError as err:
            raise spec_error(text, (layer.start, end), str(err)) from None
    return replace(layer, end=end, **changes)


def _option_key(value: str) -> str:
    if re.fullmatch(r"s\d+", value):
        return "stride"
    if re.fullmatch(r"d\d+", value):
        return "dilation"
    if re.fullmatch(r"p\d+", value) or value in ("same", "valid"):
        return "padding"
    if re.fullmatch(r"\d*\.?\d+", value):
        return "activation_value"
    return "activation"
