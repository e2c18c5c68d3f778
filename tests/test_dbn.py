"""DBN: greedy stacking, conversion to a sigmoid MLP with the same weights, generation."""

import pytest
import torch

import capas
from capas.errors import SpecError, TrainingError
from capas.models import build
from capas.models.dbn import DBN
from capas.models.rbm import RBM

TWO_PATTERNS = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]], dtype=torch.float32)


def binary_data(n=300, width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(3, width, generator=g) < 0.5).float()
    noise = (torch.rand(n, width, generator=g) < 0.1).float()
    return (prototypes[torch.arange(n) % 3] + noise) % 2  # (n, width) noisy copies of 3 prototypes


def pretrain(x, dbn, **options):
    """Greedy CD training of ``dbn`` on ``x``, one RBM per stage of the training loop."""
    return capas.pretrain(x, dbn, method="rbm", quiet=True, **options)


def test_each_rbm_is_trained_on_the_previous_hidden_probabilities():
    x = binary_data()
    dbn = DBN([16, 8, 4], seed=7)
    result = pretrain(x, dbn, layer_epochs=[3, 2], layer_lr=[0.1, 0.05], batch_size=20, momentum=0.5, seed=7)
    assert result.network is dbn and [len(layer["curve"]) for layer in result.layers] == [3, 2]
    first, second = RBM(16, 8, seed=7), RBM(8, 4, seed=8)  # stage l: the DBN's seed + l, the run's seed + l
    capas.fit(first, x, epochs=3, lr=0.1, batch_size=20, momentum=0.5, seed=7, quiet=True)
    capas.fit(second, first.hidden_probs(x), epochs=2, lr=0.05, batch_size=20, momentum=0.5, seed=8, quiet=True)
    assert torch.equal(dbn.rbms[0].weight, first.weight)
    assert torch.equal(dbn.rbms[1].weight, second.weight)
    assert torch.equal(dbn.rbms[1].visible_bias, second.visible_bias)
    assert torch.allclose(dbn.transform(x), second.hidden_probs(first.hidden_probs(x)))


def test_to_network_is_a_sigmoid_mlp_with_the_rbm_weights():
    x = binary_data()
    dbn = DBN([16, 8, 4])
    pretrain(x, dbn, epochs=2, batch_size=20)
    network = dbn.to_network(3, seed=5)
    assert network.config()["act"] == "sigmoid" and network.layer_names() == ["dense1", "dense2", "dense3"]
    assert torch.equal(network.layers[1].weight, dbn.rbms[1].weight)
    assert torch.equal(network.layers[1].bias, dbn.rbms[1].hidden_bias)
    assert torch.allclose(network.hidden(x, "dense2"), dbn.transform(x), atol=1e-6)
    fresh = build("16-8-4-3", act="sigmoid", seed=5)  # the output layer keeps the builder's initialisation
    assert torch.equal(network.layers[2].weight, fresh.layers[2].weight)
    assert network(x).shape == (300, 3)


def test_dbn_samples_reproduce_the_training_patterns():
    # how the top RBM's chains split between the two modes varies with the seed (seeds 0-4 gave
    # A = 0.16, 0.03, 0.58, 0.18, 0.74 when CD drew from one generator; 0.01, 1.0, 0.47, 0.8, 0.74
    # with the run's named generators), so the seed is one where both modes are found
    dbn = DBN([8, 6, 4], seed=2)
    pretrain(TWO_PATTERNS.repeat(100, 1), dbn, layer_epochs=[100, 100], lr=0.1, batch_size=10, momentum=0.5, seed=2)
    snapshots = dbn.chains(200, [1, 100], torch.Generator().manual_seed(1))
    assert [tuple(s.shape) for s in snapshots] == [(200, 8), (200, 8)]
    samples = snapshots[-1].round()
    is_a = (samples == TWO_PATTERNS[0]).all(1).float().mean().item()
    is_b = (samples == TWO_PATTERNS[1]).all(1).float().mean().item()
    print(f"DBN samples: pattern A {is_a:.2f}, pattern B {is_b:.2f}")
    assert is_a + is_b > 0.9 and min(is_a, is_b) > 0.1


def test_a_single_rbm_shows_the_probabilities_of_its_last_gibbs_step():
    dbn = DBN([8, 6])
    pretrain(TWO_PATTERNS.repeat(20, 1), dbn, epochs=5, batch_size=10, seed=0)
    (image,) = dbn.chains(4, [3], torch.Generator().manual_seed(2))
    top, g = dbn.rbms[0], torch.Generator().manual_seed(2)  # replay: start state, 2 Gibbs steps, then v -> h
    p = torch.sigmoid(top.visible_bias).expand(4, -1)
    v = top.gibbs((torch.rand(p.shape, generator=g) < p).float(), 2, g)
    expected = top.visible_probs(top.sample_hidden(v, g))  # (4, 8): P(v | h), not a binary sample
    assert torch.allclose(image, expected) and ((image > 0) & (image < 1)).all()
    with pytest.raises(SpecError, match="strictly increasing"):
        dbn.chains(4, [3, 3])


def test_bad_stacks_are_refused():
    with pytest.raises(SpecError, match="at least one hidden"):
        DBN([16])
    with pytest.raises(SpecError, match="one per layer"):
        pretrain(binary_data(), DBN([16, 8, 4]), layer_epochs=[1, 2, 3])
    with pytest.raises(TrainingError, match="trained greedily"):
        capas.fit(DBN([16, 8]), binary_data(), quiet=True)
    with pytest.raises(SpecError, match="method 'rbm'"):
        capas.pretrain(binary_data(), DBN([16, 8]), method="ae")
    with pytest.raises(SpecError, match="sizes must match"):
        DBN([16, 8]).copy_into(build("16-9-3"))
    assert DBN([16, 8, 4], visible="gaussian").rbms[1].visible == "bernoulli"


def test_a_dbn_round_trips_through_its_config():
    dbn = DBN([16, 8, 4], visible="gaussian", seed=3)
    rebuilt = capas.models.registry.from_config(dbn.config())
    assert isinstance(rebuilt, DBN) and rebuilt.config() == dbn.config()
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), dbn.state_dict().values()))
    assert [rbm.visible for rbm in rebuilt.rbms] == ["gaussian", "bernoulli"]
