"""Autoencoders: mirrored/tied decoders, corruption, sparsity penalties, denoising on digits."""

import math

import pytest
import torch
from torch.nn import functional as F

import capas
from capas.errors import DataError, SpecError, TrainingError
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
        capas.fit(ae, x, epochs=10, batch_size=64, lr=0.02, seed=0, quiet=True)
        means[weight] = ae.encode(x).mean().item()
    print("mean code activation without/with the KL penalty:", means)
    assert abs(means[1.0] - 0.05) < 0.03 < abs(means[0.0] - 0.05)


def test_denoising_autoencoder_reconstructs_clean_inputs_better_than_its_corrupted_inputs(digits):
    torch.manual_seed(0)
    ae = Autoencoder(Dense(64, 48, "sigmoid"), corruption="mask", noise=0.3)
    history = capas.fit(ae, digits.x_train, epochs=25, lr=0.005, seed=0, quiet=True).history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
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
    history = capas.fit(ae, torch.rand(20, 1, 8, 8), epochs=2, batch_size=5, quiet=True).history
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
        capas.fit(Autoencoder(Dense(4, 2)), torch.rand(10, 5), quiet=True)


def test_denoising_corruption_draws_from_the_noise_generator_and_a_killed_run_resumes_exactly(tmp_path):
    """The corruption masks come from the run's ``noise`` generator (saved in checkpoints):
    a run interrupted after epoch 2 and resumed equals an uninterrupted one bit for bit."""
    x = torch.rand(90, 12)

    def model():
        return Autoencoder.from_spec(
            "12-5", seed=3, corruption="mask", noise=0.3, sparsity="kl", sparsity_target=0.1, sparsity_weight=0.5
        )

    class StopAfter(capas.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if epoch == 3:
                raise KeyboardInterrupt

    options = dict(epochs=4, batch_size=16, lr=0.01, seed=5, quiet=True, scheduler="cosine", l2=1e-3)
    whole = capas.fit(model(), x, out=tmp_path / "whole", **options)
    with pytest.raises(KeyboardInterrupt):
        capas.fit(model(), x, out=tmp_path / "cut", callbacks=[StopAfter()], **options)
    resumed = capas.fit(model(), x, resume=tmp_path / "cut", epochs=4, quiet=True)
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    assert whole.history.without_timing() == resumed.history.without_timing()
    other_seed = capas.fit(model(), x, **{**options, "seed": 6})
    assert not torch.equal(other_seed.model.encoder.layers[0].weight, whole.model.encoder.layers[0].weight)
    reloaded = capas.load_model(tmp_path / "whole")  # model.json: the registry's "autoencoder" kind
    assert isinstance(reloaded, Autoencoder) and reloaded.corruption == "mask"
    assert torch.equal(reloaded(x), whole.model(x))


def test_validation_inputs_are_reconstructed_clean_and_supervised_options_are_refused(digits):
    ae = Autoencoder.from_spec("64-20", seed=0, corruption="gaussian", noise=0.5)
    history = capas.fit(ae, digits, epochs=2, lr=0.01, quiet=True).history  # a Dataset: its targets are unused
    x_val = digits.x_val.flatten(1)
    with torch.no_grad():
        clean = F.mse_loss(ae(x_val), x_val).item()
    assert history[-1]["val_reconstruction_error"] == pytest.approx(clean, rel=1e-5)
    assert history[-1]["val_loss"] == pytest.approx(clean, rel=1e-5)  # no sparsity penalty
    with pytest.raises(TrainingError, match="class_weights do\\(es\\) not apply to autoencoder"):
        capas.fit(ae, digits, epochs=1, class_weights="balanced", quiet=True)


def test_inputs_alone_are_unsupervised_data_and_a_spec_string_needs_targets():
    from capas.train.inputs import as_training_data

    data = as_training_data(torch.rand(6, 2, 3))
    assert data.task == "unsupervised" and data.y_train is None and data.x_train.shape == (6, 2, 3)
    assert as_training_data(torch.arange(4).reshape(2, 2)).x_train.dtype == torch.float32
    with pytest.raises(TrainingError, match="inputs without targets"):
        capas.fit("4-3-2", torch.rand(10, 4), quiet=True)
    with pytest.raises(TrainingError, match="no samples"):
        capas.fit(Autoencoder(Dense(4, 2)), torch.rand(0, 4), quiet=True)
