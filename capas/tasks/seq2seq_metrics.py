"""Metrics of generated sequences: exact match, per-token accuracy, BLEU (over characters,
and over words when the targets are text).

Tensors of ids follow the encoder-decoder layout: targets ``tgt`` (B, T) end in ``<eos>``
and are padded with ``<pad>``; decoded ``pred`` (B, L) likewise (any L).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor

from capas.data.vocab import PAD


def aligned(pred: Tensor, tgt: Tensor) -> Tensor:
    """``pred`` (B, L) cut or padded with ``<pad>`` to the target's T positions: (B, T)."""
    B, T = tgt.shape
    if pred.shape[1] >= T:
        return pred[:, :T]
    return torch.cat([pred, pred.new_full((B, T - pred.shape[1]), PAD)], dim=1)


def token_hits(pred: Tensor, tgt: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T) bool: position t of row b holds the target's symbol; and the mask of real
    target positions (``<eos>`` included: stopping at the right place is part of the answer)."""
    mask = tgt != PAD
    return (aligned(pred, tgt) == tgt) & mask, mask


def token_accuracy(pred: Tensor, tgt: Tensor) -> Tensor:
    """Share of real target positions (``<eos>`` included) that ``pred`` gets right (0-dim)."""
    hits, mask = token_hits(pred, tgt)
    return hits.sum() / mask.sum().clamp(min=1)


def exact_match(pred: Tensor, tgt: Tensor) -> Tensor:
    """Share of rows whose output equals the target up to and including ``<eos>`` (0-dim)."""
    hits, mask = token_hits(pred, tgt)
    return (hits == mask).all(dim=1).float().mean()


def bleu(candidates: Sequence[Sequence[str]], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Corpus BLEU (Papineni et al. 2002) with one reference per candidate, in [0, 1]:
    ``BP * exp(mean_n log p_n)``, ``p_n`` the clipped n-gram precision summed over the corpus
    (n = 1..max_n), ``BP = min(1, exp(1 - r / c))`` with r and c the total reference and
    candidate lengths. Any ``p_n`` of 0 gives 0 (no smoothing). Tokens are whatever the
    sequences hold: characters for capas's character vocabularies, words if split first.

    The order is capped at the longest reference: a corpus of three-word sentences holds no
    4-grams, and BLEU-4 would score even a perfect output 0, so it is scored as BLEU-3."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
    max_n = max(1, min(max_n, max((len(r) for r in references), default=1)))
    matched, total = [0] * max_n, [0] * max_n
    c_len = r_len = 0
    for cand, ref in zip(candidates, references):
        c_len, r_len = c_len + len(cand), r_len + len(ref)
        for n in range(1, max_n + 1):
            c_grams = Counter(tuple(cand[i : i + n]) for i in range(len(cand) - n + 1))
            r_grams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            matched[n - 1] += sum(min(count, r_grams[g]) for g, count in c_grams.items())
            total[n - 1] += sum(c_grams.values())
    if c_len == 0 or any(m == 0 for m in matched):
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total)) / max_n
    brevity = 1.0 if c_len > r_len else math.exp(1 - r_len / c_len)
    return brevity * math.exp(log_precision)


def bleu_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``{"bleu": character BLEU}`` of decoded strings against their references, plus
    ``"word_bleu"`` (BLEU over whitespace-separated words, the usual score for translation)
    when some reference holds a space, i.e. the targets are text. Targets without spaces
    (``"168"``, ``"1979-05-03"``) are one word each: their word BLEU would be 0 for want of
    bigrams, so it is not reported."""
    scores = {"bleu": bleu([list(c) for c in candidates], [list(r) for r in references])}
    if any(" " in r.strip() for r in references):
        scores["word_bleu"] = bleu([c.split() for c in candidates], [r.split() for r in references])
    return scores
