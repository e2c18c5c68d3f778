"""Course exercises the lead built for issue 19: Hebb's rule, ensembles, the init table."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import capas
from capas.api.ensemble import ensemble
from capas.cli import _register, app
from capas.diagnostics.init_table import init_rows
from capas.errors import CapasError
from capas.models.classic import Hebb

BIPOLAR = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])


def test_hebb_learns_bipolar_and_in_one_epoch_with_the_textbook_weights():
    hebb = Hebb(2)
    (weights,) = hebb.fit(BIPOLAR, torch.tensor([1.0, -1.0, -1.0, -1.0]))
    assert weights.tolist() == [[2.0, 2.0]] and hebb.bias.tolist() == [-2.0]  # Fausett's Hebb net for AND
    assert hebb(BIPOLAR).flatten().tolist() == [1.0, -1.0, -1.0, -1.0]


def test_hebb_never_looks_at_its_error_so_xor_cancels_out():
    hebb = Hebb(2)
    hebb.fit(BIPOLAR, torch.tensor([-1.0, 1.0, 1.0, -1.0]), epochs=3)
    assert hebb.weight.abs().sum().item() == 0.0 and hebb.bias.item() == 0.0  # sum_n t_n x_n = 0 for XOR


def test_ensemble_averages_its_members_probabilities():
    result = ensemble("64-16-10", "digits", n=3, epochs=3)
    data = capas.data.load("digits")
    probabilities = torch.stack([m.model.predict_proba(data.x_test).double() for m in result.members]).mean(0)
    assert torch.allclose(result.outputs, probabilities, atol=1e-6)
    expected = (probabilities.argmax(1) == data.y_test).double().mean().item()
    assert result.score == pytest.approx(expected)
    for member, score in zip(result.members, result.member_scores):
        assert score == pytest.approx(member.test_metrics["test_accuracy"], abs=1e-9)
    assert result.gain == pytest.approx(result.score - sum(result.member_scores) / 3)
    with pytest.raises(CapasError, match="at least 2"):
        ensemble("64-16-10", "digits", n=1)


def test_init_table_gives_capas_spread_and_the_course_formulas():
    rows = {row.layer: row for row in init_rows(capas.build("784-30-10", act="tanh"))}
    hidden = rows["dense1"]
    assert (hidden.fan_in, hidden.fan_out, hidden.scheme) == (784, 30, "glorot_uniform")
    assert hidden.spread == pytest.approx(math.sqrt(6 / 814))
    assert hidden.slide_r == pytest.approx(4 * math.sqrt(6 / 814))  # the course's tanh row carries the 4x
    relu = init_rows(capas.build("1x8x8-c3x3x4-10"))[0]
    assert (relu.fan_in, relu.fan_out, relu.scheme) == (9, 36, "he_uniform")
    assert relu.spread == pytest.approx(math.sqrt(6 / 9))
    assert relu.slide_r == pytest.approx(math.sqrt(2) * math.sqrt(6 / 45))
    weights = capas.build("784-30-10", act="tanh", seed=0).layers[0].weight
    assert weights.abs().max().item() <= hidden.spread  # the drawn weights lie inside the bound


def test_cli_init_option_and_summary_init(tmp_path):
    _register()
    run = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["train", "--data", "xor", "--model", "2-4-2", "--init", "normal", "--epochs", "1", "--out", str(run)]
    )
    assert result.exit_code == 0, result.output
    assert capas.load_model(run).layers[0].init == "normal"
    result = CliRunner().invoke(app, ["summary", str(run), "--init", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])["init"]
    assert [row["scheme"] for row in rows] == ["normal", "normal"] and rows[0]["spread"] == 0.01
    result = CliRunner().invoke(app, ["ensemble", "--model", "2-4-2", "--data", "xor", "--n", "2", "--epochs", "1"])
    assert result.exit_code == 0 and "ensemble of 2" in result.output
