"""The encoder-decoder (sequence-to-sequence) network, with or without attention.

The course's answer to sequences whose output length differs from the input's (file 001,
"Procesado de secuencias generales"): (1) an *encoder*, recurrent or feed-forward, turns
the source into a compact representation; (2) a *decoder* generates the target from it, one
symbol at a time, each step fed the previous symbol.

Shapes: source ids ``src`` (B, S), target ids ``tgt`` (B, T) (each row ends in ``<eos>``,
padded with ``<pad>`` = 0), encoder states (B, S, E), logits (B, T, V), attention weights
(B, T, S).

* Encoders: ``rnn`` (Elman, tanh), ``lstm``, ``gru`` (torch's layers over packed sequences,
  so padding never reaches a state; optionally bidirectional and stacked), or ``conv``: a
  feed-forward stack of 1-D convolutions over symbol + position embeddings (no recurrence).
* Summary: the recurrent encoder's last states (both directions), or the conv encoder's
  masked mean, through ``tanh(Linear)``: the decoder's first state.
* Decoder: one ``rnn``/``lstm``/``gru`` layer of width E (so Luong's dot attention applies),
  run one step at a time (a length-1 sequence), ``logits_t = Linear([h_t; c_t])``. Styles:

  - ``bahdanau`` (default): the context ``c_t`` is computed from the previous state
    ``h_{t-1}`` and fed in: ``h_t = RNN([embed(y_{t-1}); c_t], h_{t-1})``;
  - ``luong``: ``h_t = RNN(embed(y_{t-1}), h_{t-1})``, then ``c_t`` from ``h_t`` (no input
    feeding). Under full teacher forcing every ``h_t`` is known at once, so training runs the
    decoder over the whole target in one call and attends for all steps in one batched
    product (several times faster than step by step);
  - without attention, ``c_t`` is the fixed summary, fed in at every step (Cho et al. 2014).
* Decoding: :meth:`greedy` and :meth:`beam_search` (width 1 is greedy).

Bad input (``translate``): unknown symbols raise (``capas.data.vocab``'s rule); an empty
string is refused; a source longer than the longest training source is refused unless
``allow_longer=True`` (the conv encoder cannot go past its ``max_positions`` at all).
Decoding stops at ``<eos>`` or after ``max(max_target_len, 2 S) + 1`` steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from capas.data.vocab import EOS, PAD, SOS, Vocab
from capas.errors import DataError, SpecError
from capas.layers.attention import ATTENTIONS, make_attention
from capas.models.registry import register

RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
ENCODERS = (*RECURRENT, "conv")


class Memory(NamedTuple):
    """What the decoder reads at every step, computed once per source batch."""

    states: Tensor  # (B, S, E) encoder states
    prepared: Tensor | None  # (B, S, A) the keys' part of the attention score (None without attention)
    mask: Tensor  # (B, S) True at real source positions
    summary: Tensor  # (B, E) the compact representation

    def expand(self, n: int) -> Memory:
        """A batch-of-one memory repeated for ``n`` beams (views, no copies)."""
        return Memory(*(None if t is None else t.expand(n, *t.shape[1:]) for t in self))


class ConvEncoder(nn.Module):
    """Feed-forward encoder: symbol + learned position embeddings, then ``layers`` 1-D
    convolutions (kernel ``kernel``, same padding, ReLU); padded positions are zeroed after
    each layer. ``forward(embedded (B, S, D), mask (B, S)) -> states (B, S, H)``."""

    def __init__(self, embed: int, hidden: int, layers: int, kernel: int, max_positions: int) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.positions = nn.Embedding(max_positions, embed)
        self.convs = nn.ModuleList(
            nn.Conv1d(embed if i == 0 else hidden, hidden, kernel, padding=kernel // 2) for i in range(layers)
        )

    def forward(self, embedded: Tensor, mask: Tensor) -> Tensor:
        S = embedded.shape[1]
        if S > self.max_positions:
            raise DataError(f"the conv encoder reads at most {self.max_positions} symbols, got {S}")
        x = embedded + self.positions(torch.arange(S, device=embedded.device))  # (B, S, D)
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, S)
        x = x.transpose(1, 2) * keep  # (B, D, S)
        for conv in self.convs:
            x = torch.relu(conv(x)) * keep
        return x.transpose(1, 2)  # (B, S, H)


@register("seq2seq")
class Seq2Seq(nn.Module):
    """Encoder-decoder over two vocabularies.

    Args:
        source_tokens, target_tokens: the vocabularies' ``tokens`` (``capas.data.vocab``).
        embed: symbol embedding width D; hidden: encoder width H per direction.
        encoder: ``rnn`` | ``lstm`` | ``gru`` | ``conv``; decoder: ``rnn`` | ``lstm`` | ``gru``.
        bidirectional, layers: of a recurrent encoder (``layers`` convs for ``conv``).
        attention: ``additive`` (``bahdanau``) | ``dot`` | ``general`` | ``none``.
        style: ``bahdanau`` | ``luong``: where the decoder attends (module docstring).
        max_source_len, max_target_len: the longest training source / target (symbols,
            without ``<eos>``): the inference limits above; ``max_positions`` the conv
            encoder's position table (default 2 * max_source_len + 2).
    """

    def __init__(
        self,
        source_tokens: list[str],
        target_tokens: list[str],
        *,
        embed: int = 32,
        hidden: int = 128,
        encoder: str = "gru",
        decoder: str = "gru",
        bidirectional: bool = False,
        layers: int = 1,
        attention: str = "additive",
        style: str = "bahdanau",
        kernel: int = 3,
        max_source_len: int = 32,
        max_target_len: int = 32,
        max_positions: int | None = None,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise SpecError(f"unknown encoder {encoder!r}; choose from {', '.join(ENCODERS)}")
        if decoder not in RECURRENT:
            raise SpecError(f"unknown decoder {decoder!r}; choose from {', '.join(RECURRENT)}")
        if attention not in (*ATTENTIONS, "none"):
            raise SpecError(f"unknown attention {attention!r}; choose from {', '.join(ATTENTIONS)} or none")
        if style not in ("bahdanau", "luong"):
            raise SpecError(f"unknown decoder style {style!r}; choose bahdanau or luong")
        if encoder == "conv" and bidirectional:
            raise SpecError("a conv encoder sees both sides already; drop bidirectional")
        for name, value in (("embed", embed), ("hidden", hidden), ("layers", layers), ("kernel", kernel)):
            if not isinstance(value, int) or value < 1:
                raise SpecError(f"{name} must be a positive integer, got {value!r}")
        self.source_vocab, self.target_vocab = Vocab.from_tokens(source_tokens), Vocab.from_tokens(target_tokens)
        self.options = {
            "embed": embed,
            "hidden": hidden,
            "encoder": encoder,
            "decoder": decoder,
            "bidirectional": bidirectional,
            "layers": layers,
            "attention": attention,
            "style": style,
            "kernel": kernel,
            "max_source_len": int(max_source_len),
            "max_target_len": int(max_target_len),
            "max_positions": int(max_positions or 2 * max_source_len + 2),
        }
        width = hidden * (2 if bidirectional else 1)  # E: encoder states, decoder state
        self.width = width
        self.source_embed = nn.Embedding(len(self.source_vocab), embed, padding_idx=PAD)
        self.target_embed = nn.Embedding(len(self.target_vocab), embed, padding_idx=PAD)
        if encoder == "conv":
            self.encoder = ConvEncoder(embed, hidden, layers, kernel, self.options["max_positions"])
        else:
            self.encoder = RECURRENT[encoder](embed, hidden, layers, batch_first=True, bidirectional=bidirectional)
        self.bridge = nn.Linear(width, width)
        self.luong = style == "luong" and attention != "none"
        self.decoder = RECURRENT[decoder](embed + (0 if self.luong else width), width, 1, batch_first=True)
        self.attention = None if attention == "none" else make_attention(attention, width, width)
        self.out = nn.Linear(2 * width, len(self.target_vocab))

    # ---- the registry's round trip -------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "model": "seq2seq",
            "source_tokens": self.source_vocab.tokens,
            "target_tokens": self.target_vocab.tokens,
            **self.options,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Seq2Seq:
        options = {k: v for k, v in config.items() if k != "model"}
        try:
            return cls(options.pop("source_tokens"), options.pop("target_tokens"), **options)
        except (KeyError, TypeError) as err:
            raise SpecError(f"not a seq2seq model config ({err})") from None

    @classmethod
    def for_data(cls, data: Any, *, seed: int | None = None, **options: Any) -> Seq2Seq:
        """A model for a :class:`capas.data.pairs.PairsDataset`: its vocabularies and the
        longest training source and target. With ``seed``, the initial weights are drawn
        from a generator seeded with it (torch's global state is left as it was)."""
        lengths = [(len(s), len(t)) for s, t in data.pairs["train"]]
        options.setdefault("max_source_len", max(s for s, _ in lengths))
        options.setdefault("max_target_len", max(t for _, t in lengths))
        if seed is None:
            return cls(data.source_vocab.tokens, data.target_vocab.tokens, **options)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(data.source_vocab.tokens, data.target_vocab.tokens, **options)

    @property
    def is_lstm_decoder(self) -> bool:
        return isinstance(self.decoder, nn.LSTM)

    # ---- encoder -------------------------------------------------------------------------
    def encode(self, src: Tensor) -> tuple[Memory, Any]:
        """``src`` (B, S) -> (the decoder's :class:`Memory`, its first state (1, B, E)
        (an LSTM decoder: (h, c)))."""
        mask = src != PAD  # (B, S)
        embedded = self.source_embed(src)  # (B, S, D)
        if isinstance(self.encoder, ConvEncoder):
            states = self.encoder(embedded, mask)  # (B, S, E)
            counts = mask.sum(1, keepdim=True).clamp(min=1).to(states.dtype)
            final = states.sum(1) / counts  # (B, E): masked mean
        else:
            lengths = mask.sum(1).clamp(min=1).cpu()
            packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
            out, last = self.encoder(packed)
            states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, E)
            h = last[0] if isinstance(last, tuple) else last  # (layers * dirs, B, H)
            dirs = 2 if self.options["bidirectional"] else 1
            final = torch.cat(list(h[-dirs:]), dim=-1)  # (B, E): last layer, both directions
        summary = torch.tanh(self.bridge(final))  # (B, E)
        h0 = summary.unsqueeze(0).contiguous()  # (1, B, E)
        state = (h0, torch.zeros_like(h0)) if self.is_lstm_decoder else h0
        prepared = None if self.attention is None else self.attention.prepare(states)
        return Memory(states, prepared, mask, summary), state

    # ---- decoder -------------------------------------------------------------------------
    def step(self, y_prev: Tensor, state: Any, memory: Memory) -> tuple[Tensor, Any, Tensor | None]:
        """One decoder step: previous symbols (B,) -> (logits (B, V), new state, weights (B, S) or None)."""
        if self.luong:
            output, state = self.decoder(self.target_embed(y_prev).unsqueeze(1), state)  # (B, 1, E)
            context, weights = self.attention.attend(output[:, 0], memory.states, memory.prepared, memory.mask)
            return self.out(torch.cat([output[:, 0], context], dim=-1)), state, weights
        h_prev = (state[0] if self.is_lstm_decoder else state)[-1]  # (B, E)
        if self.attention is None:
            context, weights = memory.summary, None
        else:
            context, weights = self.attention.attend(h_prev, memory.states, memory.prepared, memory.mask)
        inputs = torch.cat([self.target_embed(y_prev), context], dim=-1).unsqueeze(1)  # (B, 1, D + E)
        output, state = self.decoder(inputs, state)
        logits = self.out(torch.cat([output[:, 0], context], dim=-1))  # (B, V)
        return logits, state, weights

    def forward(
        self, src: Tensor, tgt: Tensor, teacher_forcing: float = 1.0, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Training forward: logits (B, T, V) of every target position, and the attention
        weights (B, T, S) (None without attention).

        Step t is fed ``tgt[:, t-1]`` (``<sos>`` at t = 0) with probability
        ``teacher_forcing``, else the model's own previous argmax (coins from ``generator``).
        At ratio 1, without attention or in Luong's style, the decoder runs the whole shifted
        target in one call (the same numbers as step by step)."""
        memory, state = self.encode(src)
        B, T = tgt.shape
        sos = torch.full((B, 1), SOS, dtype=tgt.dtype, device=tgt.device)
        shifted = torch.cat([sos, tgt[:, :-1]], dim=1)  # (B, T): the teacher's inputs
        if self.attention is None and teacher_forcing >= 1.0:
            context = memory.summary.unsqueeze(1).expand(B, T, self.width)  # (B, T, E)
            output, _ = self.decoder(torch.cat([self.target_embed(shifted), context], dim=-1), state)
            return self.out(torch.cat([output, context], dim=-1)), None
        if self.luong and teacher_forcing >= 1.0:
            output, _ = self.decoder(self.target_embed(shifted), state)  # (B, T, E): every h_t at once
            context, weights = self.attention.attend(output, memory.states, memory.prepared, memory.mask)
            return self.out(torch.cat([output, context], dim=-1)), weights  # (B, T, V), (B, T, S)
        logits, weights = [], []
        y_prev = shifted[:, 0]
        coins = None
        if teacher_forcing < 1.0:
            coins = torch.rand((B, T), generator=generator, device=generator.device if generator else None)
            coins = coins.to(tgt.device) < teacher_forcing  # (B, T): True = the teacher's symbol
        for t in range(T):
            step_logits, state, w = self.step(y_prev, state, memory)
            logits.append(step_logits)
            weights.append(w)
            if t + 1 < T:
                y_prev = shifted[:, t + 1]
                if coins is not None:
                    y_prev = torch.where(coins[:, t + 1], y_prev, step_logits.argmax(-1))
        attention = None if self.attention is None else torch.stack(weights, dim=1)  # (B, T, S)
        return torch.stack(logits, dim=1), attention

    def step_limit(self, source_length: int) -> int:
        """Decoding steps allowed for a source of ``source_length`` positions."""
        return max(self.options["max_target_len"], 2 * source_length) + 1

    @torch.no_grad()
    def greedy(self, src: Tensor, max_steps: int | None = None) -> tuple[Tensor, Tensor | None]:
        """Greedy decoding: (ids (B, L) ending in ``<eos>`` then ``<pad>``, weights (B, L, S) or None)."""
        memory, state = self.encode(src)
        B = src.shape[0]
        limit = max_steps or self.step_limit(src.shape[1])
        y = torch.full((B,), SOS, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        ids, weights = [], []
        for _ in range(limit):
            logits, state, w = self.step(y, state, memory)
            y = logits.argmax(-1).masked_fill(done, PAD)  # (B,)
            ids.append(y)
            weights.append(w)
            done = done | (y == EOS)
            if bool(done.all()):
                break
        attention = None if self.attention is None else torch.stack(weights, dim=1)
        return torch.stack(ids, dim=1), attention

    @torch.no_grad()
    def beam_search(
        self, src: Tensor, width: int = 4, max_steps: int | None = None, length_penalty: float = 0.0
    ) -> tuple[list[list[int]], list[Tensor | None]]:
        """Beam search: for each row of ``src`` (B, S) the best hypothesis (ids ending in
        ``<eos>``, or cut at the step limit) and its weights (L, S) (None without attention).

        Scores are sums of log-probabilities divided by ``length ** length_penalty``. For each
        source, each step ranks its 2K best extensions: ``<eos>`` among the first K ends a
        hypothesis, the first K others stay alive; that source's search stops when K
        hypotheses ended. All sources advance together (B * K decoder rows a step); the
        ranking is each source's own, so the result is that of searching one at a time.
        With K = 1 this is exactly greedy decoding."""
        if width < 1:
            raise DataError(f"the beam width must be at least 1, got {width}")
        return self._beams(src, width, max_steps or self.step_limit(src.shape[1]), length_penalty)

    def _beams(self, src: Tensor, K: int, limit: int, alpha: float) -> tuple[list[list[int]], list[Tensor | None]]:
        B, device = src.shape[0], src.device
        memory, state = self.encode(src)
        memory = Memory(*(None if t is None else t.repeat_interleave(K, dim=0) for t in memory))  # (B K, ...)
        state = (
            tuple(s.repeat_interleave(K, dim=1) for s in state)
            if isinstance(state, tuple)
            else state.repeat_interleave(K, dim=1)
        )
        Hypothesis = tuple[list[int], float, list[Tensor]]  # (ids, log-probability, weights per step)
        alive: list[list[Hypothesis]] = [[([], 0.0, [])] for _ in range(B)]  # row b K + i is alive[b][i]
        finished: list[list[Hypothesis]] = [[] for _ in range(B)]
        done = [False] * B
        y = torch.full((B * K,), SOS, dtype=torch.long, device=device)
        for _ in range(limit):
            logits, state, w = self.step(y, state, memory)
            logp = F.log_softmax(logits.float(), dim=-1)  # (B K, V)
            V = logp.shape[1]
            base = [[h[1] for h in hyps] + [float("-inf")] * (K - len(hyps)) for hyps in alive]
            scores = torch.tensor(base, device=device).unsqueeze(-1) + logp.view(B, K, V)  # (B, K, V)
            top = torch.topk(scores.view(B, K * V), min(2 * K, K * V))
            rows, tokens = [], []
            for b, (values, indices) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
                picked: list[int] = []
                if not done[b]:
                    next_alive = []
                    for rank, (score, flat) in enumerate(zip(values, indices)):
                        if score == float("-inf"):
                            break
                        beam, token = divmod(flat, V)
                        ids, _, ws = alive[b][beam]
                        new_ws = ws if w is None else [*ws, w[b * K + beam]]
                        if token == EOS:
                            if rank < K:
                                finished[b].append(([*ids, EOS], score, new_ws))
                        elif len(next_alive) < K:
                            next_alive.append(([*ids, token], score, new_ws))
                            picked.append(b * K + beam)
                    if len(finished[b]) >= K or not next_alive:
                        done[b], picked = True, []
                    else:
                        alive[b] = next_alive
                rows += picked + [b * K] * (K - len(picked))  # idle rows: any state, score -inf
                tokens += [h[0][-1] for h in alive[b][: len(picked)]] + [PAD] * (K - len(picked))
            if all(done):
                break
            index = torch.tensor(rows, device=device)
            state = tuple(s[:, index] for s in state) if isinstance(state, tuple) else state[:, index]
            y = torch.tensor(tokens, dtype=torch.long, device=device)
        results, maps = [], []
        for b in range(B):
            best = max(finished[b] or alive[b], key=lambda h: h[1] / (len(h[0]) ** alpha if alpha else 1.0))
            results.append(best[0])
            maps.append(torch.stack(best[2]) if best[2] else None)
        return results, maps

    # ---- strings in, strings out ---------------------------------------------------------
    def check_sources(self, texts: list[str], allow_longer: bool = False) -> Tensor:
        """(B, S) ids of ``texts``, refusing empty strings, unknown symbols and (unless
        ``allow_longer``) sources longer than the longest training source."""
        if not texts:
            raise DataError("nothing to translate; give at least one string")
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise DataError("cannot translate an empty string; give the text to translate")
            longest = self.options["max_source_len"]
            if len(text) > longest and not allow_longer:
                raise DataError(
                    f"{text[:40]!r} has {len(text)} symbols, more than the longest training source ({longest}); "
                    "shorten it (or pass allow_longer=True to try anyway)"
                )
        device = next(self.parameters()).device
        return self.source_vocab.encode_batch(texts).to(device)

    @torch.no_grad()
    def translate(
        self, texts: list[str], *, beam: int = 1, allow_longer: bool = False
    ) -> list[tuple[str, Tensor | None]]:
        """Each text's output string and its attention weights (L, S) (None without
        attention), by greedy decoding (``beam`` 1) or beam search of width ``beam``."""
        was_training = self.training
        self.eval()
        try:
            src = self.check_sources(list(texts), allow_longer)
            if beam == 1:
                ids, weights = self.greedy(src)
                out = []
                for i in range(len(src)):
                    row = ids[i].tolist()
                    length = row.index(EOS) + 1 if EOS in row else len(row)
                    length_src = int((src[i] != PAD).sum())
                    w = None if weights is None else weights[i, :length, :length_src].cpu()
                    out.append((self.target_vocab.decode(row), w))
                return out
            hyps, maps = self.beam_search(src, beam)
            return [
                (self.target_vocab.decode(ids), None if w is None else w[:, : int((s != PAD).sum())].cpu())
                for ids, w, s in zip(hyps, maps, src)
            ]
        finally:
            self.train(was_training)
