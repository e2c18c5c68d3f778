"""Plain text as character ids, for character-level models.

:func:`read_text` is the one entry point: it reads a UTF-8 file into a :class:`CharText`,
the ids ``(N,)`` int64 of its characters and the vocabulary (the distinct characters in
sorted order, id = position). ``CharText.windows`` cuts the ids into training sequences in
the core's sequence layout (batch first, time on axis 1), and ``to_json``/``from_json`` let a
run directory keep the vocabulary, so generated ids decode to the same characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capas.errors import DataError
from capas.limits import check_fits

#: bytes per character while reading: the str, the id list, the int64 array
BYTES_PER_CHAR = 4 + 8 + 8


@dataclass(eq=False)
class CharText:
    """``ids`` (N,) int64 of a text's characters over ``vocabulary`` (id -> character)."""

    ids: np.ndarray
    vocabulary: list[str]

    @property
    def size(self) -> int:
        """Number of distinct characters (the classes of a next-character model)."""
        return len(self.vocabulary)

    def encode(self, text: str) -> np.ndarray:
        """Ids (len(text),) int64 of ``text``; a character outside the vocabulary is refused."""
        index = {char: k for k, char in enumerate(self.vocabulary)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise DataError(f"characters {''.join(unknown)!r} are not in the vocabulary of {self.size} characters")
        return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids: Any) -> str:
        """The text of ids (any int sequence or array)."""
        values = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(values) and (values.min() < 0 or values.max() >= self.size):
            raise DataError(f"ids must lie in 0..{self.size - 1}, got {values.min()}..{values.max()}")
        return "".join(self.vocabulary[i] for i in values)

    def windows(self, length: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (M, length) and next-character targets (M, length), both int64: window i
        starts at ``i * step``; its target is the same window shifted by one character."""
        if length < 1 or step < 1:
            raise DataError(f"window length and step must be positive, got {length} and {step}")
        if len(self.ids) < length + 1:
            raise DataError(f"the text has {len(self.ids)} characters; windows of {length} need at least {length + 1}")
        starts = np.arange(0, len(self.ids) - length, step)  # (M,)
        offsets = starts[:, None] + np.arange(length)[None, :]  # (M, length)
        return self.ids[offsets], self.ids[offsets + 1]

    def to_json(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> CharText:
        vocabulary = record.get("vocabulary") if isinstance(record, dict) else None
        if not isinstance(vocabulary, list) or not all(isinstance(c, str) and len(c) == 1 for c in vocabulary):
            raise DataError("not a vocabulary record: expected {'vocabulary': [one character each]}")
        return cls(np.zeros(0, dtype=np.int64), vocabulary)


def read_text(path: str | Path) -> CharText:
    """The characters of the UTF-8 text file ``path`` as ids over its sorted vocabulary.

    Refused with a one-line DataError: a missing or empty file, bytes that are not UTF-8,
    a text too large for memory (checked from the file size before reading)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no text file {path}")
    size = path.stat().st_size
    check_fits(size * BYTES_PER_CHAR, f"reading {path} ({size} bytes)", "use a shorter text", DataError)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    if not text:
        raise DataError(f"{path} is empty; give a text file with some characters")
    vocabulary = sorted(set(text))
    index = {char: k for k, char in enumerate(vocabulary)}
    ids = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))  # (N,)
    return CharText(ids, vocabulary)
