"""The sequence layout: (B, T, F) batches, the TxF / TLxF input token, per-step layers."""

from __future__ import annotations

import pytest
import torch

from capas.diagnostics.summary import summarize
from capas.errors import SpecError
from capas.models import Network, build
from capas.notation import parse


@pytest.mark.parametrize(
    "text, canonical, shape, length",
    [
        ("Tx28-64-10", "Tx28 d64 d10", (28,), None),
        ("T50x28-10", "T50x28 d10", (28,), 50),
        ("Tx1x28 c3x8 flat d10", "Tx1x28 c3x8 flat d10", (1, 28), None),
    ],
)
def test_sequence_input_token_round_trips(text, canonical, shape, length):
    spec = parse(text)
    assert (spec.sequence, spec.input_shape, spec.length) == (True, shape, length)
    assert spec.canonical() == canonical and parse(canonical) == spec
    assert spec.time == ("T" if length is None else f"T{length}")
    assert parse("28-10").time is None and parse("28-10") != parse("Tx28-10") != parse("T50x28-10")


@pytest.mark.parametrize("text, column, width", [("T0x28 d3", 0, 5), ("Tx0-3", 0, 3), ("T-3", 0, 1), ("Tx", 0, 2)])
def test_bad_sequence_input_points_at_it(text, column, width):
    with pytest.raises(SpecError, match=r"a sequence input is TxN \(any length\) or TLxN") as info:
        parse(text)
    caret = str(info.value).splitlines()[-1]
    assert (len(caret) - len(caret.lstrip()) - 4, len(caret.strip())) == (column, width)


def test_dense_layers_apply_at_every_step_with_the_per_step_mlps_weights():
    net = build("Tx5-8-3", seed=0)
    mlp = build("5-8-3", seed=0)
    assert net.layer_names() == mlp.layer_names() == ["dense1", "dense2"]
    assert [tuple(p.shape) for p in net.parameters()] == [tuple(p.shape) for p in mlp.parameters()]
    for steps in (7, 4):
        x = torch.randn(2, steps, 5, generator=torch.Generator().manual_seed(steps))
        out = net(x)
        assert out.shape == (2, steps, 3)
        expected = mlp(x.reshape(-1, 5)).reshape(2, steps, 3)
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(out.sum(dim=-1), torch.ones(2, steps))  # softmax per step, not over time
        torch.testing.assert_close(net.logits(x), mlp.logits(x.reshape(-1, 5)).reshape(2, steps, 3))


def test_fixed_length_refuses_other_lengths_in_one_line():
    net = build("T50x5-3")
    assert net(torch.zeros(2, 50, 5)).shape == (2, 50, 3)
    with pytest.raises(SpecError) as info:
        net(torch.zeros(2, 7, 5))
    assert str(info.value) == (
        "this network expects sequences of shape (N, T50, 5) (exactly 50 time steps of 5 features), got (2, 7, 5); "
        "check the spec's first token (T50x5)"
    )
    for bad in (torch.zeros(2, 5), torch.zeros(2, 7, 4), torch.zeros(2, 0, 5)):
        with pytest.raises(SpecError, match=r"expects sequences of shape \(N, T, 5\)"):
            build("Tx5-3")(bad)


def test_summary_prints_the_time_axis_and_counts_the_per_step_parameters():
    summary = summarize("Tx28-64-10")
    assert summary.total_params == summarize("28-64-10").total_params == 28 * 64 + 64 + 64 * 10 + 10
    assert [summary.shape_text(row.output_shape) for row in summary.layers] == ["Tx64", "Tx10"]
    assert summary.flops == summarize("28-64-10").flops  # per time step
    record = summary.to_json()
    assert (
        record["time"] == "T"
        and record["input_shape"] == [None, 28]
        and record["layers"][0]["output_shape"] == [None, 64]
    )
    fixed = summarize("T50x28 res(d28 ln):relu d10")
    assert [(row.name, fixed.shape_text(row.output_shape)) for row in fixed.layers] == [
        ("res1", "T50x28"),
        ("res1.dense1", "T50x28"),
        ("res1.ln1", "T50x28"),
        ("dense2", "T50x10"),
    ]
    assert fixed.flops == 50 * summarize("28 res(d28 ln):relu d10").flops
    assert fixed.to_json()["output_shape"] == [50, 10]
    caption = str(fixed.table().caption)
    assert caption.startswith("input T50x28 -> output T50x10; 1,158 parameters") and "per sample" in caption


def test_hidden_activations_keep_the_time_axis():
    net = build("Tx4 res(d6 d4):relu d3", seed=0)
    x = torch.randn(2, 5, 4)
    assert net.hidden(x, "res1").shape == (2, 5, 4)
    inner = net.hidden(x, "res1.dense1")
    assert inner.shape == (2, 5, 6)
    dense = net.layer("res1.dense1")
    torch.testing.assert_close(inner, dense(x.reshape(10, 4)).reshape(2, 5, 6))


def test_sequence_networks_keep_their_layout_through_the_config():
    net = build("Tx5 d8 drop0.5 d3", seed=0)
    again = Network.from_config(net.config())
    assert (again.sequence, again.sequence_length, again.input_shape) == (True, None, (1, 5))
    assert again.options["spec"] == "Tx5 d8 drop0.5 d3" and not again.is_plain_mlp()


@pytest.mark.parametrize(
    "text, message",
    [
        ("Tx8 d4 d4+0", "skips '+i' are not supported on a sequence input"),
        ("Tx8 c3x4", "write the input as Tx1x8 for a 1-D signal at every step"),
        ("T9x8 rep2(d3)", "map T9x8 (from the input) to T9x3"),
    ],
)
def test_sequence_build_errors(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        build(text)
