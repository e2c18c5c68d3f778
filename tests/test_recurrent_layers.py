"""Recurrent tokens in the notation: building, last vs every step, summaries, errors, training."""

from __future__ import annotations

import pytest
import torch

import capas
from capas.diagnostics.summary import summarize
from capas.diagnostics.time_gradients import time_gradient_norms
from capas.errors import SpecError, TrainingError
from capas.layers.recurrent import LastStep, Recurrent, sequence_mask
from capas.models import Network, build
from capas.notation import parse
from capas.objectives import Loss
from capas.tasks.sequences import SequenceLoss, padding_mask


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("Tx28-lstm128-last-10", "Tx28 lstm128 last d10"),
        ("T50x2 elman16:relu last d1", "T50x2 elman16:relu last d1"),
        ("Tx3 bigru8x2 d4", "Tx3 bigru8x2 d4"),
        ("Tx3 jordan8x2 so4 grus4 irnn4 bilstm4 bielman4 last d2", None),
        ("Tx40 emb8 lstm16 d40", None),
    ],
)
def test_recurrent_tokens_round_trip(text, canonical):
    spec = parse(text)
    assert spec.canonical() == (canonical or text)
    assert parse(spec.canonical()) == spec
    assert Network.from_config(build(text).config()).options["spec"] == spec.canonical()


def test_list_and_table_forms_build_the_same_network():
    tables = ["Tx5", {"type": "lstm", "units": 8, "layers": 2}, {"type": "last_step"}, {"type": "dense", "units": 3}]
    assert build(tables).options["spec"] == "Tx5 lstm8x2 last d3"
    jordan = build(["Tx5", {"type": "jordan", "units": 8, "outputs": 2, "act": "relu"}])
    assert jordan.options["spec"] == "Tx5 jordan8x2:relu"


def test_every_step_and_last_step_outputs():
    many = build("Tx5 lstm8 d3", seed=0)
    one = build("Tx5 lstm8 last d3", seed=0)
    x = torch.randn(2, 7, 5)
    every, last = many(x), one(x)
    assert every.shape == (2, 7, 3) and last.shape == (2, 3)
    torch.testing.assert_close(last, every[:, -1])  # same weights: the last step of many-to-many
    assert many.output_shape == (1, 3) and one.output_shape == (3,)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    with sequence_mask(mask):
        masked = one(x)
    torch.testing.assert_close(masked[1], one(x[1:, :4])[0])  # the last *real* step


def test_summary_counts_one_bias_per_gate_and_prints_per_step_shapes():
    summary = summarize("Tx28 lstm128 last d10")
    assert summary.total_params == 4 * 128 * (28 + 128 + 1) + 128 * 10 + 10
    assert [summary.shape_text(row.output_shape, row.timed) for row in summary.layers] == ["Tx128", "128", "10"]
    assert summary.to_json()["output_shape"] == [10] and summary.to_json()["layers"][0]["output_shape"] == [None, 128]
    stacked = summarize("T9x4 bigru6x2 d3")
    assert stacked.total_params == 2 * (3 * 6 * (4 + 6 + 1) + 6) + 2 * (3 * 6 * (12 + 6 + 1) + 6) + 12 * 3 + 3
    assert [stacked.shape_text(row.output_shape, row.timed) for row in stacked.layers] == ["T9x12", "T9x3"]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "28 lstm8",
            "'lstm8' reads a sequence, but the input gives 28 features with no time axis; start the spec "
            "with a sequence input such as Tx28",
        ),
        ("Tx1x28 lstm8", "'lstm8' needs a vector at every time step, but the input gives Tx1x28; add 'flat' before it"),
        (
            "Tx4 lstm8 last gru3",
            "'gru3' reads a sequence, but last1 (last) gives 8 features with no time axis; "
            "a 'last' token before it ended the time axis",
        ),
        ("Tx4 res(lstm4)", "reads the time axis and cannot go inside a block"),
        (
            "1x28x28 gru8",
            "'gru8' reads a sequence, but the input gives 1x28x28 with no time axis; read the image "
            "row by row with the input T28x28",
        ),
        ("Tx4 lstm0", "write lstmH[xL] with sizes >= 1"),
        ("Tx4 jordan8", "write jordanHxO with sizes >= 1"),
    ],
)
def test_bad_recurrent_specs_name_the_token_and_shapes(text, message):
    with pytest.raises(SpecError) as info:
        build(text)
    first = str(info.value).splitlines()[0]
    head, _, tail = message.partition(" ... ")
    assert head in first and tail in first


def test_a_recurrent_net_refuses_images_in_one_line():
    with pytest.raises(SpecError, match=r"expects sequences of shape \(N, T, 4\)"):
        build("Tx4 lstm8 last d2")(torch.zeros(3, 1, 4, 4))


def test_padding_mask_and_sequence_loss_count_only_real_steps():
    x = torch.zeros(2, 4, 3)
    x[0, :, 0] = 1
    x[1, :2, 1] = 1
    x[1, 1] = 0  # an all-zero step *inside* a sequence is not padding
    x[1, 0, 2] = 1
    assert padding_mask(x).tolist() == [[True] * 4, [True, False, False, False]]
    x[1, 1, 1] = 1
    mask = padding_mask(x)
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    loss = SequenceLoss(Loss("cross_entropy", num_classes=3))
    logits = torch.randn(2, 4, 3)
    labels = torch.randint(0, 3, (2, 4))
    with sequence_mask(mask):
        value = loss(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
    torch.testing.assert_close(value, expected)


def test_fit_learns_tomita_4_with_padded_variable_lengths():
    data = capas.data.load("tomita", n=400, grammar=4, max_length=8)
    result = capas.fit(
        "Tx2 gru12 last d2", data, epochs=10, batch_size=32, lr=0.02, quiet=True, task_options={"mask_padding": True}
    )
    assert result.test_metrics["test_accuracy"] >= 0.9


def test_fit_with_truncated_bptt_records_it_and_trains(tmp_path):
    data = capas.data.load("adding", n=300, length=10)
    result = capas.fit("Tx2 lstm8 last d1", data, epochs=2, batch_size=50, tbptt=3, quiet=True, out=tmp_path / "run")
    assert result.run_dir is not None and "grad_norm/lstm1" in result.history[-1]
    assert (tmp_path / "run" / "config.json").read_text().count('"tbptt": 3') == 1


def test_time_gradients_vanish_through_an_elman_net_not_an_lstm():
    torch.manual_seed(0)
    x = torch.rand(64, 30, 2)
    y = torch.rand(64, 1)
    loss = Loss("mse")
    elman = build("Tx2 elman16 last d1", seed=0, loss="mse")
    with torch.no_grad():
        elman.layer("elman1").cells[0].weight_hh.mul_(0.5)  # a contracting recurrence
    lstm = build("Tx2 lstm16 last d1", seed=0, loss="mse")
    with torch.no_grad():
        lstm.layer("lstm1").cells[0].bias[16:32] = 5.0  # forget gates open: the cell carries the error
    elman_norms = time_gradient_norms(elman, x, y, loss)["elman1"]
    lstm_norms = time_gradient_norms(lstm, x, y, loss)["lstm1"]
    assert len(elman_norms) == len(lstm_norms) == 30
    assert elman_norms[0] / elman_norms[-1] < 1e-6  # vanished over 30 steps
    assert lstm_norms[0] / lstm_norms[-1] > 1e-2
    assert not any(layer.record for layer in elman.modules() if isinstance(layer, Recurrent))


def test_last_step_refuses_non_sequences():
    with pytest.raises(SpecError, match=r"last: expects sequences \(B, T, F\)"):
        LastStep()(torch.zeros(2, 3))


def test_fit_refuses_nan_sequences_and_wrong_widths_in_one_line():
    x, y = torch.rand(20, 5, 2), torch.rand(20, 1)
    x[3, 2, 1] = float("nan")
    with pytest.raises(TrainingError, match="^training sequence 3 holds NaN or infinite values at time step 2; fix"):
        capas.fit("Tx2 lstm4 last d1", (x, y), epochs=1, quiet=True)
    with pytest.raises(SpecError, match=r"expects sequences of shape \(N, T, 3\) .*got \(1, 5, 2\)"):
        capas.fit("Tx3 lstm4 last d1", (torch.rand(20, 5, 2), y), epochs=1, quiet=True)
