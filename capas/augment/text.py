"""Text augmentation (course file 001: "sustituyendo, insertando, borrando palabras"):
new sentences from a sentence by word-level edits, with a synonym table the user gives.

For a sentence of n words, each edit is applied independently (Wei & Zou 2019's "EDA"):

- substitute: each word that has synonyms is replaced, with probability ``substitute``,
  by one of them chosen uniformly;
- insert: round(``insert`` * n) times, a synonym of a random word (that has synonyms) is
  inserted at a random position;
- delete: each word is dropped with probability ``delete`` (one word always stays);
- swap: round(``swap`` * n) times, two random positions exchange their words.

Randomness comes from a ``torch.Generator`` (the run's ``augment`` generator), so the same
seed gives the same sentences. Words are strings; the table maps a word to its synonyms
(``{"big": ["large", "huge"]}``); it is used as given (make it symmetric if you want
"large" to become "big" too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from capas.augment.spec import AugmentError


class TextAugmenter:
    """``augmenter(words, generator) -> new words``; rates in [0, 1]."""

    def __init__(
        self,
        synonyms: Mapping[str, Sequence[str]],
        *,
        substitute: float = 0.1,
        insert: float = 0.1,
        delete: float = 0.1,
        swap: float = 0.1,
    ) -> None:
        rates = {"substitute": substitute, "insert": insert, "delete": delete, "swap": swap}
        for name, rate in rates.items():
            if not 0 <= rate <= 1:
                raise AugmentError(f"text augmentation rate {name}={rate!r} must be in [0, 1]")
        if not isinstance(synonyms, Mapping) or not all(
            isinstance(word, str) and not isinstance(options, str) and all(isinstance(o, str) for o in options)
            for word, options in synonyms.items()
        ):
            raise AugmentError("the synonym table maps each word to a list of words, e.g. {'big': ['large']}")
        self.synonyms = {word: list(options) for word, options in synonyms.items() if options}
        self.substitute, self.insert, self.delete, self.swap = substitute, insert, delete, swap

    def __call__(self, words: Sequence[str], generator: torch.Generator) -> list[str]:
        if isinstance(words, str):
            raise AugmentError("give a sentence as a list of words (e.g. text.split()), not one string")
        words = list(words)
        if not words:
            return words

        def below(rate: float) -> bool:
            return bool(torch.rand((), generator=generator) < rate)

        def pick(n: int) -> int:
            return int(torch.randint(n, (), generator=generator))

        words = [self.synonyms[w][pick(len(self.synonyms[w]))] if w in self.synonyms and below(self.substitute) else w for w in words]  # fmt: skip
        for _ in range(round(self.insert * len(words))):
            candidates = [w for w in words if w in self.synonyms]
            if not candidates:
                break
            options = self.synonyms[candidates[pick(len(candidates))]]
            words.insert(pick(len(words) + 1), options[pick(len(options))])
        kept = [w for w in words if not below(self.delete)]
        words = kept or [words[pick(len(words))]]
        for _ in range(round(self.swap * len(words))):
            i, j = pick(len(words)), pick(len(words))
            words[i], words[j] = words[j], words[i]
        return words
