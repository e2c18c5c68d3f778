"""``capas draw``: what is drawn matches the model (checked on the drawing's record, not pixels)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import capas
from capas.cli import _register, app
from capas.diagnostics.draw import NEGATIVE, NEUTRAL, POSITIVE, draw, shown_units
from capas.errors import CapasError
from capas.models.rbm import RBM


def test_shown_units_elides_the_middle_and_keeps_the_last_two():
    assert shown_units(5, 10) == (0, 1, 2, 3, 4)
    assert shown_units(784, 10) == (0, 1, 2, 3, 4, 5, 6, 7, 782, 783)


def test_units_drawing_of_784_30_10_counts_and_colours_its_lines(tmp_path):
    net = capas.build("784-30-10", act="sigmoid", seed=3)
    drawing = draw(net, tmp_path / "net.png", weights=True)
    assert drawing.style == "units"
    assert [(c.size, len(c.indices)) for c in drawing.columns] == [(784, 10), (30, 10), (10, 10)]
    assert len(drawing.lines) == 10 * 10 + 10 * 10  # shown sources x shown targets, per layer
    for line in drawing.lines:
        w = net.layers[line.layer - 1].weight[line.target, line.source].item()
        assert line.weight == pytest.approx(w)
        assert line.color == (POSITIVE if w >= 0 else NEGATIVE)
    first = [line for line in drawing.lines if line.layer == 1]
    largest = max(first, key=lambda line: abs(line.weight))
    smallest = min(first, key=lambda line: abs(line.weight))
    assert largest.width == pytest.approx(3.0) and smallest.width < largest.width
    assert (tmp_path / "net.png").stat().st_size > 5000


def test_a_bare_spec_draws_structure_only(tmp_path):
    drawing = draw(capas.build("2-3-1"), tmp_path / "net.svg")
    assert len(drawing.lines) == 2 * 3 + 3 * 1
    assert {line.color for line in drawing.lines} == {NEUTRAL} and all(line.weight is None for line in drawing.lines)
    assert (tmp_path / "net.svg").read_text().lstrip().startswith("<?xml")


def test_lenet_is_drawn_as_volumes_labelled_with_the_summary_shapes(tmp_path):
    spec = "1x32x32-c5x5x6-mp2-c5x5x16-mp2-d120-d84-10"
    drawing = draw(capas.build(spec), tmp_path / "lenet.png")
    rows = {row.name: row.output_shape for row in capas.summarize(spec).layers}
    volumes = [box for box in drawing.boxes if box.kind == "volume"]
    assert [box.label for box in volumes] == ["1@32x32", "6@28x28", "6@14x14", "16@10x10", "16@5x5"]
    bars = [box for box in drawing.boxes if box.kind == "bar"]
    assert [box.label for box in bars] == [str(rows[name][0]) for name in ("dense1", "dense2", "dense3")]


def test_blocks_are_framed_with_their_inner_layers(tmp_path):
    net = capas.build("64-res(d64-d64)-cat(d8,d8-d8)-rep2(d16)-10")
    drawing = draw(net, tmp_path / "blocks.png")
    kinds = [(box.kind, box.depth) for box in drawing.boxes]
    assert ("res", 0) in kinds and ("cat", 0) in kinds and ("rep", 0) in kinds
    inner = [box.name for box in drawing.boxes if box.depth == 1]
    assert inner == ["res1.dense1", "res1.dense2", "cat1.dense3", "cat1.dense4", "cat1.dense5", "rep1.dense6"]
    rep = next(box for box in drawing.boxes if box.kind == "rep")
    assert "x2" in rep.label


def test_bad_outputs_and_models_are_one_line_errors(tmp_path):
    with pytest.raises(CapasError, match=r"\.png or \.svg"):
        draw(capas.build("2-3-1"), tmp_path / "net.txt")
    with pytest.raises(CapasError, match="not an RBM"):
        draw(RBM(4, 2), tmp_path / "r.png")


def test_cli_draws_a_trained_run_with_its_weights(tmp_path):
    run = tmp_path / "run"
    capas.fit(capas.build("2-4-2", seed=0), "xor", epochs=2, out=run, quiet=True)
    _register()
    result = CliRunner().invoke(app, ["draw", str(run), "--out", str(tmp_path / "xor.png"), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["style"] == "units" and record["lines"] == 2 * 4 + 4 * 2
    assert (tmp_path / "xor.png").is_file()
    # the run's trained weights, not fresh ones: the drawing's weights are the saved ones
    drawing = draw(capas.load_model(run), tmp_path / "again.png", weights=True)
    saved = capas.load_model(run).layers[0].weight
    assert all(line.weight == pytest.approx(saved[line.target, line.source].item()) for line in drawing.lines[:8])


def test_a_recurrent_net_is_drawn_unrolled_in_time(tmp_path):
    drawing = draw(capas.build("T50x28-lstm64-last-10"), tmp_path / "lstm.png")
    assert drawing.style == "unrolled"
    assert [box.name for box in drawing.boxes if box.name.startswith("lstm1")] == [
        "lstm1@1",
        "lstm1@2",
        "lstm1@3",
        "lstm1@50",
    ]
    assert [box.name for box in drawing.boxes if box.name.startswith("dense1")] == ["dense1@50"]  # many-to-one
    recurrence = [(a.source, a.target) for a in drawing.arrows if a.kind == "recurrence"]
    assert recurrence == [("lstm1@1", "lstm1@2"), ("lstm1@2", "lstm1@3"), ("lstm1@3", "lstm1@50")]
    assert ("lstm1@50", "dense1@50", "feed") in [(a.source, a.target, a.kind) for a in drawing.arrows]


def test_jordan_feeds_back_its_output_and_bidirectional_runs_both_ways(tmp_path):
    jordan = draw(capas.build("T3x1-jordan8x1"), tmp_path / "jordan.png")
    assert {a.kind for a in jordan.arrows} == {"feed", "output"}  # y_{t-1} -> h_t, no hidden recurrence
    assert [b.name for b in jordan.boxes if b.name.startswith("x@")] == ["x@1", "x@2", "x@3"]  # T3: every step
    both = draw(capas.build("Tx3-bigru16-last-5"), tmp_path / "bigru.png")
    forward = {(a.source, a.target) for a in both.arrows if a.kind == "recurrence"}
    backward = {(a.target, a.source) for a in both.arrows if a.kind == "backward"}
    assert forward == backward and len(forward) == 3
