"""Seeing inside a CNN: feature maps laid out like the input, the filters, the inputs that
excite a map most (capas.diagnostics.filters), reachable as plot kinds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from capas.diagnostics.filters import FILTER_KINDS, filter_bank, top_inputs
from capas.diagnostics.plots import make_plots
from capas.errors import CapasError
from capas.layers.lenet import LENET_C3_TABLE
from capas.models import build


def test_top_inputs_picks_the_strongest_peaks_per_map():
    maps = torch.zeros(4, 2, 3, 3)
    maps[0, 0, 1, 1], maps[2, 0, 0, 2], maps[3, 0, 2, 2] = 5.0, 9.0, 1.0  # map 0: images 2, 0, 3
    maps[1, 1, 0, 0], maps[3, 1, 1, 0] = 7.0, 8.0  # map 1: images 3, 1
    x = torch.arange(4.0).view(4, 1, 1, 1)
    images, scores = top_inputs(maps, x, 2)
    assert images.flatten(1).tolist() == [[2.0, 0.0], [3.0, 1.0]]
    assert scores.tolist() == [[9.0, 5.0], [8.0, 7.0]]


def test_filter_bank_of_each_convolution_kind():
    net = build("1x12x12 c3x3x4 dw3x3x2 sc3x3x3 mp2 d2", seed=0)
    conv, depthwise, separable = (net.layer(name) for name in ("conv1", "dwconv1", "sepconv1"))
    assert filter_bank(conv).shape == (4, 1, 3, 3) and filter_bank(depthwise).shape == (8, 1, 3, 3)
    assert filter_bank(separable).shape == (8, 1, 3, 3) and filter_bank(net.layer("pool1")) is None
    lenet_c3 = build("6x14x14 pc5x5x16 d2", seed=0).layer("pconv1")
    bank = filter_bank(lenet_c3)
    assert bank.shape == (16, 6, 5, 5)
    assert [tuple(int(i) for i in (bank[o].abs().sum((1, 2)) > 0).nonzero()) for o in range(16)] == [
        tuple(sorted(row)) for row in LENET_C3_TABLE
    ]


def test_the_three_plots_are_written(tmp_path):
    net = build("1x10x10 c3x3x4 mp2 c3x3x6 d3", seed=0)
    data = SimpleNamespace(x_test=torch.rand(30, 1, 10, 10), task="classification")
    paths = make_plots(net, [], data, tmp_path, list(FILTER_KINDS))
    assert [p.name for p in paths] == ["feature-maps-conv1.png", "filters-conv1.png", "top-inputs-conv1.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    second = make_plots(net, [], data, tmp_path, "filters", layer="conv2")
    assert second[0].name == "filters-conv2.png"
    with pytest.raises(CapasError, match="cannot plot filters of 'pool1'"):
        make_plots(net, [], data, tmp_path, "filters", layer="pool1")
    mlp = build("100-5-3", seed=0)
    with pytest.raises(CapasError, match="needs a capas network on image inputs"):
        make_plots(mlp, [], SimpleNamespace(x_test=torch.rand(5, 100), task="classification"), tmp_path, "filters")
