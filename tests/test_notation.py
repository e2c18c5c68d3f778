"""The spec parser: what each token means, canonical round trips, and caret errors."""

from __future__ import annotations

import pytest

from capas.errors import SpecError
from capas.notation import LayerSpec, parse


def test_mlp_dash_form_is_the_token_form():
    assert parse("784-30-10") == parse("784 d30 d10") == parse("784 30 10") == parse(" 784 - 30-10 ")
    assert parse("784-res(d30)-10") == parse("784 res(d30) d10")
    assert parse("784 drop0.00000000001 d10").layers[0].rate == 1e-11  # decimals are not "too large"
    spec = parse("784-30-10")
    assert spec.input_shape == (784,)
    assert [(layer.kind, layer.sizes) for layer in spec.layers] == [("dense", (30,)), ("dense", (10,))]


def test_token_meanings():
    spec = parse(
        "3x32x32 c3x3x8:s2:p1:d2:tanh sc3x3x16:same cmx5x5x8x3 mp2:s1 ap3 drop0.25 bn ln flat mx30x3 relu d10+0"
    )
    kinds = [layer.kind for layer in spec.layers]
    assert kinds == [
        "conv",
        "separable_conv",
        "conv_maxout",
        "max_pool",
        "avg_pool",
        "dropout",
        "batch_norm",
        "layer_norm",
        "flatten",
        "maxout",
        "activation",
        "dense",
    ]
    conv = spec.layers[0]
    assert (conv.sizes, conv.stride, conv.padding, conv.dilation, conv.activation) == ((3, 3, 8), 2, 1, 2, "tanh")
    assert spec.layers[1].padding == "same"
    assert spec.layers[3].stride == 1 and spec.layers[4].stride is None
    assert spec.layers[5].rate == 0.25
    assert spec.layers[-1].sources == (0,)
    assert parse("4 leaky_relu:0.3").layers[0].activation == "leaky_relu:0.3"
    assert parse("4 d3:logistic").layers[0].activation == "sigmoid"  # aliases become canonical


def test_blocks_nest():
    spec = parse("8 res(d8 rep2(d8:tanh)):relu cat(d3, d4 d5)")
    res, cat = spec.layers
    assert res.kind == "residual" and res.activation == "relu"
    tied = LayerSpec("dense", (8,), activation="tanh")
    assert res.branches[0][1] == LayerSpec("repeat", times=2, branches=((tied,),))
    assert cat.kind == "concat" and [len(b) for b in cat.branches] == [1, 2]


@pytest.mark.parametrize(
    "text",
    [
        "784-30-10",
        "1x28x28 c5x5x6 mp2 c5x5x16 mp2 d120 d84 d10",
        "2x100 c4x4:d2:s2:valid ap2:s1 flat d3:sigmoid",
        "3x16x16 res(c3x3x8:same bn c3x3x8:same):relu cat(c1x1x3 c3x3x4:same, mp3:s1) d10",
        "8 d6 d6+0 rep3(d6 drop0.5) mx4x2+1+2 leaky_relu:0.2",
    ],
)
def test_canonical_text_round_trips(text):
    spec = parse(text)
    again = parse(spec.canonical())
    assert again == spec and again.canonical() == spec.canonical()


def caret_column(message: str) -> tuple[int, int]:
    """(first column, width) of the caret line under the quoted spec."""
    caret = message.splitlines()[-1]
    return len(caret) - len(caret.lstrip()) - 4, len(caret.strip())


@pytest.mark.parametrize(
    "text, message, column, width",
    [
        ("", "starts with the input shape", 0, 1),
        ("d30 d10", "expected the input shape first", 0, 3),
        ("784 d30 foo d10", "unknown layer 'foo'", 8, 3),
        ("784 d0", "dN with N >= 1", 4, 2),
        ("784 d30:s2", "':s2' does not apply to dense layers", 7, 3),
        ("784 d30:tanh:relu", "':relu' is repeated", 12, 5),
        ("784 d30:swish", "unknown activation 'swish'", 7, 6),
        ("784 res(d30 d30", "expected ')' to close the 'res('", 15, 1),
        ("784 d30 )", "unexpected ')'", 8, 1),
        ("784 rep(d30)", "rep followed by a count", 4, 3),
        ("784 d30 +0", "must be attached to a layer token", 8, 1),
        ("784 d30+1", "must name an earlier token: 0 (the input) to 0", 4, 5),
        ("784 res(d30+0)", "only allowed on top-level layers", 11, 2),
        ("784 drop1.5", "dropout probability must be in [0, 1)", 4, 7),
        ("784 mx30x3x2", "mxNxK", 4, 8),
        ("784 res(d3, d4)", "only cat(...) takes several", 4, 11),
        ("784 cat(d3,)", "empty layer list", 4, 8),
        ("784 d3(d4)", "not a block", 4, 3),
        ("784 mp2:same", "does not apply to max pool layers", 7, 5),
        ("784 mp2:s1:", "empty ':'", 10, 1),
        ("784 d10:leaky_relu:nan", "unknown activation 'nan'", 18, 4),
        ("784-30-", "a '-' goes between two layers", 6, 1),
        ("784--10", "a '-' goes between two layers", 3, 2),
        ("-784-10", "a '-' goes between two layers", 0, 1),
        ("784-res(-d30)", "a '-' goes between two layers", 8, 1),
        ("784-99999999999999999999-10", "is too large", 4, 20),
        ("1x8x8 c3x3x1234567890", "is too large", 11, 10),
    ],
)
def test_errors_point_at_the_bad_token(text, message, column, width):
    with pytest.raises(SpecError) as info:
        parse(text)
    text_line = str(info.value).splitlines()[-2]
    assert message in str(info.value)
    assert text_line.strip() == text.strip()
    assert caret_column(str(info.value)) == (column, width)


def test_sequence_input_is_the_first_token_only():
    spec = parse("T20x3x8 c3x3x4 flat d5")
    assert (spec.sequence, spec.length, spec.input_shape, spec.canonical()) == (
        True,
        20,
        (3, 8),
        "T20x3x8 c3x3x4 flat d5",
    )
    with pytest.raises(SpecError, match="unknown layer 'Tx8'"):
        parse("8 Tx8 d3")
    with pytest.raises(
        SpecError, match=r"expected the input shape first \(N, CxL or CxHxW with sizes >= 1\), got 'x28'"
    ):
        parse("x28 d3")
