"""Sequence generators checked against their definitions (tests make their own data)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from capas.data import load
from capas.data import sequences as seq
from capas.errors import DataError
from capas.tasks.sequences import padding_mask


def test_adding_problem_target_is_the_sum_of_the_two_marked_values():
    data = seq.adding(n=20000, length=30, seed=1)
    x, y = data.x_train, data.y_train[:, 0]
    markers = x[:, :, 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :15].sum(1) == 1).all() and (markers[:, 15:].sum(1) == 1).all()  # one in each half
    np.testing.assert_allclose(y, (x[:, :, 0] * markers).sum(1), rtol=1e-6)
    assert abs(((y - y.mean()) ** 2).mean() - 1 / 6) < 0.01  # predicting the mean: MSE 1/6


def test_copy_memory_repeats_its_symbols_after_the_delimiter():
    data = seq.copy_memory(n=50, symbols=5, memory=4, delay=6, seed=2)
    ids = data.x_train.argmax(2)
    assert data.x_train.shape == (50, 14, 7) and (data.x_train.sum(2) == 1).all()
    assert (ids[:, 9] == 6).all() and (ids[:, 4:9] == 0).all() and (ids[:, 10:] == 0).all()  # delimiter at delay-1
    np.testing.assert_array_equal(data.y_train[:, -4:], ids[:, :4])
    assert (data.y_train[:, :-4] == 0).all() and (ids[:, :4] >= 1).all()


_L3 = "(XT*VP)*(S|XT*VV)"
REBER = f"B(TS*X{_L3}|PT*V(V|P{_L3}))E"
EMBEDDED_REBER = re.compile(f"B(T{REBER}T|P{REBER}P)E")


def test_embedded_reber_strings_are_in_the_grammar_and_targets_are_the_legal_next_symbols():
    rng = np.random.default_rng(3)
    branches = []
    for _ in range(300):
        text, legal = seq.embedded_reber_string(rng)
        assert EMBEDDED_REBER.fullmatch(text), text
        for t in range(len(text) - 1):
            assert text[t + 1] in legal[t] and len(legal[t]) <= 2  # the symbol that came next was legal
        assert legal[:3] == [{"T", "P"}, {"B"}, {"T", "P"}] and legal[-2:] == [{"E"}, set()]
        assert legal[len(text) - 3] == {text[1]}  # after the inner E: the branch symbol only
        # inside the Reber string every state offers two symbols, but the last, which ends it
        inner = [legal[t] for t in range(3, len(text) - 3)]
        assert all(len(options) == 2 for options in inner[:-1]) and inner[-1] == {"E"}
        branches.append(text[1])
    assert 0.4 < branches.count("T") / len(branches) < 0.6
    data = seq.embedded_reber(n=40, seed=4)
    mask = padding_mask(torch.from_numpy(data.x_train)).numpy()
    assert (data.y_train[~mask] == 0).all() and (data.y_train[mask].sum(1) >= 1).all()


TOMITA_REGEX = {1: "1*", 2: "(10)*", 7: "0*1*0*1*"}


@pytest.mark.parametrize("grammar", range(1, 8))
def test_tomita_labels_follow_each_grammar(grammar):
    data = seq.tomita(n=400, grammar=grammar, max_length=8, seed=grammar)
    lengths = data.x_train.sum((1, 2)).astype(int)
    assert 0.4 < data.y_train.mean() < 0.6  # half of each class
    for x, n, label in zip(data.x_train, lengths, data.y_train, strict=True):
        word = "".join(str(int(step.argmax())) for step in x[:n])
        assert not x[n:].any()
        if grammar in TOMITA_REGEX:
            expected = re.fullmatch(TOMITA_REGEX[grammar], word) is not None
        elif grammar == 4:
            expected = "000" not in word
        elif grammar == 5:
            expected = word.count("0") % 2 == 0 and word.count("1") % 2 == 0
        elif grammar == 6:
            expected = (word.count("0") - word.count("1")) % 3 == 0
        else:
            expected = re.search("(^|0)(11)*1(00)*0($|1)", word) is None  # odd 1-run then odd 0-run
        assert bool(label) == expected, word


def test_tomita_3_examples():
    accepted, rejected = ["1", "0", "110", "100", "1100", "0110", "11000"], ["10", "1000", "01110", "11101", "111000"]
    assert all(seq.TOMITA[3](w) for w in accepted) and not any(seq.TOMITA[3](w) for w in rejected)


def test_temporal_xor_every_third_bit_is_the_xor_of_the_two_before():
    data = seq.temporal_xor(n=20, triples=5, seed=5)
    stream = np.concatenate([data.x_train[:, :1, 0], data.y_train[:, :, 0]], axis=1).astype(int)  # (n, 15)
    np.testing.assert_array_equal(stream[:, 2::3], stream[:, 0::3] ^ stream[:, 1::3])
    np.testing.assert_array_equal(data.x_train[:, 1:], data.y_train[:, :-1])


@pytest.mark.parametrize("variable", [False, True])
def test_parity_counts_the_ones_of_the_real_steps(variable):
    data = seq.parity(n=200, length=7, variable=variable, seed=6)
    x = data.x_train
    np.testing.assert_array_equal(data.y_train, x[:, :, 1].sum(1) % 2)
    lengths = x.sum((1, 2))
    assert (lengths == 7).all() != variable and lengths.min() >= 1
    for row, n in zip(x, lengths.astype(int), strict=True):
        assert (row[:n].sum(1) == 1).all() and not row[n:].any()


def test_forecasting_windows_continue_the_series():
    for data in (seq.sine_forecast(n=50, window=6, horizon=3, seed=7), seq.mackey_glass(n=50, window=6, horizon=3)):
        x, y = data.x_train[:, :, 0], data.y_train
        np.testing.assert_array_equal(x[1:, -1], y[:-1, 0])  # the next window ends on the value that followed
        np.testing.assert_array_equal(y[:-1, 1:], y[1:, :-1])
    sine = seq.sine_forecast(n=30, window=4, period=10.0, seed=8).x_train[:, :, 0]
    phase = np.arcsin(np.clip(sine[0, 0], -1, 1))
    assert np.isclose(np.abs(sine[0, 1]), np.abs(np.sin(phase + 2 * np.pi / 10)), atol=1e-5) or np.isclose(
        np.abs(sine[0, 1]), np.abs(np.sin(np.pi - phase + 2 * np.pi / 10)), atol=1e-5
    )
    persistence = seq.persistence_mse(np.array([[[1.0], [2.0]]]), np.array([[3.0, 5.0]]))
    assert persistence == pytest.approx((1 + 9) / 2)


def test_mackey_glass_follows_its_delay_equation():
    series = seq.mackey_glass_series(200, tau=17, seed=0, step=1.0)  # one Euler step per sample
    lagged, now = series[:-18], series[17:-1]
    np.testing.assert_allclose(series[18:], now + 0.2 * lagged / (1 + lagged**10) - 0.1 * now, rtol=1e-12)
    assert 0.2 < series.min() and series.max() < 1.5


def test_images_become_rows_and_text_becomes_next_character_targets(tmp_path):
    images = np.arange(2 * 28 * 28).reshape(2, 1, 28, 28)
    rows = seq.rows_of_images(images)
    assert rows.shape == (2, 28, 28) and (rows[1, 3] == images[1, 0, 3]).all()
    with pytest.raises(DataError, match="single-channel images"):
        seq.rows_of_images(np.zeros((2, 3, 4, 4)))
    path = tmp_path / "book.txt"
    path.write_text("abracadabra, abracadabra!\n" * 3, encoding="utf-8")
    data = seq.text_windows(str(path), window=5, n=30, seed=9)
    ids, vocabulary = seq.read_text(path)
    assert vocabulary == sorted(set(path.read_text())) and data.x_train.shape == (30, 5, len(vocabulary))
    x_ids = data.x_train.argmax(2)
    np.testing.assert_array_equal(x_ids[:, 1:], data.y_train[:, :-1])
    text = path.read_text()
    for row_x, row_y in zip(x_ids, data.y_train, strict=True):
        window = "".join(vocabulary[i] for i in row_x) + vocabulary[row_y[-1]]
        assert window in text
    dataset = load("text", path=str(path), window=5, n=40)
    assert dataset.num_classes == len(vocabulary) and dataset.y_train.shape[1:] == (5,)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("adding", {"length": 1}, "option length must be an integer >= 2"),
        ("tomita", {"grammar": 8}, "option grammar must be an integer <= 7"),
        ("text", {}, "needs the option path="),
        ("text", {"path": "/nonexistent/book.txt"}, "does not exist"),
        ("parity", {"variable": "yes"}, "option variable must be true or false"),
    ],
)
def test_bad_options_are_one_line_errors(name, options, message):
    with pytest.raises(DataError, match=re.escape(message)):
        load(name, **options)


def test_registered_sequence_datasets_load_with_their_layout():
    adding = load("adding", n=100, length=12)
    assert adding.x_train.shape[1:] == (12, 2) and adding.task == "regression"
    copy = load("copy-memory", n=100, delay=4)
    assert copy.y_train.shape[1:] == (24,) and copy.num_classes == 9  # per-step labels, not stratified
    reber = load("embedded-reber", n=50)
    assert reber.x_train.shape[2] == 7 and reber.y_train.shape == reber.x_train.shape
