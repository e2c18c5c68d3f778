"""Random and malformed specs: each either builds a model whose summary matches the real
module (unique parameter count, forward-pass output shape), or raises SpecError."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capas.diagnostics import summarize
from capas.errors import SpecError
from capas.models import Network, build

size = st.integers(min_value=1, max_value=4)
act = st.sampled_from(["", "", ":tanh", ":relu"])
window_options = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", "", ":s2"]),
    st.sampled_from(["", "", ":d2"]),
    st.sampled_from(["", "", ":p1", ":same", ":valid"]),
)


def window(rank: int) -> st.SearchStrategy[str]:
    """'KxK' for images, 'K' for signals; vectors get either (an error the builder must catch)."""
    square = st.builds("{0}x{0}".format, size)
    return {1: size.map(str), 2: square}.get(rank, size.map(str) | square)


def layer_tokens(rank: int) -> st.SearchStrategy[str]:
    """Random layer tokens, biased towards windows that match an input of ``rank`` spatial dims."""
    simple = st.one_of(
        st.builds("d{}{}".format, size, act),
        st.builds("mx{}x{}".format, size, size),
        st.builds("c{}x{}{}{}".format, window(rank), size, window_options, act),
        st.builds("sc{}x{}{}".format, window(rank), size, window_options),
        st.builds("cmx{}x{}x{}{}".format, window(rank), size, size, window_options),
        st.builds("{}{}{}".format, st.sampled_from(["mp", "ap"]), size, st.sampled_from(["", ":s1", ":s2"])),
        st.builds("drop{:.2f}".format, st.floats(0, 0.9)),
        st.sampled_from(["bn", "ln", "flat", "relu", "tanh", "softmax", "leaky_relu:0.3", "4"]),
    )
    return st.recursive(
        simple,
        lambda inner: st.one_of(
            st.builds("res({}){}".format, st.lists(inner, min_size=1, max_size=3).map(" ".join), act),
            st.builds("rep{}({})".format, st.integers(1, 3), st.lists(inner, min_size=1, max_size=2).map(" ".join)),
            st.builds("cat({})".format, st.lists(inner, min_size=1, max_size=3).map(", ".join)),
        ),
        max_leaves=6,
    )


INPUTS = {
    0: st.builds(str, st.integers(1, 12)),
    1: st.builds("{}x{}".format, st.integers(1, 3), st.integers(1, 12)),
    2: st.builds("{}x{}x{}".format, st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
}
LAYERS = {rank: layer_tokens(rank) for rank in INPUTS}


@st.composite
def well_formed(draw) -> str:
    """Input shape, then 1-4 layers, each with a 1-in-4 chance of a skip from an earlier token."""
    rank = draw(st.sampled_from([0, 1, 2]))
    tokens = [draw(INPUTS[rank])]
    for index in range(1, draw(st.integers(1, 4)) + 1):
        skip = draw(st.sampled_from(["", "", "", f"+{draw(st.integers(0, index - 1))}"]))
        tokens.append(draw(LAYERS[rank]) + skip)
    return draw(st.sampled_from([" ", "-"])).join(tokens)


bad_token = st.sampled_from(
    [
        "d0",
        "c0x3",
        "foo",
        "x3",
        ")",
        "(",
        ",",
        "+1",
        ":",
        "res(",
        "rep0(d2)",
        "cat()",
        "mp2x2x2",
        "d2x2",
        "d3:s0",
        "d3:q",
        "d3:0.2",
        "drop1.2",
        "res(d2+0)",
        "mp2:tanh",
        "c3x3x3:s2:s2",
        "elu:x",
        "rep2(",
        "cat(d2,)",
    ]
)
malformed = st.one_of(
    st.builds(
        lambda spec, bad, at: " ".join(spec.split()[:at] + [bad] + spec.split()[at:]),
        well_formed(),
        bad_token,
        st.integers(0, 5),
    ),
    st.text(alphabet="0123456789xcdmpa():+,-. sbnrel", max_size=30),
)


def check(spec: str, loss: str) -> bool:
    """Build ``spec``; False on SpecError, else assert the summary matches the module."""
    try:
        model = build(spec, loss=loss, seed=0)
    except SpecError:
        return False
    summary = summarize(model)
    unique = {id(p): p for p in model.parameters()}
    assert summary.total_params == sum(p.numel() for p in unique.values())
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, *model.input_shape))
    assert tuple(out.shape[1:]) == summary.output_shape == model.output_shape
    assert summarize(spec, loss=loss) == summary  # the meta-device summary agrees with the real one
    again = Network.from_config(model.config())
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    return True


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's performance note
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed(), st.sampled_from(["cross_entropy", "mse"]))
def test_random_specs_build_consistently_or_raise_spec_error(spec, loss):
    check(spec, loss)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed)
def test_malformed_specs_raise_spec_error(spec):
    check(spec, "cross_entropy")
