"""Summaries of models made of parts (GAN, encoder-decoder, autoencoder, RBM, DBN): exact
counts worked out by hand, and ``capas summary RUN`` on their run directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import capas
from capas.cli import main
from capas.data.pairs import load_pairs
from capas.diagnostics import summarize
from capas.models import build
from capas.models.autoencoder import Autoencoder
from capas.models.dbn import DBN
from capas.models.gan import build_gan
from capas.models.seq2seq import Seq2Seq


def rows(summary) -> dict[str, tuple[str, int]]:
    return {row.name: (row.kind, row.params) for row in summary.parts}


def test_an_encoder_decoder_by_hand():
    s, t = ["<pad>", "<sos>", "<eos>", "<unk>", *"abcde"], ["<pad>", "<sos>", "<eos>", "<unk>", *"xyz"]
    model = Seq2Seq(s, t, embed=4, hidden=6, attention="general", style="luong")
    parts = rows(summarize(model))
    gru = 3 * (6 * (4 + 6) + 2 * 6)  # torch's GRU: W_ih (3H, D), W_hh (3H, H), two biases (3H)
    assert parts == {
        "source_embed": ("Embedding", 9 * 4),
        "target_embed": ("Embedding", 7 * 4),
        "encoder": ("GRU", gru),
        "bridge": ("Linear", 6 * 6 + 6),
        "decoder": ("GRU", gru),  # Luong: the decoder reads the embedding alone
        "attention": ("GeneralAttention", 6 * 6),
        "out": ("Linear", 7 * (2 * 6) + 7),  # [state; context] -> target symbols
    }
    assert summarize(model).total_params == sum(p.numel() for p in model.parameters())


def test_a_gan_shows_both_networks_and_a_tied_autoencoder_counts_its_weight_once():
    gan = summarize(build_gan("4-16-2", "2-16-1", seed=0))
    assert rows(gan) == {"generator": ("Network", 5 * 16 + 17 * 2), "discriminator": ("Network", 3 * 16 + 17)}
    assert gan.networks["generator"] == summarize("4-16-2", loss="mse")
    assert "generator: 4 d16 d2" in str(gan) and "discriminator: 2 d16 d1" in str(gan)
    tied = summarize(Autoencoder(build("64-16", act="sigmoid"), tied=True))
    assert rows(tied) == {"encoder": ("Network", 65 * 16), "decoder": ("Sequential", 64)}  # its bias alone
    assert tied.total_params == 65 * 16 + 64
    dbn = summarize(DBN([64, 32, 16]))
    assert rows(dbn) == {"rbms.0": ("RBM", 64 * 32 + 32 + 64), "rbms.1": ("RBM", 32 * 16 + 16 + 32)}
    with pytest.raises(capas.SpecError, match="only apply when summarizing a spec"):
        summarize(DBN([4, 2]), act="tanh")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("parts")
    capas.fit(build_gan("4-8-2", "2-8-1", seed=0), torch.rand(64, 2), epochs=1, out=tmp_path / "gan", quiet=True)
    data = load_pairs("reverse", n=60, max_len=4, alphabet=3)
    capas.fit(Seq2Seq.for_data(data, embed=4, hidden=8), data, epochs=1, out=tmp_path / "s2s", quiet=True)
    return tmp_path


def test_capas_summary_of_gan_and_seq2seq_run_directories(runs, capsys):
    tmp_path = runs
    main(["summary", str(tmp_path / "gan"), "--json"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["model"] == "gan" and record["total_params"] == (5 * 8 + 9 * 2) + (3 * 8 + 9)
    assert record["networks"]["discriminator"]["spec"] == "2 d8 d1"
    main(["summary", str(tmp_path / "s2s")])
    printed = capsys.readouterr().out
    assert "seq2seq (7 parts)" in printed and "encoder" in printed and "GRU" in printed
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", str(tmp_path / "gan"), "--act", "tanh"])
    assert exit_info.value.code == 2 and "--act: only for a network's summary" in capsys.readouterr().err


def test_capas_predict_points_gan_and_seq2seq_runs_to_their_commands(runs, tmp_path, capsys):
    samples = tmp_path / "x.npy"
    np.save(samples, np.zeros((2, 2), dtype=np.float32))
    expected = {
        "gan": f"holds a GAN, not a classifier or regressor, so it predicts nothing; draw samples from it with "
        f"capas sample {runs / 'gan'}",
        "s2s": f"holds an encoder-decoder, not a classifier or regressor, so it predicts nothing; give it text "
        f"with capas translate {runs / 's2s'} TEXT",
    }
    for run, message in expected.items():
        for extra in ([], ["--proba"]):
            with pytest.raises(SystemExit) as exit_info:
                main(["predict", str(runs / run), str(samples), *extra])
            assert exit_info.value.code == 2 and message in capsys.readouterr().err
