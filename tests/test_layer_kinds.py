"""The layer-kind registry: every kind is one record, and one record is enough for a new kind."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from capas.diagnostics.summary import summarize
from capas.errors import SpecError
from capas.layers.kinds import KINDS, LayerKind, register_kind, unregister_kind
from capas.models import build
from capas.notation import parse


class Gain(nn.Module):
    """Toy layer: each feature/channel times a learned gain, initialised to ``value``."""

    def __init__(self, channels: int, rank: int, value: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.full((channels, *[1] * (rank - 1)), float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain  # (N, C, *S)


GAIN = LayerKind(
    "gain",
    "gain",
    lambda layer, shape, context: (Gain(shape[0], len(shape), layer.sizes[0]), shape),
    lambda table, dims, entry: f"gain{table['value']}",
    "gain",
    counts=(1,),
    syntax="write gainN with a gain N >= 1, e.g. gain2",
    usage="gainN",
    table_keys=frozenset({"value"}),
    table_required=("value",),
)


@pytest.fixture
def gain_kind():
    register_kind(GAIN)
    try:
        yield GAIN
    finally:
        unregister_kind("gain")


def test_one_record_adds_a_kind_to_parser_tables_builder_names_and_summary(gain_kind):
    spec = parse("4-gain2-3")
    assert [layer.kind for layer in spec.layers] == ["gain", "dense"]
    assert spec.canonical() == "4 gain2 d3" and parse(spec.canonical()) == spec
    net = build("4-gain2-gain3-3", seed=0)
    assert net.layer_names() == ["gain1", "gain2", "dense1"]
    x = torch.arange(8.0).reshape(2, 4)
    assert torch.equal(net.layers[1](net.layers[0](x)), 6 * x)
    summary = summarize("4-gain2-gain3-3")
    assert [(row.name, row.params) for row in summary.layers] == [("gain1", 4), ("gain2", 4), ("dense1", 15)]
    assert summary.total_params == 23
    table_net = build(["4", {"type": "gain", "value": 2}, {"type": "gain", "value": 3}, "3"], seed=0)
    assert table_net.options["spec"] == net.options["spec"] == "4 gain2 gain3 d3"
    image = build("3x8x8 gain2 c3x3x4", seed=0)
    assert image.layers[0].gain.shape == (3, 1, 1) and image.output_shape == (4, 6, 6)
    sequence = build("Tx4 gain2 d3", seed=0)
    assert sequence(torch.ones(2, 5, 4)).shape == (2, 5, 3)


def test_a_registered_kind_gets_the_generic_errors(gain_kind):
    with pytest.raises(SpecError, match=r"'gain0': write gainN with a gain N >= 1") as info:
        parse("4 gain0 d3")
    assert info.value.args[0].splitlines()[-1] == "      ^^^^^"
    with pytest.raises(SpecError, match="option ':tanh' does not apply to gain layers"):
        parse("4 gain2:tanh")
    with pytest.raises(SpecError, match=r"unknown layer 'zz'; expected dN, .*, cat\(\.\.\.\), .*, gainN\n"):
        parse("4 zz")
    with pytest.raises(SpecError, match=r"layer table of type 'gain': unknown keys \[\], missing \['value'\]"):
        build(["4", {"type": "gain"}])


def test_removing_the_record_removes_the_kind():
    register_kind(GAIN)
    assert build("4 gain2 d3").layer_names() == ["gain1", "dense1"]
    unregister_kind("gain")
    with pytest.raises(SpecError, match="unknown layer 'gain2'"):
        parse("4 gain2 d3")
    with pytest.raises(SpecError, match="needs 'type' = one of input, dense"):
        build(["4", {"type": "gain", "value": 2}])


def test_a_taken_name_or_token_is_refused():
    with pytest.raises(SpecError, match="taken by 'dense'"):
        register_kind(LayerKind("dense2", "d", GAIN.build, GAIN.table_head, "dense"))
    with pytest.raises(SpecError, match="taken by 'maxout'"):
        register_kind(LayerKind("maxout", "mxx", GAIN.build, GAIN.table_head, "maxout"))
    with pytest.raises(SpecError, match="form must be one of"):
        LayerKind("odd", "odd", GAIN.build, GAIN.table_head, "odd", form="word")
    assert "dense2" not in KINDS and KINDS["maxout"].token == "mx"


def test_records_hold_what_the_builder_used_to_hard_code():
    prefixes = {name: kind.prefix for name, kind in KINDS.items()}
    assert prefixes == {
        "dense": "dense",
        "maxout": "maxout",
        "conv": "conv",
        "separable_conv": "sepconv",
        "conv_maxout": "convmaxout",
        "max_pool": "pool",
        "avg_pool": "pool",
        "dropout": "drop",
        "batch_norm": "bn",
        "layer_norm": "ln",
        "flatten": "flat",
        "activation": "act",
        "residual": "res",
        "repeat": "rep",
        "concat": "cat",
    } | {  # issue 14's convolutions, 13's up-sampling, 11's recurrent layers
        "depthwise_conv": "dwconv",
        "local": "local",
        "partial_conv": "pconv",
        "subsampling": "sub",
        "global_avg_pool": "gap",
        "rbf": "rbf",
        "transposed_conv": "tconv",
        "upsample": "up",
        "elman": "elman",
        "irnn": "irnn",
        "lstm": "lstm",
        "gru": "gru",
        "gru_slides": "gru",
        "bi_elman": "bielman",
        "bi_lstm": "bilstm",
        "bi_gru": "bigru",
        "jordan": "jordan",
        "second_order": "so",
        "embedding": "emb",
        "last_step": "last",
    }
    assert {name for name, kind in KINDS.items() if kind.flattens} == {"dense", "maxout", "rbf"}
    assert {name for name, kind in KINDS.items() if kind.output_slot} == {
        "dense",
        "conv",
        "separable_conv",
        "residual",
        "activation",
        "depthwise_conv",
        "local",
        "subsampling",
        "partial_conv",
        "transposed_conv",
    }
    net = build("1x8x8 c3x3x2 sc1x1x2 mp2 ap1 flat res(d4 d4) bn drop0.1 ln mx3 relu cat(d2, d2) rep2(d4)")
    assert net.layer_names() == [
        "conv1",
        "sepconv1",
        "pool1",
        "pool2",
        "flat1",
        "res1",
        "bn1",
        "drop1",
        "ln1",
        "maxout1",
        "act1",
        "cat1",
        "rep1",
        "act2",
    ]
    assert [name for name, _ in net.named_layers(nested=True)][5:8] == ["res1", "res1.dense1", "res1.dense2"]


def test_a_kind_builds_from_a_token_and_a_shape():
    from capas.layers.kinds import BuildContext

    context = BuildContext("tanh", "the input", None, None, body=None)
    module, shape = KINDS["conv"].build(parse("1x28x28 c5x5x6:s1").layers[0], (1, 28, 28), context)
    assert shape == (6, 24, 24) and module.activation.name == "tanh"
    assert sum(p.numel() for p in module.parameters()) == 5 * 5 * 6 + 6
    module, shape = KINDS["maxout"].build(parse("4 mx3").layers[0], (2, 2), context)
    assert shape == (3,) and module.weight.shape == (6, math.prod((2, 2)))
