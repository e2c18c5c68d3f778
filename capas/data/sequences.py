"""Generated sequence problems (course files 000-002: recurrent nets), each a pure function
of its options and ``seed``; batch-first layout ``x (N, T, F)`` float32 (docs/CORE.md).

=================  =========================================================================
adding             T steps of (value ~ U[0, 1], marker); two markers (one in each half);
                   y = the sum of the two marked values (N, 1). Predicting the mean gives
                   MSE Var(u1 + u2) = 2/12 = 1/6 (Hochreiter & Schmidhuber 1997)
copy-memory        ``memory`` symbols (one-hot), ``delay`` blanks, a delimiter, blanks; y per
                   step (N, T): blank (0) everywhere but the last ``memory`` steps, which
                   repeat the symbols. Guessing blank then uniform symbols gives cross-entropy
                   memory * log(symbols) / T
embedded-reber     one-hot strings of the embedded Reber grammar (7 symbols B T P S X V E),
                   y (N, T, 7): the set of legal next symbols at each step (multi-label)
tomita             binary strings (one-hot 0/1) of length 1..max_length, y = 1 if the string
                   is in Tomita grammar ``grammar`` (1-7), half of each class
temporal-xor       Elman's (1990) bit stream of triples (a, b, a XOR b); y_t = x_{t+1}
parity             bit strings (one-hot), y = parity of the number of 1s; ``variable``: random
                   lengths 1..length, right-padded
sine-forecast,     a window of the series predicts the next ``horizon`` values (N, horizon);
mackey-glass       Mackey-Glass: dx/dt = 0.2 x(t-17) / (1 + x(t-17)^10) - 0.1 x(t)
sequential-mnist   MNIST row by row: 28 steps of 28 pixels, the digit at the end (from mnist)
text               a text file's characters, one-hot windows; y per step = the next character
=================  =========================================================================

Variable lengths: sequences are right-padded with all-zero steps; every real step of a
symbol sequence is one-hot, so ``capas.tasks.sequences.padding_mask`` recovers the mask
(train them with ``task_options={"mask_padding": True}``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from capas.data.formats import Arrays
from capas.errors import DataError
from capas.limits import check_fits


def _count(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"option {name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise DataError(f"option {name} must be an integer <= {maximum}, got {value!r}")
    return int(value)


def _samples(n: object, values_per_sample: int) -> int:
    n = _count("n", n, 2)
    check_fits(
        n * values_per_sample * 16, f"generating {n:,} sequences", "use a smaller n or shorter sequences", DataError
    )
    return n


def one_hot(ids: np.ndarray, width: int) -> np.ndarray:
    """ids (..., ) int -> (..., width) float32; ids < 0 give all-zero rows (padding)."""
    out = np.zeros((*ids.shape, width), dtype=np.float32)
    valid = ids >= 0
    out[valid, ids[valid]] = 1.0
    return out


def _padded(sequences: list[list[int]], width: int) -> np.ndarray:
    """Lists of symbol ids -> one-hot (N, T_max, width), padded with all-zero steps."""
    steps = max(len(s) for s in sequences)
    ids = np.full((len(sequences), steps), -1, dtype=np.int64)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = sequence
    return one_hot(ids, width)


# ---- the adding problem and copy memory --------------------------------------------------------


def adding(n: int = 10000, length: int = 50, seed: int = 0) -> Arrays:
    """x (n, T, 2): column 0 ~ U[0, 1], column 1 marks two steps (one in each half);
    y (n, 1) = the sum of the two marked values."""
    length = _count("length", length, 2)
    n = _samples(n, 2 * length)
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=2)
    y = values[rows, first] + values[rows, second]
    return Arrays(x.astype(np.float32), y[:, None].astype(np.float32))


def copy_memory(n: int = 5000, symbols: int = 8, memory: int = 10, delay: int = 20, seed: int = 0) -> Arrays:
    """Inputs one-hot over blank (0), the symbols 1..S and the delimiter S+1; T = delay +
    2 * memory. y (n, T): 0 (blank) but for the last ``memory`` steps, the symbols again."""
    symbols, memory, delay = _count("symbols", symbols, 1), _count("memory", memory, 1), _count("delay", delay, 1)
    steps = delay + 2 * memory
    n = _samples(n, steps * (symbols + 3))
    rng = np.random.default_rng(seed)
    sequence = rng.integers(1, symbols + 1, size=(n, memory))
    ids = np.zeros((n, steps), dtype=np.int64)
    ids[:, :memory] = sequence
    ids[:, memory + delay - 1] = symbols + 1  # the delimiter: "now repeat"
    y = np.zeros((n, steps), dtype=np.int64)
    y[:, -memory:] = sequence
    return Arrays(one_hot(ids, symbols + 2), y)


# ---- grammars -----------------------------------------------------------------------------------

REBER_SYMBOLS = "BTPSXVE"
#: the Reber grammar: state -> [(symbol, next state)], each taken with equal probability
REBER = {0: [("T", 1), ("P", 2)], 1: [("S", 1), ("X", 3)], 2: [("T", 2), ("V", 4)], 3: [("X", 2), ("S", 5)],
         4: [("P", 3), ("V", 5)], 5: [("E", None)]}  # fmt: skip


def reber_string(rng: np.random.Generator) -> tuple[str, list[set[str]]]:
    """A Reber string (B ... E) and, at each position, the symbols that may follow it."""
    text, legal, state = "B", [{"T", "P"}], 0
    while state is not None:
        symbol, state = REBER[state][rng.integers(len(REBER[state]))]
        text += symbol
        legal.append({s for s, _ in REBER[state]} if state is not None else set())
    return text, legal


def embedded_reber_string(rng: np.random.Generator) -> tuple[str, list[set[str]]]:
    """B, T or P, a Reber string, the same T or P, E; with the legal next symbols."""
    branch = "TP"[rng.integers(2)]
    inner, inner_legal = reber_string(rng)
    inner_legal[-1] = {branch}  # after the inner E only the branch symbol may follow
    text = "B" + branch + inner + branch + "E"
    legal = [{"T", "P"}, {"B"}, *inner_legal, {"E"}, set()]
    return text, legal


def embedded_reber(n: int = 2000, seed: int = 0) -> Arrays:
    """x (n, T, 7): one-hot strings without their final E, padded; y (n, T, 7): 1 for each
    legal next symbol at each step (0 at padded steps)."""
    n = _samples(n, 7 * 80)
    rng = np.random.default_rng(seed)
    strings, targets = [], []
    for _ in range(n):
        text, legal = embedded_reber_string(rng)
        strings.append([REBER_SYMBOLS.index(c) for c in text[:-1]])
        targets.append(legal[:-1])
    x = _padded(strings, 7)
    y = np.zeros_like(x)
    for i, legal in enumerate(targets):
        for t, allowed in enumerate(legal):
            y[i, t, [REBER_SYMBOLS.index(c) for c in allowed]] = 1.0
    return Arrays(x, y)


def _runs(bits: str) -> list[str]:
    return ["".join(group) for _, group in itertools.groupby(bits)]


def _tomita_3(bits: str) -> bool:
    """No odd-length run of 1s immediately followed by an odd-length run of 0s."""
    runs = _runs(bits)
    return not any(
        a[0] == "1" and len(a) % 2 and b[0] == "0" and len(b) % 2 for a, b in zip(runs, runs[1:], strict=False)
    )


def _runs_from_zero(w: str) -> str:
    """The pattern of runs of w ('0101'...), from a leading 0-run (empty if w starts with 1)."""
    pattern = "".join(run[0] for run in _runs(w))
    return pattern if pattern.startswith("0") else "0" + pattern


TOMITA: dict[int, Callable[[str], bool]] = {
    1: lambda w: "0" not in w,  # 1*
    2: lambda w: len(w) % 2 == 0 and w == "10" * (len(w) // 2),  # (10)*
    3: _tomita_3,
    4: lambda w: "000" not in w,
    5: lambda w: w.count("0") % 2 == 0 and w.count("1") % 2 == 0,
    6: lambda w: (w.count("0") - w.count("1")) % 3 == 0,
    7: lambda w: len(_runs_from_zero(w)) <= 4,  # 0*1*0*1*
}


def tomita(n: int = 2000, grammar: int = 4, max_length: int = 12, seed: int = 0) -> Arrays:
    """x (n, T, 2) one-hot bits, padded; y (n,) = membership in Tomita grammar ``grammar``.
    Every non-empty string up to ``max_length`` is enumerated and each class drawn half
    the time (uniformly among its strings), so the rare classes (grammars 1, 2) are seen."""
    grammar = _count("grammar", grammar, 1, 7)
    max_length = _count("max_length", max_length, 1, 20)
    n = _samples(n, 2 * max_length)
    words = ["".join(bits) for k in range(1, max_length + 1) for bits in itertools.product("01", repeat=k)]
    member = np.array([TOMITA[grammar](w) for w in words])
    classes = [np.flatnonzero(~member), np.flatnonzero(member)]
    if any(len(c) == 0 for c in classes):
        raise DataError(f"Tomita grammar {grammar} has no strings of one class up to length {max_length}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    chosen = [classes[label][rng.integers(len(classes[label]))] for label in y]
    x = _padded([[int(c) for c in words[i]] for i in chosen], 2)
    return Arrays(x, y.astype(np.int64))


def temporal_xor(n: int = 1000, triples: int = 10, seed: int = 0) -> Arrays:
    """Bit streams of ``triples`` triples (a, b, a XOR b): x (n, T, 1) with T = 3 * triples - 1
    and y (n, T, 1) = x shifted one step (the next bit); only every third is predictable."""
    triples = _count("triples", triples, 1)
    n = _samples(n, 6 * triples)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, size=(2, n, triples))
    stream = np.stack([a, b, a ^ b], axis=2).reshape(n, 3 * triples).astype(np.float32)
    return Arrays(stream[:, :-1, None], stream[:, 1:, None])


def parity(n: int = 2000, length: int = 10, variable: bool = False, seed: int = 0) -> Arrays:
    """x (n, T, 2) one-hot bits, y (n,) = (number of 1s) mod 2; with ``variable`` each string
    has a length drawn from 1..length and is right-padded."""
    length = _count("length", length, 1)
    n = _samples(n, 2 * length)
    if not isinstance(variable, bool):
        raise DataError(f"option variable must be true or false, got {variable!r}")
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, length))
    lengths = rng.integers(1, length + 1, size=n) if variable else np.full(n, length)
    ids = np.where(np.arange(length)[None, :] < lengths[:, None], bits, -1)
    y = (np.where(ids > 0, 1, 0).sum(axis=1) % 2).astype(np.int64)
    return Arrays(one_hot(ids, 2), y)


# ---- forecasting --------------------------------------------------------------------------------


def mackey_glass_series(length: int, tau: int = 17, seed: int = 0, step: float = 0.1) -> np.ndarray:
    """Mackey-Glass sampled at t = 0, 1, 2... (Euler steps of ``step``), after a transient of
    500; dx/dt = 0.2 x(t - tau) / (1 + x(t - tau)^10) - 0.1 x(t), x = 1.2 + U[-0.1, 0.1] before 0."""
    rng = np.random.default_rng(seed)
    per_unit = round(1 / step)
    delay = tau * per_unit
    total = (length + 500) * per_unit
    x = np.empty(total + delay)
    x[: delay + 1] = 1.2 + rng.uniform(-0.1, 0.1)
    for i in range(delay, total + delay - 1):
        lagged = x[i - delay]
        x[i + 1] = x[i] + step * (0.2 * lagged / (1 + lagged**10) - 0.1 * x[i])
    return x[delay + 500 * per_unit :: per_unit][:length].astype(np.float64)


def _windows(series: np.ndarray, n: int, window: int, horizon: int) -> Arrays:
    starts = np.arange(n)[:, None]
    x = series[starts + np.arange(window)[None, :]][..., None]  # (n, window, 1)
    y = series[starts + window + np.arange(horizon)[None, :]]  # (n, horizon)
    return Arrays(x.astype(np.float32), y.astype(np.float32))


def sine_forecast(
    n: int = 2000, window: int = 20, horizon: int = 1, noise: float = 0.0, period: float = 25.0, seed: int = 0
) -> Arrays:
    """x (n, window, 1) of s_t = sin(2 pi t / period + phase) + noise N(0, 1); y (n, horizon)
    the values that follow. Samples in time order (the registry holds out the last ones)."""
    window, horizon = _count("window", window, 1), _count("horizon", horizon, 1)
    n = _samples(n, window + horizon)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise DataError(f"option noise must be a number >= 0, got {noise!r}")
    if isinstance(period, bool) or not isinstance(period, (int, float)) or period <= 0:
        raise DataError(f"option period must be a number > 0, got {period!r}")
    rng = np.random.default_rng(seed)
    t = np.arange(n + window + horizon)
    series = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) + noise * rng.standard_normal(t.shape)
    return _windows(series, n, window, horizon)


def mackey_glass(n: int = 2000, window: int = 20, horizon: int = 1, tau: int = 17, seed: int = 0) -> Arrays:
    """Windows of the Mackey-Glass series (see :func:`mackey_glass_series`); y (n, horizon)."""
    window, horizon, tau = _count("window", window, 1), _count("horizon", horizon, 1), _count("tau", tau, 1)
    n = _samples(n, window + horizon)
    series = mackey_glass_series(n + window + horizon, tau, seed)
    return _windows(series, n, window, horizon)


def persistence_mse(x: np.ndarray, y: np.ndarray) -> float:
    """The persistence forecast's MSE: every future value predicted as the window's last."""
    return float(((y - x[:, -1, :1]) ** 2).mean())


# ---- images as sequences and text ---------------------------------------------------------------


def rows_of_images(x: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) images -> (N, H, W): one row of W pixels per step, top to bottom."""
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"row-by-row sequences need single-channel images (N, 1, H, W), got {x.shape}")
    return x[:, 0]


def read_text(path: str | Path, max_chars: int | None = None) -> tuple[np.ndarray, list[str]]:
    """A UTF-8 text file -> (character ids (L,) int64, vocabulary: the sorted distinct characters).
    One function, so the files reader (issue 15) and this one can merge."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"text file {path} does not exist; give the path of a UTF-8 text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); convert it to UTF-8") from None
    text = text[:max_chars] if max_chars else text
    if len(text) < 2:
        raise DataError(f"{path} has {len(text)} character(s); character-level text needs at least 2")
    vocabulary = sorted(set(text))
    index = {c: i for i, c in enumerate(vocabulary)}
    return np.array([index[c] for c in text], dtype=np.int64), vocabulary


def text_windows(path: str = "", window: int = 64, n: int = 2000, seed: int = 0) -> Arrays:
    """x (n, window, V) one-hot characters of ``path``, y (n, window) the next character of
    each step; windows start at random offsets drawn from ``seed``."""
    if not path:
        raise DataError("dataset 'text' needs the option path=<a UTF-8 text file>, e.g. --data-option path=book.txt")
    ids, vocabulary = read_text(path)
    window = _count("window", window, 1)
    if len(ids) <= window:
        raise DataError(f"{path} has {len(ids)} characters; a window of {window} needs at least {window + 1}")
    n = _samples(n, window * (len(vocabulary) + 1))
    starts = np.random.default_rng(seed).integers(0, len(ids) - window, size=n)[:, None] + np.arange(window)[None, :]
    return Arrays(one_hot(ids[starts], len(vocabulary)), ids[starts + 1])


def text_vocabulary(path: str) -> list[str]:
    """The vocabulary (sorted characters) ``text_windows`` uses for ``path``."""
    return read_text(path)[1]
