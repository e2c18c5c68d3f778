"""Attention: a decoder state looks at every encoder state and takes their weighted mean.

For a query ``q`` (the decoder's state, (B, Hq)) and keys ``h_1..h_S`` (the encoder's
states, (B, S, Hk)), each variant scores every position, the scores are normalised by a
softmax over the *real* positions, and the context is the weighted sum::

    e_j   = score(q, h_j)                      (B, S)
    a_j   = exp(e_j) / sum_{k real} exp(e_k)   (B, S); a_j = 0 exactly where mask is False
    c     = sum_j a_j h_j                      (B, Hk)

* additive (Bahdanau et al. 2015): ``score = v . tanh(W q + U h_j)``;
* dot (Luong et al. 2015): ``score = q . h_j`` (needs Hq == Hk);
* general (Luong): ``score = q . (W h_j)``.

Every module returns ``(context, weights)``: the weights are never hidden, so plots and
tests read them. A row with no real position is an error (its softmax is undefined); the
encoders always keep ``<eos>``, so no real input is empty.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn

from capas.errors import SpecError


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last axis of ``scores`` (B, S) restricted to ``mask`` (B, S) True:
    masked positions get weight exactly 0; rows sum to 1 over the rest."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


class Attention(nn.Module, abc.ABC):
    """Base: ``forward(query, keys (B, S, Hk), mask (B, S) bool | None) -> (context, weights)``
    for one query per row (B, Hq) -> ((B, Hk), (B, S)), or T queries per row (B, T, Hq) ->
    ((B, T, Hk), (B, T, S)): a decoder whose states are all known (teacher forcing, Luong's
    decoder) attends for every step in one call.

    Subclasses define ``prepare(keys)`` (the part of the score that depends on the keys
    only, computed once per source sequence rather than once per decoder step) and
    ``score(queries (B, T, Hq), prepared) -> (B, T, S)``; a decoder calls :meth:`attend` at
    every step with what ``prepare`` returned once."""

    kind = "attention"

    def prepare(self, keys: Tensor) -> Tensor:
        return keys

    @abc.abstractmethod
    def score(self, queries: Tensor, prepared: Tensor) -> Tensor:
        """Unnormalised scores of every query against every prepared key."""

    def attend(self, query: Tensor, keys: Tensor, prepared: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Context and weights (shapes as ``forward``) from keys already ``prepare``-d."""
        single = query.dim() == 2
        queries = query.unsqueeze(1) if single else query  # (B, T, Hq)
        weights = masked_softmax(self.score(queries, prepared), None if mask is None else mask.unsqueeze(1))
        context = torch.bmm(weights, keys)  # (B, T, Hk)
        return (context.squeeze(1), weights.squeeze(1)) if single else (context, weights)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.attend(query, keys, self.prepare(keys), mask)


class AdditiveAttention(Attention):
    """Bahdanau: ``e_j = v . tanh(W q + U h_j)`` with ``W`` (A, Hq), ``U`` (A, Hk), ``v`` (A,)."""

    kind = "additive"

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int | None = None) -> None:
        super().__init__()
        size = attention_dim or query_dim
        self.W = nn.Linear(query_dim, size, bias=False)
        self.U = nn.Linear(key_dim, size, bias=True)
        self.v = nn.Linear(size, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.U(keys)  # (B, S, A)

    def score(self, queries: Tensor, prepared: Tensor) -> Tensor:
        return self.v(torch.tanh(self.W(queries).unsqueeze(2) + prepared.unsqueeze(1))).squeeze(-1)  # (B, T, S)


class DotAttention(Attention):
    """Luong dot: ``e_j = q . h_j`` (no parameters; Hq must equal Hk)."""

    kind = "dot"

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        if query_dim != key_dim:
            raise SpecError(
                f"dot attention needs the decoder state ({query_dim}) as wide as the encoder states ({key_dim}); "
                "use attention='general' or 'additive'"
            )

    def score(self, queries: Tensor, prepared: Tensor) -> Tensor:
        return torch.bmm(queries, prepared.transpose(1, 2))  # (B, T, S): keys as they are


class GeneralAttention(Attention):
    """Luong general: ``e_j = q . (W h_j)`` with ``W`` (Hq, Hk)."""

    kind = "general"

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.W = nn.Linear(key_dim, query_dim, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.W(keys)  # (B, S, Hq)

    def score(self, queries: Tensor, prepared: Tensor) -> Tensor:
        return torch.bmm(queries, prepared.transpose(1, 2))  # (B, T, S)


ATTENTIONS: dict[str, type[Attention]] = {
    "additive": AdditiveAttention,
    "bahdanau": AdditiveAttention,
    "dot": DotAttention,
    "general": GeneralAttention,
}


def make_attention(name: str, query_dim: int, key_dim: int) -> Attention:
    """The attention module called ``name`` (``additive``/``bahdanau``, ``dot``, ``general``)."""
    if name not in ATTENTIONS:
        raise SpecError(f"unknown attention {name!r}; choose from {', '.join(ATTENTIONS)} or none")
    return ATTENTIONS[name](query_dim, key_dim)
