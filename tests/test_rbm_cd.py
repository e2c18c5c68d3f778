"""The CD-k update against the textbook formula, hand-computed with loops on the same draws."""

import math

import pytest
import torch

from capas.models.rbm import RBM, CDOptions, ContrastiveDivergence


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def hand_cd_step(W, b, c, v0, draws, *, k, lr, weight_decay=0.0, chains=None):
    """<v h>_data - <v h>_recon with explicit loops; ``draws`` pops the uniforms in the documented order.

    Hidden probabilities are used for the statistics. With ``chains`` (PCD) the negative phase starts
    from those hidden states and a final hidden sample is drawn. Returns (dW, db, dc, chains).
    """
    H, V, B = len(W), len(W[0]), len(v0)

    def p_hidden(v):
        return [[sigmoid(c[j] + sum(W[j][i] * v[n][i] for i in range(V))) for j in range(H)] for n in range(len(v))]

    def p_visible(h):
        return [[sigmoid(b[i] + sum(W[j][i] * h[n][j] for j in range(H))) for i in range(V)] for n in range(len(h))]

    def sample(p, u):
        return [[1.0 if u[n][m] < p[n][m] else 0.0 for m in range(len(p[0]))] for n in range(len(p))]

    p0 = p_hidden(v0)
    h = chains if chains is not None else sample(p0, draws.pop(0))
    C = len(h)
    for step in range(k):
        v = sample(p_visible(h), draws.pop(0))
        pk = p_hidden(v)
        if chains is not None or step < k - 1:
            h = sample(pk, draws.pop(0))
    dW = [
        [
            lr
            * (
                sum(p0[n][j] * v0[n][i] for n in range(B)) / B
                - sum(pk[n][j] * v[n][i] for n in range(C)) / C
                - weight_decay * W[j][i]
            )
            for i in range(V)
        ]
        for j in range(H)
    ]
    db = [lr * (sum(v0[n][i] for n in range(B)) / B - sum(v[n][i] for n in range(C)) / C) for i in range(V)]
    dc = [lr * (sum(p0[n][j] for n in range(B)) / B - sum(pk[n][j] for n in range(C)) / C) for j in range(H)]
    return dW, db, dc, h


def add(a, b, scale=1.0):
    """a + scale * b for nested lists."""
    if isinstance(a, list):
        return [add(x, y, scale) for x, y in zip(a, b)]
    return a + scale * b


def tiny_rbm():
    rbm = RBM(3, 2).double()
    with torch.no_grad():
        rbm.weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [-0.3, 0.8, 1.2]]))
        rbm.visible_bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        rbm.hidden_bias.copy_(torch.tensor([-0.4, 0.2]))
    return rbm


V0 = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]


def draws(seed, shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g, dtype=torch.float64).tolist() for shape in shapes]


def cd_shapes(k, B=2, H=2, V=3):
    """The uniforms ContrastiveDivergence.step draws for CD-k: rand(B, H), then per Gibbs step
    rand(B, V) and (except after the last step) rand(B, H)."""
    return [(B, H)] + [(B, V), (B, H)] * (k - 1) + [(B, V)]


def params(rbm):
    return [p.tolist() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)]


def assert_params(rbm, expected):
    for param, value in zip((rbm.weight, rbm.visible_bias, rbm.hidden_bias), expected):
        assert torch.allclose(param, torch.tensor(value, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("k, weight_decay", [(1, 0.0), (3, 0.01)])
def test_cd_step_equals_hand_computed_update(k, weight_decay):
    rbm = tiny_rbm()
    W, b, c = params(rbm)
    options = CDOptions(lr=0.5, k=k, weight_decay=weight_decay, batch_size=2)
    ContrastiveDivergence(rbm, options, torch.Generator().manual_seed(7)).step(torch.tensor(V0, dtype=torch.float64))
    dW, db, dc, _ = hand_cd_step(W, b, c, V0, draws(7, cd_shapes(k)), k=k, lr=0.5, weight_decay=weight_decay)
    assert_params(rbm, [add(W, dW), add(b, db), add(c, dc)])
    assert max(abs(x) for row in dW for x in row) > 1e-3  # the step really moved the weights


def test_momentum_adds_the_previous_increment():
    rbm = tiny_rbm()
    W, b, c = params(rbm)
    options = CDOptions(lr=0.5, momentum=0.9, batch_size=2)
    trainer = ContrastiveDivergence(rbm, options, torch.Generator().manual_seed(3))
    trainer.step(torch.tensor(V0, dtype=torch.float64))
    trainer.step(torch.tensor(V0, dtype=torch.float64))
    uniforms = draws(3, cd_shapes(1) * 2)
    first = hand_cd_step(W, b, c, V0, uniforms, k=1, lr=0.5)[:3]
    W1, b1, c1 = (add(p, d) for p, d in zip((W, b, c), first))
    second = hand_cd_step(W1, b1, c1, V0, uniforms, k=1, lr=0.5)[:3]
    assert_params(rbm, [add(add(p, d2), d1, 0.9) for p, d1, d2 in zip((W1, b1, c1), first, second)])


def test_persistent_cd_continues_the_chains_of_the_previous_step():
    rbm = tiny_rbm()
    W, b, c = params(rbm)
    trainer = ContrastiveDivergence(
        rbm, CDOptions(lr=0.5, k=2, persistent=True, batch_size=2), torch.Generator().manual_seed(5)
    )
    for _ in range(2):
        trainer.step(torch.tensor(V0, dtype=torch.float64))
    # step 1: rand(B, H) starts the chains from h ~ P(h | v0); each Gibbs step draws rand(B, V), rand(B, H)
    uniforms = draws(5, [(2, 2)] + [(2, 3), (2, 2)] * 4)
    p0 = [[sigmoid(c[j] + sum(W[j][i] * V0[n][i] for i in range(3))) for j in range(2)] for n in range(2)]
    chains = [[1.0 if u < p else 0.0 for u, p in zip(us, ps)] for us, ps in zip(uniforms.pop(0), p0)]
    delta = hand_cd_step(W, b, c, V0, uniforms, k=2, lr=0.5, chains=chains)
    W1, b1, c1 = (add(p, d) for p, d in zip((W, b, c), delta[:3]))
    second = hand_cd_step(W1, b1, c1, V0, uniforms, k=2, lr=0.5, chains=delta[3])
    assert_params(rbm, [add(p, d) for p, d in zip((W1, b1, c1), second[:3])])
    assert trainer._chains.tolist() == second[3]
