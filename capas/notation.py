"""The compact model notation: one line of text -> a tree of :class:`LayerSpec`.

A spec is the input shape followed by layer tokens, separated by spaces or one dash, so
the course's MLP sizes ``784-30-10`` and the token form ``1x28x28 c5x5x6 mp2 d10`` are
the same language (a bare number ``30`` is a dense layer ``d30``).

==================  =====================================================================
token               meaning
==================  =====================================================================
``N``, ``CxL``,     first token only: the input, a vector of N features, a 1-D signal
``CxHxW``           with C channels of length L, or a C-channel HxW image
``TxN``, ``T50xN``  first token only: a sequence of N features per time step, of any
                    length T or of exactly 50 steps; batches are (B, T, N), time on axis 1,
                    and every layer runs at each step (``capas.layers.sequence``)
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

Options follow a token after ``:`` — ``:sN`` stride (``:s2x1``: per axis), ``:dN`` dilation, ``:pN`` padding,
``:same``/``:valid`` padding, or an activation name (``d30:tanh``, ``c3x3x8:leaky_relu:0.2``);
``d300:share150``: 150 of the 300 units share one weight vector and bias (course file 000);
``drop0.5:classic``: classic dropout, whose test pass multiplies by 1 - p (course file 004).
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
from capas.layers.kinds import KINDS, LayerKind, format_rate

_LEX = re.compile(r"(?P<space>[\s\-]+)|(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<word>[^\s\-(),]+)")
_INPUT_RE = re.compile(r"(T(\d*)x)?(\d+(?:x\d+){0,2})")  # [T or TL x] N, CxL or CxHxW
_MAX_INT = 999_999_999
_BIG_NUMBER_RE = re.compile(r"(?<![.\d])\d{10,}")  # an integer above _MAX_INT (not decimals)
#: blocks nested deeper than this are refused: no real network needs more, and every later
#: stage (canonical text, builder, summary) walks the tree recursively
MAX_DEPTH = 32


def _of_form(form: str) -> list[LayerKind]:
    """The registered kinds whose token has ``form``, in registration order."""
    return [kind for kind in KINDS.values() if kind.form == form]


def _token_re(kinds: list[LayerKind], suffix: str) -> re.Pattern[str]:
    """'(tok1|tok2...)suffix', longest tokens first."""
    tokens = sorted((kind.token for kind in kinds), key=len, reverse=True)
    return re.compile(f"({'|'.join(map(re.escape, tokens))}){suffix}")


def _by_token(form: str) -> dict[str, LayerKind]:
    return {kind.token: kind for kind in _of_form(form)}


@dataclass(frozen=True)
class LayerSpec:
    """One token of a spec, checked for syntax but not yet for shapes.

    ``sizes`` are the integers of the token in order (``c5x5x6`` -> (5, 5, 6)); their
    meaning depends on ``kind`` and on the input rank, which the builder knows.
    """

    kind: str
    sizes: tuple[int, ...] = ()
    stride: int | tuple[int, ...] | None = None  # :s2 on every axis, :s2x1 per axis
    dilation: int | None = None
    padding: int | str | None = None
    activation: str | None = None
    rate: float | None = None
    share: int | None = None  # d300:share150: that many units share one weight vector (dense)
    classic: bool = False  # drop0.5:classic: no rescaling in training, outputs times 1 - p at test (dropout)
    sources: tuple[int, ...] = ()
    times: int = 1
    branches: tuple[tuple[LayerSpec, ...], ...] = ()
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)

    def token(self) -> str:
        """The canonical text of this layer; ``parse`` reads it back to an equal spec."""
        kind = KINDS[self.kind]
        if kind.form == "block":
            inner = ", ".join(" ".join(layer.token() for layer in branch) for branch in self.branches)
            head = f"{kind.token}{self.times if kind.counts else ''}({inner})"
        elif kind.form == "activation":
            head = self.activation or ""
        elif kind.form == "rate":
            head = f"{kind.token}{format_rate(self.rate)}"
        else:
            head = kind.token + "x".join(map(str, self.sizes))
        stride = "x".join(map(str, self.stride)) if isinstance(self.stride, tuple) else self.stride
        options = [f"s{stride}" if stride else "", f"d{self.dilation}" if self.dilation else ""]
        if self.padding is not None:
            options.append(self.padding if isinstance(self.padding, str) else f"p{self.padding}")
        if self.kind != "activation" and self.activation:
            options.append(self.activation)
        options += [f"share{self.share}" if self.share else "", "classic" if self.classic else ""]
        return head + "".join(f":{o}" for o in options if o) + "".join(f"+{i}" for i in self.sources)


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the input shape, the top-level layers and the text they came from.

    For a sequence input (``Tx28``, ``T50x28``) ``sequence`` is True, ``input_shape`` is the
    shape of one time step ((28,)) and ``length`` the fixed number of steps (None: any).
    """

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    text: str = field(compare=False)
    sequence: bool = False
    length: int | None = None

    @property
    def time(self) -> str | None:
        """The time axis as written: 'T' (any length), 'T50' (fixed), None (not a sequence)."""
        return f"T{self.length or ''}" if self.sequence else None

    def canonical(self) -> str:
        """One canonical line for this network (what ``Network.config()`` stores)."""
        shape = "x".join([self.time or "", *map(str, self.input_shape)]).lstrip("x")
        return " ".join([shape] + [layer.token() for layer in self.layers])

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
    match = _INPUT_RE.fullmatch(value)
    sizes = [int(n) for n in match.group(3).split("x") + [match.group(2) or "1"]] if match else [0]
    if 0 in sizes:
        if value.startswith("T"):
            message = "a sequence input is TxN (any length) or TLxN (exactly L steps) with sizes >= 1"
            raise spec_error(text, (start, end), f"{message}, e.g. Tx28 or T50x28; got '{value}'")
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
    length = int(match.group(2)) if match.group(2) else None
    spec = Spec(tuple(sizes[:-1]), tuple(layers), text, sequence=bool(match.group(1)), length=length)
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
            raise spec_error(
                text, (dash, match.end()), "a '-' goes between two layers, e.g. 784-30-10: is a layer missing?"
            )
    return tokens


class _Parser:
    """Recursive descent over the lexed tokens (blocks nest)."""

    def __init__(self, text: str, tokens: list[tuple[str, str, int, int]], pos: int) -> None:
        self.text, self.tokens, self.pos = text, tokens, pos
        self.depth = 0  # blocks open around the current token

    def sequence(self, top_level: bool) -> list[LayerSpec]:
        layers = []
        while self.pos < len(self.tokens) and self.tokens[self.pos][0] == "word":
            layers.append(self.layer(top_level))
        return layers

    def layer(self, top_level: bool) -> LayerSpec:
        _, word, start, end = self.tokens[self.pos]
        self.pos += 1
        head, options = _split_options(word)
        block = _token_re(_of_form("block"), r"(\d*)").fullmatch(head)
        has_paren = self._peek("open") and self.tokens[self.pos][2] == end  # 'name(' with no space
        if block and has_paren and not options:
            return self.block(block, start, top_level)
        if has_paren:
            blocks = ", ".join(
                f"{kind.token}{'N' if kind.counts else ''}({'..., ...' if kind.branches else '...'})"
                for kind in _of_form("block")
            )
            raise spec_error(self.text, (start, end + 1), f"'{word}(' is not a block; blocks are {blocks}")
        layer = _layer_token(self.text, head, start, start + len(head))
        return _apply_options(self.text, layer, options, start + len(head), end, top_level)

    def block(self, match: re.Match, start: int, top_level: bool) -> LayerSpec:
        name, count = match.group(1), match.group(2)
        kind = _by_token("block")[name]
        if bool(kind.counts) != bool(count) or (count and int(count) < 1):
            expected = kind.syntax if kind.counts else f"'{name}(' with no number"
            raise spec_error(self.text, (start, match.end() + start), f"expected {expected}")
        if self.depth >= MAX_DEPTH:
            message = f"blocks nested more than {MAX_DEPTH} deep; flatten the spec (use repN(...) for repeats)"
            raise spec_error(self.text, (start, match.end() + start + 1), message)
        self.pos += 1  # the '('
        self.depth += 1
        branches = [self.sequence(top_level=False)]
        while self._peek("comma"):
            self.pos += 1
            branches.append(self.sequence(top_level=False))
        self.depth -= 1
        if not self._peek("close"):
            where = self.tokens[self.pos][2:] if self.pos < len(self.tokens) else (len(self.text), len(self.text) + 1)
            raise spec_error(self.text, where, f"expected ')' to close the '{name}(' opened here at column {start + 1}")
        end = self.tokens[self.pos][3]
        self.pos += 1
        if any(not branch for branch in branches):
            raise spec_error(
                self.text, (start, end), f"empty layer list in '{name}(...)'; put at least one layer in each part"
            )
        if not kind.branches and len(branches) > 1:
            several = " or ".join(f"{other.token}(...)" for other in _of_form("block") if other.branches)
            raise spec_error(
                self.text, (start, end), f"only {several} takes several ','-separated branches, not {name}(...)"
            )
        branches = tuple(map(tuple, branches))
        layer = LayerSpec(kind.name, times=int(count or 1), branches=branches, start=start, end=end)
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
        head = KINDS["dense"].token + head
    if head in (bare := _by_token("bare")):
        return LayerSpec(bare[head].name, start=start, end=end)
    for kind in _of_form("rate"):
        if match := re.fullmatch(re.escape(kind.token) + r"(\d+\.?\d*|\.\d+)", head):
            rate = float(match.group(1))
            if not 0 <= rate < 1:
                raise spec_error(text, (start, end), f"{kind.name} probability must be in [0, 1), got {rate:g}")
            return LayerSpec(kind.name, rate=rate, start=start, end=end)
    if match := _token_re(_of_form("sizes"), r"(\d+(?:x\d+)*)").fullmatch(head):
        kind = _by_token("sizes")[match.group(1)]
        sizes = tuple(int(n) for n in match.group(2).split("x"))
        if len(sizes) not in kind.counts or min(sizes) < 1:
            raise spec_error(text, (start, end), f"'{head}': {kind.syntax}")
        return LayerSpec(kind.name, sizes, start=start, end=end)
    try:
        return LayerSpec("activation", activation=canonical_name(head), start=start, end=end)
    except SpecError:
        known = ", ".join(kind.usage for kind in KINDS.values())
        raise spec_error(text, (start, end), f"unknown layer '{head}'; expected {known}") from None


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
        if key not in KINDS[layer.kind].options or key in changes:
            why = "is repeated" if key in changes else f"does not apply to {layer.kind.replace('_', ' ')} layers"
            raise spec_error(text, span, f"option ':{value}' {why}")
        if key == "activation":
            changes[key] = name
        elif key == "padding":
            changes[key] = value if value in ("same", "valid") else int(value[1:])
        elif key == "classic":
            changes[key] = True
        elif key == "share":
            changes[key] = int(value[5:])
            if changes[key] < 2:
                raise spec_error(text, span, f"':{value}': at least 2 units must share (e.g. d300:share150)")
        elif key == "stride" and "x" in value:
            changes[key] = tuple(int(n) for n in value[1:].split("x"))
            if min(changes[key]) < 1:
                raise spec_error(text, span, f"':{value}': every stride must be at least 1")
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
    if re.fullmatch(r"s\d+(x\d+)*", value):
        return "stride"
    if re.fullmatch(r"d\d+", value):
        return "dilation"
    if re.fullmatch(r"share\d+", value):
        return "share"
    if value == "classic":
        return "classic"
    if re.fullmatch(r"p\d+", value) or value in ("same", "valid"):
        return "padding"
    if re.fullmatch(r"\d*\.?\d+", value):
        return "activation_value"
    return "activation"
