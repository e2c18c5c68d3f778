"""Exact parameter counts, output shapes and FLOPs, checked against hand-worked examples."""

from __future__ import annotations

import json

import pytest
import torch

from capas.diagnostics import summarize
from capas.errors import SpecError
from capas.models import build

# (spec, total parameters, output shape), each worked out by hand in the comment
CASES = [
    # course file 000: 1000 inputs, 300-100-50-20-5-1 units: 300*1001 + 100*301 + 50*101 + 20*51 + 5*21 + 1*6
    ("1000-300-100-50-20-5-1", 336_581, (1,)),
    # LeNet-5 with a full C3 table: 156 + 2,416 + 48,120 + 10,164 + 850
    ("1x32x32 c5x5x6 ap2 c5x5x16 ap2 c5x5x120 d84 d10", 61_706, (10,)),
    # course file 000, "paso 2, salto 2, ancho 4", 100 inputs, 4 free units: 4*(4+1) weights;
    # L_out = floor((100 - 2*(4-1) - 1)/2 + 1) = 47
    ("1x100 c4x4:d2:s2", 20, (4, 47)),
    # course file 000, 100x100 input, stride = dilation = 1, width 4, 5 filters: 5*(16+1); 97x97 out
    ("1x100x100 c4x4x5", 85, (5, 97, 97)),
    # ... a second layer of one filter over the 5 maps: 5*16 + 1 = 81 more; 94x94 out
    ("1x100x100 c4x4x5 c4x4x1", 166, (1, 94, 94)),
    # ... five layers of 5, 4, 3, 2, 1 filters: 85 + 4*81 + 3*65 + 2*49 + 1*33 = 735; 85x85 out
    ("1x100x100 c4x4x5 c4x4x4 c4x4x3 c4x4x2 c4x4x1", 735, (1, 85, 85)),
    # course file 000, Inception: 6 filters of width 4 and 5 of width 3, padded: 6*17 + 5*10; 11 maps
    ("1x100x100 cat(c4x4x6:same, c3x3x5:same)", 152, (11, 100, 100)),
    # ... the same block again on 11 maps: 6*(11*16+1) + 5*(11*9+1) = 1,562 more
    ("1x100x100 cat(c4x4x6:same, c3x3x5:same) cat(c4x4x6:same, c3x3x5:same)", 152 + 1_562, (11, 100, 100)),
    # ... with a 1x1x3 reduction before each block: 2*3*(11+1) + 6*(3*16+1) + 5*(3*9+1) = 506 more
    ("1x100x100 cat(c4x4x6:same, c3x3x5:same) cat(c1x1x3 c4x4x6:same, c1x1x3 c3x3x5:same)", 152 + 506, (11, 100, 100)),
    # course file 000, Xception: 1x1x6 on 11 maps (6*12), then per-map 3x3 (6*9, no bias) and our
    # separable layer's 1x1 pointwise mix to 6 maps (6*6 + 6); the slides' depthwise-only answer is 132
    ("11x100x100 c1x1x6 sc3x3x6", 72 + 54 + 42, (6, 98, 98)),
    # dilation 2 on 28: 28 - 2*(3-1) = 24; 4*(9+1)
    ("1x28x28 c3x3x4:d2", 40, (4, 24, 24)),
    # padding 1, stride 2 on 32: floor((32 + 2 - 2 - 1)/2 + 1) = 16; 16*(3*9+1)
    ("3x32x32 c3x3x16:p1:s2", 448, (16, 16, 16)),
    # max pooling 3 with stride 2 on 10: floor((10 - 3)/2 + 1) = 4; no parameters
    ("1x10x10 mp3:s2", 0, (1, 4, 4)),
    # 1-D: 8 filters of width 5 over 2 channels, stride 2: 8*11 = 88, L = floor(45/2 + 1) = 23;
    # pooling 2 -> 11; dense 8*11 -> 3: 88*3 + 3
    ("2x50 c5x8:s2 mp2 d3", 88 + 267, (3,)),
    # residual, same shape (no projection): 2*(20*20 + 20) + (20*5 + 5)
    ("20 res(d20 d20) d5", 945, (5,)),
    # residual 20 -> 30 with a linear projection: (20*30 + 30) + (20*30 + 30) + (30*5 + 5)
    ("20 res(d30) d5", 1_415, (5,)),
    # residual with stride 2: body 8*(27+1) = 224 to 8x16x16; 1x1 projection with stride 2: 8*(3+1)
    ("3x32x32 res(c3x3x8:s2:p1)", 256, (8, 16, 16)),
    # skip (course file 001, "redes hacia adelante"): 784*30+30, then (30+784)*30+30, then 30*10+10
    ("784-30-30+0-10", 23_550 + 24_450 + 310, (10,)),
    # tied repetition: the 30 -> 30 layer (930) counted once although applied 3 times
    ("784-30-rep3(30)-10", 23_550 + 930 + 310, (10,)),
    # dense maxout, 30 units x 3 pieces: 784*90 + 90, then 30*10 + 10
    ("784 mx30x3 d10", 70_650 + 310, (10,)),
    # conv maxout, 8 maps x 2 pieces of 5x5: 16*(25+1); 24x24 out
    ("1x28x28 cmx5x5x8x2", 416, (8, 24, 24)),
    # separable 3x3 -> 16 on 3 channels: 3*9 (depthwise) + 3*16 + 16 (pointwise)
    ("3x32x32 sc3x3x16", 91, (16, 30, 30)),
    # batch norm on 100 features (gamma, beta) and on 8 conv maps
    ("784 d100 bn d10", 78_500 + 200 + 1_010, (10,)),
    ("3x32x32 c3x3x8 bn", 224 + 16, (8, 30, 30)),
    # layer norm over 8x4x4 maps: 2*128
    ("3x6x6 c3x3x8 ln", 224 + 256, (8, 4, 4)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's performance note
@pytest.mark.parametrize("spec, total, shape", CASES)
def test_hand_worked_counts(spec, total, shape):
    summary = summarize(spec)
    assert summary.total_params == total
    assert summary.output_shape == shape
    model = build(spec)  # a real module agrees with the meta-device summary
    assert sum(p.numel() for p in model.parameters()) == total
    assert model(torch.zeros(2, *model.input_shape)).shape[1:] == shape


def test_lenet_rows_and_flops():
    summary = summarize("1x32x32 c5x5x6 ap2 c5x5x16 ap2 c5x5x120 d84 d10")
    rows = [(r.name, r.output_shape, r.params, r.flops) for r in summary.layers]
    assert rows == [
        ("conv1", (6, 28, 28), 156, 2 * 6 * 28 * 28 * 25),
        ("pool1", (6, 14, 14), 0, 0),
        ("conv2", (16, 10, 10), 2_416, 2 * 16 * 10 * 10 * 6 * 25),
        ("pool2", (16, 5, 5), 0, 0),
        ("conv3", (120, 1, 1), 48_120, 2 * 120 * 16 * 25),
        ("dense1", (84,), 10_164, 2 * 120 * 84),
        ("dense2", (10,), 850, 2 * 84 * 10),
    ]
    assert summary.flops == 833_040 and summary.trainable_params == 61_706


def test_tied_layers_are_counted_once_and_marked_shared():
    summary = summarize("784-30-rep3(30)-10")
    rows = {row.name: row for row in summary.layers}
    assert rows["rep1"].shared and rows["rep1.dense2"].shared and not rows["dense1"].shared
    assert rows["rep1"].params == 930
    assert rows["rep1"].flops == 3 * 2 * 30 * 30  # the work is done three times
    assert sum(row.params for row in summary.layers if row.depth == 0) == summary.total_params


def test_frozen_parameters_are_not_trainable():
    model = build("10-5-2")
    model.layers[0].weight.requires_grad_(False)
    summary = summarize(model)
    assert (summary.total_params, summary.trainable_params) == (67, 67 - 50)


def test_summary_of_a_built_model_matches_the_spec_and_keeps_training_mode():
    model = build("3x8x8 c3x3x4:same bn drop0.5 d5", act="tanh")
    model.train()
    assert summarize(model) == summarize("3x8x8 c3x3x4:same bn drop0.5 d5", act="tanh")
    assert model.training


def test_float64_model_summarizes_like_its_spec():
    spec = "1x6x6 c3x3x2 bn d4"
    assert summarize(build(spec).double()) == summarize(spec)  # the dummy sample follows the weights' dtype


def test_only_networks_and_specs():
    with pytest.raises(SpecError, match="not a Linear"):
        summarize(torch.nn.Linear(3, 2))  # a module capas does not know
    with pytest.raises(SpecError, match="only apply when summarizing a spec"):
        summarize(build("3-2"), act="tanh")


def test_json_shape():
    data = summarize("784-30-10").to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["layers"][0] == {
        "name": "dense1",
        "output_shape": [30],
        "params": 23_550,
        "shared": False,
        "flops": 47_040,
        "depth": 0,
        "connections": 23_550,  # 784 x 30 multiply-adds + 30 biases
    }
    assert (data["total_params"], data["trainable_params"], data["flops"]) == (23_860, 23_860, 47_640)
