"""End to end on digits: pre-train, write the run, fine-tune from it, measure test accuracy."""

import pytest

from capas.api.fit import fit
from capas.api.pretrain import fine_tune, pretrain
from capas.models import build

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    from capas.data import load

    return load("digits", seed=0)


@pytest.mark.parametrize("method, epochs", [("rbm", 20), ("dae", 10)])
def test_pretrained_then_fine_tuned_network_reaches_96_percent(digits, tmp_path, method, epochs):
    """A DBN and a stacked denoising autoencoder 64-100-100-10, fine-tuned from their run dirs."""
    run = pretrain(digits, "64-100-100-10", method=method, epochs=epochs, seed=0, out=tmp_path / method, quiet=True)
    tuned = fine_tune(run.run_dir, digits, optimizer="adam", lr=0.01, epochs=30, seed=0, quiet=True)
    accuracy = tuned.test_metrics["test_accuracy"]
    print(f"{method} pre-trained 64-100-100-10, fine-tuned: test accuracy {accuracy:.4f}")
    assert accuracy >= 0.96


def test_pretraining_rescues_a_deep_sigmoid_net_trained_by_plain_sgd(digits):
    """Six sigmoid layers and 10 epochs of plain SGD: from a random init the gradient vanishes
    before reaching the lower layers (chance level); greedy pre-training starts it somewhere useful."""
    spec, options = "64-100-100-100-100-10", dict(optimizer="sgd", lr=0.5, epochs=10, seed=0, quiet=True)
    accuracy = {"random init": fit(build(spec, act="sigmoid", seed=0), digits, **options).test_metrics["test_accuracy"]}
    for method, settings in (("rbm", dict(epochs=20, momentum=0.9)), ("dae", dict(epochs=5))):
        network = pretrain(digits, spec, method=method, seed=0, quiet=True, **settings).network
        accuracy[f"{method} pre-trained"] = fit(network, digits, **options).test_metrics["test_accuracy"]
    print("deep sigmoid net, 10 epochs of SGD, test accuracy:", {k: round(v, 4) for k, v in accuracy.items()})
    assert accuracy["random init"] < 0.2  # stuck near chance (10 classes)
    assert accuracy["dae pre-trained"] >= 0.75
    assert accuracy["rbm pre-trained"] >= accuracy["random init"] + 0.2
