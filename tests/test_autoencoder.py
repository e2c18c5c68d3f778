"""Autoencoders: mirrored/tied decoders, corruption, sparsity penalties, denoising on digits."""

import math

import pytest
import torch
from torch.nn import functional as F

from capas.errors import DataError, SpecError
from capas.layers import Dense
from capas.models.autoencoder import Autoencoder, TiedDense


@pytest.fixture(scope="module")
def digits():
    from capas.data import load

    return load("digits", seed=0)


def test_mirrored_decoder_reverses_the_dense_encoder():
    ae = Autoencoder.from_spec("64-32-16", act="tanh", output_act="linear")
    shapes = [(layer.in_features, layer.out_features, layer.activation.name) for layer in ae.decoder]
    assert shapes == [(16, 32, "tanh"), (32, 64, "linear")]
    x = torch.rand(5, 64)
    assert ae(x).shape == (5, 64)
    assert torch.equal(ae.encode(x), ae.encoder(x))


def test_tied_decoder_shares_the_encoder_weights():
    torch.manual_seed(0)
    untied, tied = Autoencoder(Dense(6, 3, "sigmoid")), Autoencoder(Dense(6, 3, "sigmoid"), tied=True)
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n_params(untied) == (6 * 3 + 3) + (3 * 6 + 6)
    assert n_params(tied) == (6 * 3 + 3) + 6  # one weight matrix, two biases
    decoder = tied.decoder[0]
    assert isinstance(decoder, TiedDense) and decoder.source.weight is tied.encoder.weight
    code = torch.rand(4, 3, dtype=torch.float64)
    tied.double()
    expected = torch.sigmoid(code @ tied.encoder.weight + decoder.bias)  # W^T applied to the code
    assert torch.allclose(tied.decode(code), expected)
    tied.objective(torch.rand(4, 6, dtype=torch.float64)).backward()
    assert tied.encoder.weight.grad is not None and decoder.bias.grad is not None


def test_masking_and_gaussian_corruption_are_seeded_and_have_the_asked_strength():
    x = torch.rand(200, 50) + 0.5
    mask = Autoencoder(Dense(50, 10), corruption="mask", noise=0.3)
    a, b = (mask.corrupt(x, torch.Generator().manual_seed(1)) for _ in range(2))
    assert torch.equal(a, b)
    zeroed = (a == 0).float().mean().item()
    assert abs(zeroed - 0.3) < 4 * math.sqrt(0.3 * 0.7 / x.numel())
    assert torch.equal(a[a != 0], x[a != 0])
    gauss = Autoencoder(Dense(50, 10), corruption="gaussian", noise=0.2)
    noise = gauss.corrupt(x, torch.Generator().manual_seed(2)) - x
    assert abs(noise.std().item() - 0.2) < 0.005 and abs(noise.mean().item()) < 0.005
    assert torch.equal(Autoencoder(Dense(50, 10)).corrupt(x), x)


def test_sparsity_penalties_match_their_formulas():
    code = torch.tensor([[0.1, 0.8], [0.3, 0.4]], dtype=torch.float64)
    kl = Autoencoder(Dense(3, 2, "sigmoid"), sparsity="kl", sparsity_target=0.1, sparsity_weight=2.0)
    expected = 0.0
    for rho_hat in (0.2, 0.6):  # mean activation of each code unit
        expected += 0.1 * math.log(0.1 / rho_hat) + 0.9 * math.log(0.9 / (1 - rho_hat))
    assert kl.sparsity_penalty(code).item() == pytest.approx(2.0 * expected, rel=1e-12)
    l1 = Autoencoder(Dense(3, 2), sparsity="l1", sparsity_weight=0.5)
    assert l1.sparsity_penalty(-code).item() == pytest.approx(0.5 * (0.9 + 0.7) / 2, rel=1e-12)


def test_kl_sparsity_pulls_the_mean_code_activation_to_the_target(digits):
    x = digits.x_train.flatten(1)
    means = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        ae = Autoencoder(Dense(64, 40, "sigmoid"), sparsity="kl", sparsity_target=0.05, sparsity_weight=weight)
        ae.fit(x, epochs=10, batch_size=64, lr=0.02, seed=0)
        means[weight] = ae.encode(x).mean().item()
    print("mean code activation without/with the KL penalty:", means)
    assert abs(means[1.0] - 0.05) < 0.03 < abs(means[0.0] - 0.05)


def test_denoising_autoencoder_reconstructs_clean_inputs_better_than_its_corrupted_inputs(digits):
    torch.manual_seed(0)
    ae = Autoencoder(Dense(64, 48, "sigmoid"), corruption="mask", noise=0.3)
    history = ae.fit(digits.x_train, epochs=25, lr=0.005, seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    x = digits.x_test.flatten(1)
    corrupted = ae.corrupt(x, torch.Generator().manual_seed(9))
    with torch.no_grad():
        denoised = F.mse_loss(ae(corrupted), x).item()
    noisy = F.mse_loss(corrupted, x).item()
    print(f"test MSE to the clean digits: corrupted {noisy:.4f}, DAE output {denoised:.4f}")
    assert denoised < 0.6 * noisy


def test_any_encoder_gets_a_dense_decoder_back_to_the_input_shape():
    ae = Autoencoder.from_spec("1x8x8 c3x3x4 d12", act="sigmoid")
    x = torch.rand(3, 1, 8, 8)
    assert ae(x).shape == (3, 1, 8, 8)
    assert isinstance(ae.decoder, Dense) and (ae.decoder.in_features, ae.decoder.out_features) == (12, 64)
    history = ae.fit(torch.rand(20, 1, 8, 8), epochs=2, batch_size=5)
    assert len(history) == 2
    assert Autoencoder.from_spec("1x8x8 c3x3x4 bn d12")(x).shape == (3, 1, 8, 8)  # probed in eval mode
    with pytest.raises(SpecError, match="only of Dense"):
        Autoencoder.from_spec("1x8x8 c3x3x4 d12", tied=True)


def test_bad_autoencoder_settings_are_refused():
    with pytest.raises(SpecError, match="sigmoid"):
        Autoencoder(Dense(4, 2, "relu"), sparsity="kl")
    with pytest.raises(SpecError, match="corruption"):
        Autoencoder(Dense(4, 2), corruption="salt")
    with pytest.raises(SpecError, match="masking probability"):
        Autoencoder(Dense(4, 2), corruption="mask", noise=1.5)
    with pytest.raises(DataError, match="shape"):
        Autoencoder(Dense(4, 2)).fit(torch.rand(10, 5))
