"""Vocabulary, pair generators against their definitions, the pairs file, metrics by hand."""

import datetime as dt
import math

import numpy as np
import pytest
import torch

from capas.data.pairs import DATE_FORMATS, addition_pairs, date_pairs, load_pairs
from capas.data.vocab import EOS, PAD, SPECIALS, UNK, Vocab
from capas.errors import DataError
from capas.tasks.seq2seq_metrics import bleu, bleu_scores, exact_match, token_accuracy


def test_vocab_specials_round_trip_and_the_unknown_rule():
    vocab = Vocab.from_strings(["cab", "ba"])
    assert vocab.tokens == [*SPECIALS, "a", "b", "c"] and len(vocab) == 7
    assert vocab.encode("cab") == [6, 4, 5, EOS] and vocab.encode("") == [EOS]
    assert vocab.decode([6, 4, PAD, 5, EOS, 4]) == "cab"
    with pytest.raises(DataError, match="never seen in training: 'x', 'y'"):
        vocab.encode("axyx")
    assert vocab.encode("axa", unknown="unk") == [4, UNK, 4, EOS] and vocab.decode([4, UNK]) == "a?"
    ids = vocab.encode_batch(["ab", "", "c"])
    assert ids.tolist() == [[4, 5, EOS], [EOS, PAD, PAD], [6, EOS, PAD]]
    assert Vocab.from_tokens(vocab.tokens) == vocab
    with pytest.raises(DataError, match="must start with"):
        Vocab.from_tokens(["a", "b"])


def test_addition_pairs_are_their_sums_distinct_and_held_out():
    pairs = addition_pairs(3000, 3, np.random.default_rng(0))
    assert len(set(pairs)) == 3000
    for source, target in pairs:
        a, b = source.split("+")
        assert 0 <= int(a) < 1000 and 0 <= int(b) < 1000 and int(target) == int(a) + int(b)
        assert a == str(int(a)) and b == str(int(b))  # no leading zeros
    data = load_pairs("addition", n=2000, digits=2, seed=3)
    train = set(data.pairs["train"]) | set(data.pairs["val"])
    assert not train & set(data.pairs["test"]) and len(data.pairs["test"]) == 400
    assert data.x_train.dtype == torch.long and (data.x_train[:, 0] != PAD).all()
    assert [data.source_vocab.decode(row) for row in data.x_test[:5].tolist()] == [s for s, _ in data.pairs["test"][:5]]
    with pytest.raises(DataError, match="distinct sums"):
        addition_pairs(101, 1, np.random.default_rng(0))


@pytest.mark.parametrize("name", ["reverse", "sort"])
def test_letter_tasks_follow_their_definition_and_test_lengths(name):
    data = load_pairs(name, n=1000, min_len=2, max_len=10, alphabet=6, test_min_len=11, test_max_len=15, seed=1)
    for source, target in data.pairs["train"] + data.pairs["val"]:
        assert 2 <= len(source) <= 10 and set(source) <= set("abcdef")
        assert target == (source[::-1] if name == "reverse" else "".join(sorted(source)))
    lengths = {len(s) for s, _ in data.pairs["test"]}
    assert lengths == set(range(11, 16))  # 200 draws cover every length
    assert data.x_test.shape[1] == 16  # 15 symbols + <eos>


def test_date_formats_write_the_date_as_documented():
    date = dt.date(1979, 5, 3)  # a Thursday
    written = {name: f(date) for name, f in DATE_FORMATS.items()}
    assert written["d de mes de yyyy"] == "3 de mayo de 1979"
    assert written["dd/mm/yy"] == "03/05/79"
    assert written["d Month yyyy"] == "3 May 1979"
    assert written["Month dth, yyyy"] == "May 3rd, 1979"
    assert written["Weekday, Month d, yyyy"] == "Thursday, May 3, 1979"
    assert written["día, d de mes de yyyy"] == "jueves, 3 de mayo de 1979"
    assert written["dd-mes-yy"] == "03-may-79" and written["yyyymmdd"] == "19790503"
    assert len(set(written.values())) == len(DATE_FORMATS) == 20


def test_date_pairs_targets_are_iso_dates_of_their_sources():
    pairs = date_pairs(4000, np.random.default_rng(0))
    seen_formats = set()
    for source, target in pairs:
        date = dt.date.fromisoformat(target)
        assert dt.date(1950, 1, 1) <= date <= dt.date(2049, 12, 31)
        matches = [name for name, f in DATE_FORMATS.items() if source.lower() == f(date).lower()]
        assert matches, (source, target)  # the source is the target's date in one of the formats
        seen_formats.update(matches)
    assert seen_formats == set(DATE_FORMATS)
    cases = [s for s, _ in pairs if any(c.isalpha() for c in s)]
    assert any(s.isupper() for s in cases) and any(s.islower() for s in cases)
    assert date_pairs(50, np.random.default_rng(7)) == date_pairs(50, np.random.default_rng(7))


def test_pairs_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    lines = [f"{w}\t{w.upper()}" for w in ("uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho")]
    path.write_text("\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:]) + "\n", encoding="utf-8")
    data = load_pairs("pairs-file", path=str(path), seed=0, validation=0.0)
    assert sorted(data.pairs["train"] + data.pairs["test"]) == sorted(tuple(x.split("\t")) for x in lines)
    assert set(data.source_vocab.tokens[4:]) == set("".join(s for s, _ in data.pairs["train"]))
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:2: expected one tab"):
        load_pairs("pairs-file", path=str(bad))
    with pytest.raises(DataError, match="needs path="):
        load_pairs("pairs-file")
    with pytest.raises(DataError, match="no option digits"):
        load_pairs("dates", digits=3)
    with pytest.raises(DataError, match="unknown pairs dataset"):
        load_pairs("translation")


def test_bleu_by_hand():
    cand, ref = "the cat sat on the mat".split(), "the cat is on the mat".split()
    # p1 = 5/6, p2 = 3/5, p3 = 1/4, equal lengths (BP = 1): (5/6 * 3/5 * 1/4) ** (1/3) = 0.5
    assert bleu([cand], [ref], max_n=3) == pytest.approx(0.5, rel=1e-12)
    assert bleu([cand], [ref], max_n=4) == 0.0  # no 4-gram matches, no smoothing
    # p1 = p2 = 1, BP = exp(1 - 6/2)
    assert bleu([["the", "cat"]], [ref], max_n=2) == pytest.approx(math.exp(-2), rel=1e-12)
    assert bleu([list("1979-05-03")], [list("1979-05-03")]) == 1.0
    # three-word references hold no 4-grams: the order drops to 3, and a perfect output scores 1
    assert bleu([["red", "cat", "sat"], ["a", "dog", "ran"]], [["red", "cat", "sat"], ["a", "dog", "ran"]]) == 1.0
    assert bleu([["red", "cat"]], [["red", "cat", "sat"]]) == 0.0  # no candidate trigram


def test_word_bleu_is_reported_for_text_targets_only():
    # words: p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3, BP = 1: (1/12) ** (1/4)
    scores = bleu_scores(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert scores["word_bleu"] == pytest.approx((1 / 12) ** 0.25, rel=1e-12)
    assert scores["bleu"] == bleu([list("the cat sat on a mat")], [list("the cat sat on the mat")])
    assert bleu_scores(["1979-05-03", "168"], ["1979-05-03", "169"]).keys() == {"bleu"}  # one word each


def test_exact_match_and_token_accuracy_by_hand():
    tgt = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    pred = torch.tensor([[5, 6, EOS], [7, 5, EOS]])  # row 1 does not stop in time
    assert exact_match(pred, tgt).item() == 0.5
    assert token_accuracy(pred, tgt).item() == pytest.approx(4 / 5)  # 3 of 3, then 1 of 2
