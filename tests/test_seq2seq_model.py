"""The encoder-decoder: teacher forcing, greedy vs beam, masking, config, bad input."""

import pytest
import torch
from torch.nn import functional as F

from capas.data.vocab import EOS, PAD, SOS, Vocab
from capas.errors import DataError, SpecError
from capas.models.registry import from_config
from capas.models.seq2seq import Seq2Seq
from capas.tasks.seq2seq import masked_loss

SRC = Vocab.from_strings(["abcdef"])
TGT = Vocab.from_strings(["xyz01"])


def model(seed=0, **options):
    torch.manual_seed(seed)
    return Seq2Seq(SRC.tokens, TGT.tokens, embed=6, hidden=8, max_source_len=6, max_target_len=6, **options).double()


def batch():
    src = SRC.encode_batch(["abc", "f", "deadbe", ""])  # (4, 7) with padding; "" is just <eos>
    tgt = TGT.encode_batch(["xy", "z0z1", "", "1"])  # (4, 5)
    return src, tgt


def test_ratio_one_equals_the_aligned_many_to_many_loss():
    """Teacher forcing at ratio 1 is the many-to-many net over (<sos> y_1..y_{T-1}) -> (y_1..y_T):
    a GRU cell run by hand over the shifted targets, its masked cross-entropy by hand."""
    net = model(attention="none")
    src, tgt = batch()
    logits, weights = net(src, tgt, 1.0)
    assert weights is None and logits.shape == (4, 5, len(TGT))
    memory, state = net.encode(src)
    cell = torch.nn.GRUCell(6 + 16 // 2, 8).double()  # decoder width E = hidden (unidirectional)
    gru = net.decoder
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(gru, f"{name}_l0"))
    h = state[0]
    inputs = torch.cat([torch.full((4, 1), SOS), tgt[:, :-1]], dim=1)
    total, count = 0.0, 0
    for t in range(tgt.shape[1]):
        h = cell(torch.cat([net.target_embed(inputs[:, t]), memory.summary], -1), h)
        step = net.out(torch.cat([h, memory.summary], -1)).log_softmax(-1)
        for b in range(4):
            if tgt[b, t] != PAD:
                total, count = total - step[b, tgt[b, t]], count + 1
    assert masked_loss(logits, tgt).item() == pytest.approx((total / count).item(), rel=1e-12)


@pytest.mark.parametrize(
    ("attention", "style"), [("additive", "bahdanau"), ("dot", "bahdanau"), ("general", "luong"), ("additive", "luong")]
)
def test_ratio_one_with_attention_feeds_the_shifted_targets(attention, style):
    """At ratio 1 (Luong's style: all steps in one call): the same logits and weights as
    feeding the true symbols to ``step`` by hand."""
    net = model(attention=attention, style=style, decoder="lstm")
    src, tgt = batch()
    logits, weights = net(src, tgt, 1.0)
    memory, state = net.encode(src)
    y = torch.full((4,), SOS)
    for t in range(tgt.shape[1]):
        step, state, w = net.step(y, state, memory)
        assert torch.allclose(step, logits[:, t], atol=1e-12) and torch.allclose(w, weights[:, t], atol=1e-12)
        y = tgt[:, t]
    assert (weights[src.unsqueeze(1).expand_as(weights) == PAD] == 0).all()  # padding gets no attention
    assert torch.allclose(weights.sum(-1), torch.ones(4, tgt.shape[1], dtype=torch.float64))


def test_ratio_zero_feeds_the_models_own_argmax_like_greedy():
    net = model(attention="additive")
    src, tgt = batch()
    logits, _ = net(src, tgt, 0.0, torch.Generator().manual_seed(1))
    greedy, _ = net.greedy(src)
    free = logits.argmax(-1)  # (4, 5)
    for b in range(4):
        row = greedy[b].tolist()
        end = min(row.index(EOS) + 1 if EOS in row else len(row), free.shape[1])
        assert free[b, :end].tolist() == row[:end]


@pytest.mark.parametrize(
    "options",
    [
        {"attention": "additive"},
        {"attention": "none", "encoder": "lstm", "decoder": "rnn"},
        {"attention": "dot", "encoder": "gru", "bidirectional": True, "layers": 2},
        {"attention": "general", "encoder": "conv", "layers": 2, "style": "luong"},
        {"attention": "additive", "encoder": "rnn", "decoder": "lstm", "bidirectional": True},
    ],
)
def test_beam_width_one_is_greedy(options):
    for seed in range(2):
        net = model(seed, **options)
        src, _ = batch()
        greedy, gweights = net.greedy(src)
        beams, maps = net.beam_search(src, width=1)
        for b in range(len(src)):
            row = greedy[b].tolist()
            row = row[: row.index(EOS) + 1] if EOS in row else row
            assert beams[b] == row
            if gweights is not None:
                assert torch.allclose(maps[b], gweights[b, : len(row)])


def test_wider_beams_score_at_least_greedy():
    net = model(3, attention="additive")
    src, _ = batch()

    def log_prob(row, ids):
        memory, state = net.encode(src[row : row + 1])
        y, total = torch.full((1,), SOS), 0.0
        for token in ids:
            logits, state, _ = net.step(y, state, memory)
            total += F.log_softmax(logits, -1)[0, token].item()
            y = torch.tensor([token])
        return total

    greedy, _ = net.beam_search(src, width=1)
    wide, maps = net.beam_search(src, width=4)
    for row in range(len(src)):  # the batched search is each source's own search
        alone, alone_maps = net.beam_search(src[row : row + 1], width=4)
        assert alone == [wide[row]] and torch.allclose(alone_maps[0], maps[row])
    for row in range(len(src)):
        if greedy[row][-1] == EOS and wide[row][-1] == EOS:
            assert log_prob(row, wide[row]) >= log_prob(row, greedy[row]) - 1e-9


@pytest.mark.parametrize("encoder", ["gru", "lstm", "conv"])
def test_padding_changes_nothing(encoder):
    net = model(encoder=encoder, bidirectional=encoder != "conv", attention="additive")
    src, tgt = batch()
    padded = torch.cat([src, torch.full((4, 3), PAD)], dim=1)
    a, wa = net(src, tgt, 1.0)
    b, wb = net(padded, tgt, 1.0)
    assert torch.allclose(a, b, atol=1e-12) and torch.allclose(wa, wb[..., : src.shape[1]], atol=1e-12)
    assert (wb[..., src.shape[1] :] == 0).all()


def test_config_round_trip_gives_the_same_outputs():
    net = model(encoder="lstm", bidirectional=True, attention="general")
    again = from_config(net.config()).double()
    again.load_state_dict(net.state_dict())
    src, tgt = batch()
    assert torch.equal(net(src, tgt)[0], again(src, tgt)[0])
    assert again.config() == net.config() and again.config()["model"] == "seq2seq"


def test_bad_options_are_one_line_errors():
    for options, message in (
        ({"encoder": "transformer"}, "unknown encoder"),
        ({"decoder": "conv"}, "unknown decoder"),
        ({"attention": "cosine"}, "unknown attention"),
        ({"encoder": "conv", "bidirectional": True}, "drop bidirectional"),
        ({"kernel": 0}, "positive integer"),
        ({"style": "vaswani"}, "unknown decoder style"),
    ):
        with pytest.raises(SpecError, match=message):
            model(**options)


def test_bad_inputs_at_inference():
    net = model()
    with pytest.raises(DataError, match="never seen in training: 'q'") as err:
        net.translate(["abq"])
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="empty string"):
        net.translate(["  "])
    with pytest.raises(DataError, match="more than the longest training source"):
        net.translate(["abcdefa"])
    (text, weights), *_ = net.translate(["abcdefabc"], allow_longer=True)  # the stated fallback: try anyway
    assert isinstance(text, str) and weights.shape[1] == 10  # 9 symbols + <eos>
    conv = model(encoder="conv", max_positions=8)
    with pytest.raises(DataError, match="at most 8 symbols"):
        conv.translate(["abcdefabc"], allow_longer=True)
    outputs = net.translate(["abc", "f"], beam=3)
    assert len(outputs) == 2 and outputs[0][1].shape[1] == 4
