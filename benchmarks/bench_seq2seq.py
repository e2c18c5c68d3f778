"""Encoder-decoder training speed: ``capas.fit`` against a hand-written torch loop of the same
size on the dates task; and greedy against beam-search decoding (issue 12).

Training: both contenders train the same network (a bidirectional-GRU encoder, a GRU
decoder in Luong's style with dot attention) from the same initial weights (the hand-written
module copies the capas model's), with Adam (lr 0.001), the same batch size, epochs and
data (``capas.data.pairs.load_pairs("dates", validation=0)``):

- ``loop``: per epoch one ``randperm`` from a seeded ``torch.Generator``; per batch: trim
  the padding columns, encode (packed GRU), run the decoder over the shifted targets,
  attend for all steps with one ``bmm``, masked cross-entropy, backward, step. Its own
  module, written out below (not capas's ``Seq2Seq``).
- ``capas``: ``capas.fit(model, data, epochs=, batch_size=, quiet=True)`` (the
  Seq2SeqTask: teacher forcing 1.0, token accuracy per step).

Timed: the training epochs only (capas: the history's per-epoch seconds, which leave out the
test decoding fit does afterwards; the loop: its epochs), after a warm-up epoch of each on
a few batches. Decoding: greedy (batched) against beam search of widths 1 and 4 (one
source at a time) on the test sources, in sources per second.

    python benchmarks/bench_seq2seq.py             # 4,000 dates, 2 epochs
    python benchmarks/bench_seq2seq.py --n 2000 --epochs 1 --json
Nothing is asserted: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import capas
from capas.data.pairs import load_pairs
from capas.models.seq2seq import Seq2Seq

PAD, SOS = 0, 1


class HandSeq2Seq(nn.Module):
    """The same network written directly in torch: bi-GRU encoder, tanh bridge, GRU decoder
    over embed(y_{t-1}), dot attention on h_t, logits from [h_t; c_t]."""

    def __init__(self, n_src: int, n_tgt: int, embed: int, hidden: int) -> None:
        super().__init__()
        width = 2 * hidden
        self.source_embed = nn.Embedding(n_src, embed, padding_idx=PAD)
        self.target_embed = nn.Embedding(n_tgt, embed, padding_idx=PAD)
        self.encoder = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(width, width)
        self.decoder = nn.GRU(embed, width, batch_first=True)
        self.out = nn.Linear(2 * width, n_tgt)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        mask = src != PAD
        packed = pack_padded_sequence(self.source_embed(src), mask.sum(1).cpu(), batch_first=True, enforce_sorted=False)
        out, h = self.encoder(packed)
        keys, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, E)
        h0 = torch.tanh(self.bridge(torch.cat([h[-2], h[-1]], -1))).unsqueeze(0)
        shifted = torch.cat([torch.full_like(tgt[:, :1], SOS), tgt[:, :-1]], 1)
        states, _ = self.decoder(self.target_embed(shifted), h0)  # (B, T, E)
        scores = torch.bmm(states, keys.transpose(1, 2)).masked_fill(~mask.unsqueeze(1), float("-inf"))
        context = torch.bmm(torch.softmax(scores, -1), keys)
        return self.out(torch.cat([states, context], -1))


def trim(ids: torch.Tensor) -> torch.Tensor:
    return ids[:, : int((ids != PAD).any(0).nonzero().max()) + 1]


def hand_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, limit: int | None = None):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        xs, ys = x[order], y[order]
        for i, start in enumerate(range(0, len(x), batch)):
            if limit is not None and i >= limit:
                break
            src, tgt = trim(xs[start : start + batch]), trim(ys[start : start + batch])
            logits = model(src, tgt)
            loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return float(loss.detach())


def copy_weights(capas_model: Seq2Seq, hand: HandSeq2Seq) -> None:
    state = {k: v for k, v in capas_model.state_dict().items() if not k.startswith("attention")}
    hand.load_state_dict(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="dates generated (80%% train)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_pairs("dates", n=args.n, seed=0, validation=0.0)
    options = {"embed": 32, "hidden": 64, "bidirectional": True, "attention": "dot", "style": "luong"}
    torch.manual_seed(0)
    model = Seq2Seq.for_data(data, **options)
    hand = HandSeq2Seq(len(data.source_vocab), len(data.target_vocab), 32, 64)
    copy_weights(model, hand)
    assert sum(p.numel() for p in hand.parameters()) == sum(p.numel() for p in model.parameters())
    n_train = len(data.x_train)

    hand_loop(copy.deepcopy(hand), data.x_train, data.y_train, 1, args.batch, limit=4)  # warm-up
    capas.fit(copy.deepcopy(model), load_pairs("dates", n=300, seed=1, validation=0.0), epochs=1, quiet=True)
    started = time.perf_counter()
    hand_loop(hand, data.x_train, data.y_train, args.epochs, args.batch)
    loop_seconds = time.perf_counter() - started
    fitted = capas.fit(model, data, epochs=args.epochs, batch_size=args.batch, lr=0.001, quiet=True)
    capas_seconds = sum(h["seconds"] for h in fitted.history)
    rows = {
        "loop": n_train * args.epochs / loop_seconds,
        "capas": n_train * args.epochs / capas_seconds,
    }

    sources = [s for s, _ in data.pairs["test"][:200]]
    trained = fitted.model.eval()
    src = trained.check_sources(sources)
    decode = {}
    started = time.perf_counter()
    trained.greedy(src)
    decode["greedy"] = len(sources) / (time.perf_counter() - started)
    for width in (1, 4):
        started = time.perf_counter()
        trained.beam_search(src, width)
        decode[f"beam{width}"] = len(sources) / (time.perf_counter() - started)
    result = {
        "train_samples_per_s": rows,
        "capas_vs_loop": rows["capas"] / rows["loop"],
        "decode_sources_per_s": decode,
        "n_train": n_train,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "test_exact_match": fitted.test_metrics.get("test_exact_match"),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"dates: {n_train} training pairs x {args.epochs} epochs, batch {args.batch}, {torch.get_num_threads()} threads"
    )
    for name, speed in rows.items():
        print(f"  {name:6s} {speed:8.0f} samples/s   ratio {speed / rows['loop']:.2f}")
    print("decoding (sources/s): " + ", ".join(f"{k} {v:.0f}" for k, v in decode.items()))


if __name__ == "__main__":
    main()
