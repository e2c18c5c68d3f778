"""A character vocabulary with the four special tokens of an encoder-decoder.

Ids 0-3 are always ``<pad>`` (padding, masked out everywhere), ``<sos>`` (the decoder's
first input), ``<eos>`` (ends every encoded sequence, so an empty string is one token long)
and ``<unk>``; the symbols seen in the training strings follow in sorted order, so the
same strings always give the same ids.

**The rule for unknown symbols**: :meth:`Vocab.encode` raises a one-line ``DataError``
naming the symbols the vocabulary lacks (``unknown="error"``, the default, used by
``capas translate``: a date with a letter never seen in training is refused, not guessed),
or maps each of them to ``<unk>`` (``unknown="unk"``, for noisy text). The model never
trains on ``<unk>`` unless the training strings hold symbols outside a given alphabet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from torch import Tensor

from capas.errors import DataError

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<sos>", "<eos>", "<unk>")
Unknown = Literal["error", "unk"]


class Vocab:
    """Symbol <-> id table: ``tokens[i]`` is the symbol of id ``i`` (ids 0-3 the specials).

    Args:
        symbols: the ordinary symbols (single characters), without the specials.
    """

    def __init__(self, symbols: Iterable[str]) -> None:
        ordinary = sorted(set(symbols) - set(SPECIALS))
        bad = [s for s in ordinary if not isinstance(s, str) or len(s) != 1]
        if bad:
            raise DataError(f"a vocabulary holds single characters, got {bad[0]!r}")
        self.tokens: list[str] = [*SPECIALS, *ordinary]
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> Vocab:
        """The vocabulary of every character in ``strings``."""
        return cls(ch for text in strings for ch in text)

    @classmethod
    def from_tokens(cls, tokens: Sequence[str]) -> Vocab:
        """Inverse of :attr:`tokens` (what ``model.json`` stores); DataError if the specials
        are not first."""
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise DataError(f"a stored vocabulary must start with {', '.join(SPECIALS)}; got {list(tokens[:4])}")
        vocab = cls(tokens[len(SPECIALS) :])
        if vocab.tokens != list(tokens):
            raise DataError("a stored vocabulary must list its symbols once each, in sorted order")
        return vocab

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.tokens == self.tokens

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {''.join(self.tokens[len(SPECIALS) :])!r})"

    def unknown_symbols(self, text: str) -> list[str]:
        """The symbols of ``text`` outside the vocabulary, each once, in order."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.index))

    def encode(self, text: str, *, unknown: Unknown = "error") -> list[int]:
        """Ids of ``text``'s characters followed by ``<eos>`` (so ``""`` -> ``[EOS]``);
        unknown symbols follow the module's rule (``unknown``: ``"error"`` or ``"unk"``)."""
        if not isinstance(text, str):
            raise DataError(f"can only encode text, got {type(text).__name__}")
        missing = self.unknown_symbols(text)
        if missing and unknown == "error":
            shown = ", ".join(repr(ch) for ch in missing[:8])
            raise DataError(
                f"{text[:40]!r} holds symbols never seen in training: {shown}; the model knows "
                f"{''.join(self.tokens[len(SPECIALS) :])!r}"
            )
        return [self.index.get(ch, UNK) for ch in text] + [EOS]

    def encode_batch(self, texts: Sequence[str], *, length: int | None = None, unknown: Unknown = "error") -> Tensor:
        """``(N, L)`` int64 ids, each row ``encode(text)`` padded with ``<pad>`` to ``L`` (the
        longest row, or ``length``; DataError if a row is longer)."""
        rows = [self.encode(text, unknown=unknown) for text in texts]
        longest = max((len(r) for r in rows), default=1)
        width = longest if length is None else length
        if longest > width:
            raise DataError(f"a sequence of {longest - 1} symbols does not fit in {width} positions")
        out = torch.full((len(rows), width), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` up to the first ``<eos>``; ``<pad>``/``<sos>`` are skipped and
        ``<unk>`` is written as the one character ``?``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, SOS):
                continue
            out.append("?" if i == UNK else self.tokens[i])
        return "".join(out)

    def symbols(self, ids: Iterable[int]) -> list[str]:
        """Each id's token, specials included (labels of a heatmap's axis)."""
        return [self.tokens[int(i)] for i in ids]
