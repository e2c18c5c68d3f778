"""Sequence-to-sequence data: (source string, target string) pairs, generated offline and
seeded, or read from the user's tab-separated file.

Why a parallel registry (``PAIR_SOURCES``, :func:`load_pairs`) rather than an entry of
``capas.data.sources``: the tabular registry turns inputs into float32 features and targets
into one class label per sample, while a pair is two sequences of different lengths whose
symbols need a vocabulary. :class:`PairsDataset` *is* a ``capas.data.Dataset`` (int64 ids
``x (N, S)`` and ``y (N, T)`` padded with ``<pad>`` = 0, every row ending in ``<eos>``), so
``capas.fit`` and the Trainer take it as they take any dataset; it adds the two
vocabularies and the strings of every split.

Generators (each a pure function of its options and a ``numpy`` seed):

* ``addition``: ``"123+45" -> "168"``, operands uniform in [0, 10^digits); pairs are
  distinct, so the test sums are held out (never seen in training).
* ``reverse`` / ``sort``: strings over the first ``alphabet`` lowercase letters, lengths
  uniform in [min_len, max_len]; the test split may use other lengths (``test_min_len``,
  ``test_max_len``: length generalisation).
* ``dates``: a date uniform in 1950-01-01..2049-12-31 written in one of ``DATE_FORMATS``
  (English and Spanish month names, full and abbreviated, weekdays, ordinals, numeric
  day/month/year), in lower, title or upper case -> ISO ``YYYY-MM-DD``. Two-digit years
  mean 1950-2049 (``yy >= 50`` -> 19yy). Numeric dates are day first (``03/05/79`` is 3 May):
  the US month-first order would make them ambiguous, so it is not generated.
* ``pairs-file``: ``path`` to a UTF-8 file, one ``source<TAB>target`` pair a line (empty
  lines skipped); a random 20% is the test split. Its vocabularies come from the training
  split; other splits map unseen symbols to ``<unk>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from capas.data.dataset import Dataset
from capas.data.vocab import Vocab
from capas.errors import DataError

Pairs = list[tuple[str, str]]
TEST_FRACTION = 0.2


# ---- generators ----------------------------------------------------------------------------
def addition_pairs(n: int, digits: int, rng: np.random.Generator) -> Pairs:
    """``n`` distinct ``"a+b" -> "a+b evaluated"`` pairs, a and b uniform in [0, 10^digits)."""
    top = 10**digits
    if n > top * top:
        raise DataError(f"only {top * top} distinct sums of {digits}-digit numbers exist; ask for n <= {top * top}")
    codes = rng.choice(top * top, size=n, replace=False) if n > top * top // 4 else _distinct(rng, top * top, n)
    return [(f"{a}+{b}", str(a + b)) for a, b in (divmod(int(c), top) for c in codes)]


def _distinct(rng: np.random.Generator, high: int, n: int) -> list[int]:
    """``n`` distinct integers in [0, high), in the order first drawn (n well below high)."""
    seen: dict[int, None] = {}
    while len(seen) < n:
        for value in rng.integers(0, high, size=2 * (n - len(seen))).tolist():
            seen.setdefault(value)
            if len(seen) == n:
                break
    return list(seen)


def letter_strings(n: int, min_len: int, max_len: int, alphabet: int, rng: np.random.Generator) -> list[str]:
    """``n`` strings over ``a``.. (``alphabet`` letters), lengths uniform in [min_len, max_len]."""
    if not 1 <= alphabet <= 26:
        raise DataError(f"alphabet must be 1..26 letters, got {alphabet}")
    if not 0 <= min_len <= max_len:
        raise DataError(f"lengths must satisfy 0 <= min_len <= max_len, got {min_len}, {max_len}")
    letters = np.array([chr(ord("a") + i) for i in range(alphabet)])
    lengths = rng.integers(min_len, max_len + 1, size=n)
    return ["".join(letters[rng.integers(0, alphabet, size=int(k))]) for k in lengths]


MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]  # fmt: skip
MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
             "noviembre", "diciembre"]  # fmt: skip
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_ES = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


#: name -> how a date is written (each a function of the date); ``dates`` draws one uniformly
DATE_FORMATS: dict[str, Callable[[dt.date], str]] = {
    "d Month yyyy": lambda d: f"{d.day} {MONTHS_EN[d.month - 1]} {d.year}",
    "dd Mon yyyy": lambda d: f"{d.day:02d} {MONTHS_EN[d.month - 1][:3]} {d.year}",
    "d Mon yy": lambda d: f"{d.day} {MONTHS_EN[d.month - 1][:3]} {d.year % 100:02d}",
    "Month d, yyyy": lambda d: f"{MONTHS_EN[d.month - 1]} {d.day}, {d.year}",
    "Mon d yyyy": lambda d: f"{MONTHS_EN[d.month - 1][:3]} {d.day} {d.year}",
    "Month dth, yyyy": lambda d: f"{MONTHS_EN[d.month - 1]} {_ordinal(d.day)}, {d.year}",
    "the dth of Month yyyy": lambda d: f"the {_ordinal(d.day)} of {MONTHS_EN[d.month - 1]} {d.year}",
    "Weekday, Month d, yyyy": lambda d: f"{DAYS_EN[d.weekday()]}, {MONTHS_EN[d.month - 1]} {d.day}, {d.year}",
    "d de mes de yyyy": lambda d: f"{d.day} de {MONTHS_ES[d.month - 1]} de {d.year}",
    "d mes yyyy": lambda d: f"{d.day} {MONTHS_ES[d.month - 1]} {d.year}",
    "dd-mes-yy": lambda d: f"{d.day:02d}-{MONTHS_ES[d.month - 1][:3]}-{d.year % 100:02d}",
    "d mes. yyyy": lambda d: f"{d.day} {MONTHS_ES[d.month - 1][:3]}. {d.year}",
    "día, d de mes de yyyy": lambda d: f"{DAYS_ES[d.weekday()]}, {d.day} de {MONTHS_ES[d.month - 1]} de {d.year}",
    "dd/mm/yy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}",
    "dd/mm/yyyy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",
    "d/m/yyyy": lambda d: f"{d.day}/{d.month}/{d.year}",
    "dd-mm-yyyy": lambda d: f"{d.day:02d}-{d.month:02d}-{d.year}",
    "d.m.yyyy": lambda d: f"{d.day}.{d.month}.{d.year}",
    "yyyy/mm/dd": lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    "yyyymmdd": lambda d: f"{d.year}{d.month:02d}{d.day:02d}",
}
FIRST_DATE, LAST_DATE = dt.date(1950, 1, 1), dt.date(2049, 12, 31)
CASES: tuple[Callable[[str], str], ...] = (str.lower, lambda s: s, str.upper)  # lower, as written, upper


def date_pairs(n: int, rng: np.random.Generator) -> Pairs:
    """``n`` (written date, ISO date) pairs: date, format and case drawn uniformly."""
    span = (LAST_DATE - FIRST_DATE).days + 1
    days = rng.integers(0, span, size=n)
    formats = list(DATE_FORMATS.values())
    chosen = rng.integers(0, len(formats), size=n)
    cases = rng.integers(0, len(CASES), size=n)
    out = []
    for offset, f, c in zip(days.tolist(), chosen.tolist(), cases.tolist()):
        date = FIRST_DATE + dt.timedelta(days=offset)
        out.append((CASES[c](formats[f](date)), date.isoformat()))
    return out


def read_pairs_file(path: str | Path) -> Pairs:
    """The ``source<TAB>target`` lines of ``path`` (empty lines skipped); DataError naming the
    first bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"no pairs file {path}; give a UTF-8 file of source<TAB>target lines") from None
    except (IsADirectoryError, PermissionError) as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}); give a UTF-8 file of pairs") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as UTF-8 (source<TAB>target lines)") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected one tab between source and target, found {len(parts) - 1}")
        pairs.append((parts[0], parts[1]))
    if len(pairs) < 2:
        raise DataError(f"{path} holds {len(pairs)} pair(s); give at least 2 (train and test)")
    return pairs


# ---- the registry ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PairSource:
    """A named source of pairs: ``make(options, rng) -> (train+val pairs, test pairs)``."""

    name: str
    description: str
    defaults: dict[str, Any]
    make: Callable[[dict[str, Any], np.random.Generator], tuple[Pairs, Pairs]]
    vocab_from_train: bool = False  # a user's file: vocabularies of the training split only


def _held_out(pairs: Pairs, rng: np.random.Generator) -> tuple[Pairs, Pairs]:
    order = rng.permutation(len(pairs))
    n_test = max(1, round(TEST_FRACTION * len(pairs)))
    return [pairs[i] for i in order[n_test:]], [pairs[i] for i in order[:n_test]]


def _addition(o: dict[str, Any], rng: np.random.Generator) -> tuple[Pairs, Pairs]:
    pairs = addition_pairs(o["n"], o["digits"], rng)  # distinct: test sums are unseen
    if o["reverse_input"]:
        pairs = [(src[::-1], tgt) for src, tgt in pairs]
    return _held_out(pairs, rng)


def _letters(transform: Callable[[str], str]) -> Callable[[dict[str, Any], np.random.Generator], tuple[Pairs, Pairs]]:
    def make(o: dict[str, Any], rng: np.random.Generator) -> tuple[Pairs, Pairs]:
        n_test = max(1, round(TEST_FRACTION * o["n"]))
        train = letter_strings(o["n"] - n_test, o["min_len"], o["max_len"], o["alphabet"], rng)
        test_min = o["min_len"] if o["test_min_len"] is None else o["test_min_len"]
        test_max = o["max_len"] if o["test_max_len"] is None else o["test_max_len"]
        test = letter_strings(n_test, test_min, test_max, o["alphabet"], rng)
        return [(s, transform(s)) for s in train], [(s, transform(s)) for s in test]

    return make


_LETTERS = {"n": 20000, "min_len": 1, "max_len": 10, "alphabet": 10, "test_min_len": None, "test_max_len": None}
PAIR_SOURCES: dict[str, PairSource] = {
    s.name: s
    for s in (
        PairSource(
            "addition",
            "'123+45' -> '168' (distinct sums)",
            {"n": 50000, "digits": 3, "reverse_input": False},
            _addition,
        ),
        PairSource("reverse", "'abc' -> 'cba'", dict(_LETTERS), _letters(lambda s: s[::-1])),
        PairSource("sort", "'cab' -> 'abc'", dict(_LETTERS), _letters(lambda s: "".join(sorted(s)))),
        PairSource(
            "dates",
            "'3 de mayo de 1979' -> '1979-05-03' (20 formats)",
            {"n": 20000},
            lambda o, rng: _held_out(date_pairs(o["n"], rng), rng),
        ),
        PairSource(
            "pairs-file",
            "your own source<TAB>target file",
            {"path": None},
            lambda o, rng: _held_out(read_pairs_file(o["path"]), rng),
            vocab_from_train=True,
        ),
    )
}


@dataclass(eq=False, repr=False)
class PairsDataset(Dataset):
    """A ``Dataset`` of id sequences: ``x_*`` (N, S) and ``y_*`` (N, T) int64, ``<pad>``-padded,
    each row ending in ``<eos>``; ``pairs[split]`` holds the strings, ``source_vocab`` and
    ``target_vocab`` the symbol tables (``num_classes`` is the target vocabulary's size)."""

    source_vocab: Vocab | None = None
    target_vocab: Vocab | None = None
    pairs: dict[str, Pairs] = field(default_factory=dict)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.pairs.items())
        return f"PairsDataset({self.name!r}, {sizes}, vocab {len(self.source_vocab)}->{len(self.target_vocab)})"


def load_pairs(name: str, *, seed: int = 0, validation: float = 0.1, **options: Any) -> PairsDataset:
    """Generate (or read) the pairs of source ``name`` and split them into train / validation
    / test; ``options`` are the source's (``PAIR_SOURCES[name].defaults``). The same name,
    seed and options give the same dataset."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in PAIR_SOURCES:
        raise DataError(f"unknown pairs dataset {name!r}; available: {', '.join(PAIR_SOURCES)}")
    source = PAIR_SOURCES[key]
    unknown = sorted(set(options) - set(source.defaults))
    if unknown:
        raise DataError(
            f"pairs dataset {key!r} has no option {', '.join(unknown)}; its options: {', '.join(source.defaults)}"
        )
    resolved = {**source.defaults, **options}
    if key == "pairs-file" and resolved["path"] is None:
        raise DataError("the pairs-file dataset needs path=<your source<TAB>target file>")
    if "n" in resolved and (not isinstance(resolved["n"], int) or resolved["n"] < 2):
        raise DataError(f"n must be an integer >= 2, got {resolved['n']!r}")
    if not 0 <= validation < 1:
        raise DataError(f"validation must be a fraction in [0, 1), got {validation!r}")
    rng = np.random.default_rng(seed)
    rest, test = source.make(resolved, rng)
    order = rng.permutation(len(rest))
    n_val = round(validation * len(rest))
    splits = {"train": [rest[i] for i in order[n_val:]], "val": [rest[i] for i in order[:n_val]], "test": test}
    seen = splits["train"] if source.vocab_from_train else [p for part in splits.values() for p in part]
    source_vocab = Vocab.from_strings(s for s, _ in seen)
    target_vocab = Vocab.from_strings(t for _, t in seen)
    tensors = {}
    for split, pairs in splits.items():
        tensors[split] = (
            source_vocab.encode_batch([s for s, _ in pairs], unknown="unk"),
            target_vocab.encode_batch([t for _, t in pairs], unknown="unk"),
        )
    return PairsDataset(
        name=key,
        x_train=tensors["train"][0],
        y_train=tensors["train"][1],
        x_val=tensors["val"][0],
        y_val=tensors["val"][1],
        x_test=tensors["test"][0],
        y_test=tensors["test"][1],
        input_shape=tuple(tensors["train"][0].shape[1:]),
        num_classes=len(target_vocab),
        class_names=list(target_vocab.tokens),
        task="classification",
        preprocessing={"split": {"test": TEST_FRACTION, "validation": validation, "seed": seed}},
        options={"seed": seed, "validation": validation, **resolved},
        source_vocab=source_vocab,
        target_vocab=target_vocab,
        pairs=splits,
    )


def encode_pairs(pairs: Pairs, source_vocab: Vocab, target_vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x (N, S), y (N, T))`` ids of ``pairs`` under the given vocabularies (unknown -> error)."""
    return (
        source_vocab.encode_batch([s for s, _ in pairs]),
        target_vocab.encode_batch([t for _, t in pairs]),
    )
