"""RBM maths against brute force, scikit-learn and sampling statistics (fixed seeds)."""

import itertools
import math

import numpy as np
import pytest
import torch

import capas
from capas.errors import DataError, SpecError, TrainingError
from capas.models.rbm import RBM, CDOptions


def train(rbm, x, *, k=1, persistent=False, sparsity_target=None, sparsity_cost=0.0, **options):
    """CD-k / PCD-k through the one training loop (``capas.fit``); the history."""
    task_options = {
        "k": k,
        "persistent": persistent,
        "sparsity_target": sparsity_target,
        "sparsity_cost": sparsity_cost,
    }
    return capas.fit(rbm, x, quiet=True, task_options=task_options, **options).history


def random_rbm(n_visible, n_hidden, visible="bernoulli", seed=0, scale=1.0, dtype=torch.float64):
    rbm = RBM(n_visible, n_hidden, visible).to(dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (rbm.weight, rbm.hidden_bias, rbm.visible_bias):
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=dtype))
    return rbm


def all_binary(n, dtype=torch.float64):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=dtype)  # (2^n, n)


def hand_energy(rbm, v, h):
    """E(v, h) written with explicit sums over units, for one joint state."""
    W, b, c = rbm.weight.tolist(), rbm.visible_bias.tolist(), rbm.hidden_bias.tolist()
    e = -sum(c[j] * h[j] for j in range(len(h)))
    e -= sum(h[j] * W[j][i] * v[i] for j in range(len(h)) for i in range(len(v)))
    if rbm.visible == "bernoulli":
        e -= sum(b[i] * v[i] for i in range(len(v)))
    else:
        e += sum((v[i] - b[i]) ** 2 for i in range(len(v))) / 2
    return e


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_matches_brute_force_sum_over_hidden_states(visible):
    rbm = random_rbm(4, 3, visible)
    vs = (
        all_binary(4)
        if visible == "bernoulli"
        else torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )
    hs = all_binary(3).tolist()
    brute = [-math.log(sum(math.exp(-hand_energy(rbm, v, h)) for h in hs)) for v in vs.tolist()]
    assert torch.allclose(rbm.free_energy(vs), torch.tensor(brute, dtype=torch.float64), atol=1e-10)
    v_rep, h_rep = vs.repeat_interleave(len(hs), 0), torch.tensor(hs, dtype=torch.float64).repeat(len(vs), 1)
    expected = [hand_energy(rbm, v, h) for v, h in zip(v_rep.tolist(), h_rep.tolist())]
    assert torch.allclose(rbm.energy(v_rep, h_rep), torch.tensor(expected, dtype=torch.float64), atol=1e-10)


def test_marginal_is_proportional_to_exp_minus_free_energy():
    rbm = random_rbm(4, 3)
    vs, hs = all_binary(4).tolist(), all_binary(3).tolist()
    joint = torch.tensor([[math.exp(-hand_energy(rbm, v, h)) for h in hs] for v in vs], dtype=torch.float64)
    p_brute = joint.sum(1) / joint.sum()  # (16,) exact marginal p(v)
    p_free = torch.softmax(-rbm.free_energy(all_binary(4)), 0)
    assert torch.allclose(p_free, p_brute, atol=1e-12)
    assert p_brute.sum().item() == pytest.approx(1.0)


def test_conditionals_are_the_brute_force_conditionals():
    rbm = random_rbm(4, 3)
    vs, hs = all_binary(4), all_binary(3)
    joint = torch.tensor(
        [[math.exp(-hand_energy(rbm, v, h)) for h in hs.tolist()] for v in vs.tolist()], dtype=torch.float64
    )  # (16, 8)
    p_h_given_v = joint / joint.sum(1, keepdim=True)
    assert torch.allclose(p_h_given_v @ hs, rbm.hidden_probs(vs), atol=1e-12)  # E[h_j | v] = P(h_j = 1 | v)
    p_v_given_h = joint / joint.sum(0, keepdim=True)
    assert torch.allclose(p_v_given_h.T @ vs, rbm.visible_probs(hs), atol=1e-12)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_mean_of_sampled_states_matches_mean_field_probabilities(visible):
    rbm = random_rbm(6, 5, visible)
    g = torch.Generator().manual_seed(3)
    v = torch.rand(4, 6, generator=g, dtype=torch.float64).round().repeat(5000, 1)  # (20000, 6)
    h = rbm.sample_hidden(v, g)
    assert set(h.unique().tolist()) <= {0.0, 1.0}
    p = rbm.hidden_probs(v[:4])
    mean = h.reshape(5000, 4, 5).mean(0)
    assert torch.allclose(mean, p, atol=4 * math.sqrt(0.25 / 5000))
    hb = torch.rand(4, 5, generator=g, dtype=torch.float64).round().repeat(5000, 1)
    vb = rbm.sample_visible(hb, g).reshape(5000, 4, 6)
    assert torch.allclose(vb.mean(0), rbm.visible_probs(hb[:4]), atol=4 * math.sqrt(1.0 / 5000))
    if visible == "gaussian":
        assert torch.allclose(vb.var(0), torch.ones(4, 6, dtype=torch.float64), atol=0.1)


def test_pseudo_log_likelihood_equals_scikit_learn_score_samples():
    from sklearn.neural_network import BernoulliRBM

    rbm = random_rbm(7, 4)
    v = torch.rand(50, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64).round()
    sk = BernoulliRBM(n_components=4, random_state=11)
    sk.components_ = rbm.weight.numpy().copy()
    sk.intercept_hidden_ = rbm.hidden_bias.numpy().copy()
    sk.intercept_visible_ = rbm.visible_bias.numpy().copy()
    flip = np.random.RandomState(11).randint(0, 7, 50)  # the units sklearn flips for random_state=11
    ours = rbm.pseudo_log_likelihood(v, flip=torch.from_numpy(flip))
    np.testing.assert_allclose(ours.numpy(), sk.score_samples(v.numpy()), rtol=1e-10)


TWO_PATTERNS = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]], dtype=torch.float32)


@pytest.mark.parametrize("persistent", [False, True])
def test_gibbs_samples_of_a_trained_rbm_reproduce_two_patterns(persistent):
    data = TWO_PATTERNS.repeat(100, 1)  # (200, 8)
    rbm = RBM(8, 4)
    history = train(rbm, data, epochs=150, batch_size=10, lr=0.1, k=1, persistent=persistent, momentum=0.5, seed=0)
    assert history[-1]["train_reconstruction_error"] < history[0]["train_reconstruction_error"]
    assert history[-1]["train_reconstruction_error"] < 0.05
    samples = rbm.sample(400, steps=50, generator=torch.Generator().manual_seed(5))  # (400, 8)
    is_a = (samples == TWO_PATTERNS[0]).all(1).float().mean().item()
    is_b = (samples == TWO_PATTERNS[1]).all(1).float().mean().item()
    p_model = torch.softmax(-rbm.free_energy(all_binary(8, torch.float32)), 0)  # exact p(v) over 256 states
    p_a, p_b = p_model[0b11110000].item(), p_model[0b00001111].item()
    print(f"persistent={persistent}: samples A {is_a:.2f} B {is_b:.2f}; exact p(A) {p_a:.3f} p(B) {p_b:.3f}")
    assert is_a + is_b > 0.95 and min(is_a, is_b) > 0.2
    assert p_a + p_b > 0.95
    if not persistent:  # at a fixed lr, PCD's model swings its mass between the modes its chains visit
        assert min(p_a, p_b) > 0.02  # (Tieleman & Hinton 2009); CD-1 keeps both, if not at 50/50


def test_fit_is_reproducible_and_records_every_epoch():
    data = TWO_PATTERNS.repeat(20, 1)
    runs = [RBM(8, 3) for _ in range(2)]
    histories = [train(rbm, data, epochs=3, batch_size=8, lr=0.1, seed=4) for rbm in runs]
    assert torch.equal(runs[0].weight, runs[1].weight)
    assert [len(h) for h in histories] == [3, 3]
    assert set(histories[0][0]) == {
        "epoch",
        "lr",
        "train_reconstruction_error",
        "train_free_energy",
        "train_pseudo_log_likelihood",
        "seconds",
    }
    assert [h["train_reconstruction_error"] for h in histories[0]] == [
        h["train_reconstruction_error"] for h in histories[1]
    ]


def test_sparsity_target_lowers_mean_hidden_activation():
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(500, 16, generator=g) < 0.5).float()
    means = {}
    for cost in (0.0, 5.0):
        rbm = RBM(16, 20)
        train(rbm, data, epochs=10, batch_size=20, lr=0.05, sparsity_target=0.05, sparsity_cost=cost, seed=1)
        means[cost] = rbm.hidden_probs(data).mean().item()
    print("mean hidden activation without/with sparsity:", means)
    assert means[5.0] < 0.15 < means[0.0]


def test_bad_input_gives_clear_errors():
    with pytest.raises(SpecError, match="visible unit type"):
        RBM(3, 2, visible="poisson")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        train(RBM(3, 2), torch.full((4, 3), 2.0), lr=0.1)
    with pytest.raises(DataError, match="3 visible units"):
        train(RBM(3, 2), torch.zeros(4, 5), lr=0.1)
    with pytest.raises(SpecError, match="k >= 1"):
        CDOptions(k=0)
    with pytest.raises(SpecError, match="Bernoulli"):
        RBM(3, 2, "gaussian").pseudo_log_likelihood(torch.zeros(1, 3))


def test_divergence_stops_training_with_a_hint():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0)) * 30  # far from unit variance
    with pytest.raises(TrainingError, match="lower the learning rate"):
        train(RBM(8, 4, "gaussian"), x, epochs=20, lr=1.0, batch_size=20)


class InterruptAt(capas.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) at batch ``step`` of epoch ``epoch``."""

    def __init__(self, epoch, step):
        self.epoch, self.step, self.current = epoch, step, 0

    def on_epoch_begin(self, trainer, epoch):
        self.current = epoch

    def on_batch_end(self, trainer, step, loss):
        if (self.current, step) == (self.epoch, self.step):
            raise KeyboardInterrupt


@pytest.mark.parametrize("persistent", [False, True])
def test_an_interrupted_cd_run_resumes_to_the_same_weights_chains_and_velocities(tmp_path, persistent):
    data = TWO_PATTERNS.repeat(30, 1)  # (60, 8)
    options = dict(
        epochs=5,
        batch_size=8,
        lr=0.1,
        momentum=0.5,
        seed=2,
        quiet=True,
        task_options={"k": 2, "persistent": persistent, "sparsity_target": 0.2, "sparsity_cost": 1.0},
    )
    whole = capas.fit(RBM(8, 4), data, out=tmp_path / "whole", **options)
    with pytest.raises(KeyboardInterrupt):
        capas.fit(RBM(8, 4), data, out=tmp_path / "cut", callbacks=[InterruptAt(4, 3)], **options)
    resumed = capas.fit(RBM(8, 4), data, resume=tmp_path / "cut", epochs=5, quiet=True)
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    states = [capas.train.load_run(tmp_path / run).checkpoint()[2] for run in ("whole", "cut")]
    task_keys = sorted(k for k in states[0] if k.startswith("task/"))
    assert ("task/chains" in task_keys) == persistent and "task/velocity/weight" in task_keys
    assert all(torch.equal(states[0][k], states[1][k]) for k in task_keys)
    assert whole.history.without_timing() == resumed.history.without_timing()
    assert capas.load_run(tmp_path / "cut").config["task"]["options"]["k"] == 2
    reloaded = capas.load_model(tmp_path / "cut")  # model.json: the registry's "rbm" kind
    assert isinstance(reloaded, RBM) and torch.equal(reloaded.weight, whole.model.weight)


def test_options_cd_cannot_honour_are_refused():
    data = TWO_PATTERNS.repeat(4, 1)
    with pytest.raises(TrainingError, match="scheduler do\\(es\\) not apply to RBM"):
        capas.fit(RBM(8, 2), data, lr=0.1, scheduler="cosine", quiet=True)
    with pytest.raises(TrainingError, match="does not take gibbs_steps; its task options are k, persistent"):
        capas.fit(RBM(8, 2), data, lr=0.1, quiet=True, task_options={"gibbs_steps": 3})
    with pytest.raises(TrainingError, match="curriculum_scores"):
        capas.fit(RBM(8, 2), data, lr=0.1, quiet=True, curriculum_scores=torch.zeros(8))


def test_an_rbm_fit_leaves_the_global_generator_alone_and_uses_the_lr_and_weight_decay_given():
    data = TWO_PATTERNS.repeat(10, 1)
    torch.manual_seed(999)
    expected = torch.rand(1)
    torch.manual_seed(999)
    decayed, plain = RBM(8, 3), RBM(8, 3)
    history = capas.fit(decayed, data, lr=0.05, l2=0.5, epochs=2, batch_size=5, quiet=True).history
    assert torch.equal(torch.rand(1), expected)
    capas.fit(plain, data, lr=0.05, epochs=2, batch_size=5, quiet=True)
    assert [record["lr"] for record in history] == [0.05, 0.05]
    assert decayed.weight.norm() < plain.weight.norm()  # dW -= lr * l2 * W each step
