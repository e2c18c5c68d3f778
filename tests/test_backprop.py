"""The explicit delta-rule engine against autograd (float64), and its stepper interface."""

from __future__ import annotations

import pytest
import torch

from capas.backprop import BackpropStepper, supports, unsupported_reason
from capas.errors import TrainingError
from capas.models.network import build
from capas.objectives import Loss, penalized_parameters, penalty
from capas.train.config import TrainConfig

ACTIVATIONS = ["linear", "sigmoid", "tanh", "softsign", "relu", "leaky_relu:0.2", "elu:0.5", "selu"]
LOSSES = ["mse", "mse_half_sum", "cross_entropy", "binary_cross_entropy"]
PENALTIES = [(0.0, 0.0, False), (0.01, 0.0, False), (0.0, 0.03, True), (0.02, 0.05, False)]  # l1, l2, bias


def make_model(spec: str, loss: str, act: str = "tanh", output_act: str | None = None, seed: int = 0):
    """A float64 network; ``mse_half_sum`` is built as ``mse`` (same linear output)."""
    built_loss = "mse" if loss == "mse_half_sum" else loss
    return build(spec, act=act, loss=built_loss, output_act=output_act, seed=seed).double()


def autograd_gradients(model, loss: Loss, x, y, l1=0.0, l2=0.0, regularize_bias=False, masks=()):
    """dE/dtheta by autograd, E = the trainer's loss + penalty; ``masks`` replace dropout."""
    dropouts = [m for m in model.layers if isinstance(m, torch.nn.Dropout)]
    hooks = [d.register_forward_hook(lambda mod, args, out, m=m: args[0] * m) for d, m in zip(dropouts, masks)]
    try:
        output = model.logits(x) if loss.from_logits else model(x)
        objective = loss(output, y) + penalty(penalized_parameters(model, regularize_bias), l2=l2, l1=l1)
        grads = torch.autograd.grad(objective, list(model.parameters()))
    finally:
        for hook in hooks:
            hook.remove()
    return loss(output, y).detach(), grads


def engine_gradients(stepper: BackpropStepper) -> list[torch.Tensor]:
    """The engine's gradients in ``model.parameters()`` order."""
    return [grad for _, _, grad in stepper._pairs]


def assert_close_relative(mine, reference, rtol=1e-10):
    for a, b in zip(mine, reference, strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= rtol * b.abs().max().item() + 1e-300


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradients_equal_autograd(act, loss_name):
    """Dense + maxout + dropout chain, every hidden activation, loss and penalty kind."""
    index = ACTIVATIONS.index(act) + LOSSES.index(loss_name)
    l1, l2, regularize_bias = PENALTIES[index % len(PENALTIES)]
    model = make_model(f"6-5:{act}-mx4x2-drop0.25-3", loss_name, act=act, seed=index)
    loss = Loss(loss_name, num_classes=3, target_encoding="tanh" if loss_name == "mse" else "onehot")
    generator = torch.Generator().manual_seed(index)
    x = torch.randn(9, 6, dtype=torch.float64, generator=generator)
    y = torch.randint(0, 3, (9,), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stepper = BackpropStepper(
        model, optimizer, loss, l1=l1, l2=l2, regularize_bias=regularize_bias, generator=generator
    )
    with torch.no_grad():
        value = stepper.net.gradients(x, y)
    masks = [m for m in stepper.net.last.mask if m is not None]
    assert len(masks) == 1 and set(masks[0].unique().tolist()) <= {0.0, 1 / 0.75}
    reference_value, reference = autograd_gradients(model, loss, x, y, l1, l2, regularize_bias, masks)
    assert value.item() == pytest.approx(reference_value.item(), rel=1e-12)
    assert_close_relative(engine_gradients(stepper), reference)


@pytest.mark.parametrize(
    ("spec", "loss_name", "output_act"),
    [
        ("2x3-4-1", "binary_cross_entropy", None),  # one sigmoid unit for two classes, image input
        ("5-4:sigmoid-3", "mse_half_sum", "sigmoid"),  # the slides' sigmoid outputs
        ("5-4:relu-3", "mse", "softmax"),  # softmax + squared error: full Jacobian product
        ("5-mx4x3-3", "mse", "elu"),
    ],
)
def test_gradients_other_outputs_and_targets(spec, loss_name, output_act):
    model = make_model(spec, loss_name, output_act=output_act, seed=3)
    k = model.output_shape[0]
    loss = Loss(loss_name, num_classes=max(k, 2))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8, *model.input_shape, dtype=torch.float64, generator=generator)
    y = torch.randint(0, max(k, 2), (8,), generator=generator)
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.1), loss)
    with torch.no_grad():
        value = stepper.net.gradients(x, y)
    reference_value, reference = autograd_gradients(model, loss, x, y)
    assert value.item() == pytest.approx(reference_value.item(), rel=1e-12)
    assert_close_relative(engine_gradients(stepper), reference)


def test_regression_targets_without_bias():
    """Float targets (B, K) and a Dense layer without bias."""
    from torch import nn

    from capas.layers import Dense

    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Dense(3, 4, "tanh", bias=False), Dense(4, 2, "linear")])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    torch.manual_seed(0)
    model = Chain().double()
    x, t = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.1), "sse")
    with torch.no_grad():
        value = stepper.net.gradients(x, t)
    objective = 0.5 * (model(x) - t).pow(2).sum() / 6
    assert value.item() == pytest.approx(objective.item(), rel=1e-12)
    assert_close_relative(engine_gradients(stepper), torch.autograd.grad(objective, list(model.parameters())))


def test_layer_grad_norms_and_deltas():
    """Norms keyed by layer name equal autograd's; delta^l = -B dE/dphi^l (slides' sign)."""
    model = make_model("4-5:sigmoid-drop0.5-3:tanh-2", "mse_half_sum", seed=2)
    x = torch.randn(7, 4, dtype=torch.float64)
    t = torch.randn(7, 2, dtype=torch.float64)
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.5), "mse_half_sum")
    model.eval()  # evaluation mode: no dropout in either engine
    phis = []
    hooks = [
        layer.activation.register_forward_pre_hook(lambda m, a: phis.append(a[0]))
        for layer in model.layers
        if hasattr(layer, "activation")
    ]
    objective = 0.5 * (model(x) - t).pow(2).sum() / 7
    for hook in hooks:
        hook.remove()
    grads = torch.autograd.grad(objective, [*phis, *model.parameters()])
    stepper.step(x, t)
    norms = stepper.layer_grad_norms()
    assert list(norms) == ["dense1", "dense2", "dense3"]  # model.layer_names() minus the dropout layer
    assert stepper.net.last.mask[1] is not None and not stepper.net.training
    weight_grads = [g for g in grads[len(phis) :] if g.dim() == 2]
    for norm, grad in zip(norms.values(), weight_grads):
        assert norm.item() == pytest.approx(grad.norm().item(), rel=1e-12)
    for delta, grad_phi in zip(stepper.last_deltas.values(), grads[: len(phis)]):
        torch.testing.assert_close(delta, -7 * grad_phi, rtol=1e-12, atol=1e-14)


def test_dropout_masks_are_inverted_and_seeded():
    model = make_model("200-drop0.3-50-2", "mse", seed=0)
    x = torch.randn(400, 200, dtype=torch.float64)

    def masks(seed):
        stepper = BackpropStepper(
            model, torch.optim.SGD(model.parameters(), lr=0.0), "mse", generator=torch.Generator().manual_seed(seed)
        )
        stepper.step(x, torch.zeros(400, 2, dtype=torch.float64))
        return stepper.net.last.mask[0].clone()

    first = masks(5)
    assert torch.equal(first, masks(5)) and not torch.equal(first, masks(6))
    kept = (first > 0).double().mean().item()
    assert kept == pytest.approx(0.7, abs=0.01)  # 80,000 draws: 5 sigma ~ 0.008
    assert set(first.unique().tolist()) == {0.0, 1 / 0.7}


def test_supports_and_reasons():
    plain = build("8-6-3", seed=0)
    assert supports(plain, TrainConfig()) is None
    assert supports(plain, TrainConfig(loss="sse")) is None  # squared error of softmax outputs: J^T e
    assert "amp" in supports(plain, TrainConfig(amp=True))
    assert "class weights" in supports(plain, TrainConfig(class_weights="balanced"))
    conv = build("1x8x8 c3x3x2 flat 5", seed=0)
    assert "plain MLP" in supports(conv, TrainConfig())
    assert "unknown loss" in unsupported_reason(plain, "hinge")
    assert "softmax" in unsupported_reason(build("8-6-3", loss="mse", seed=0), "cross_entropy")
    frozen = build("8-6-3", seed=0)
    frozen.layers[0].weight.requires_grad_(False)
    assert "frozen" in supports(frozen, TrainConfig())
    with pytest.raises(TrainingError, match="engine='autograd'"):
        BackpropStepper(conv, torch.optim.SGD(conv.parameters(), lr=0.1), "cross_entropy")


def test_dtype_mismatch_is_a_clear_error():
    model = build("4-3-2", seed=0)  # float32
    stepper = BackpropStepper(model, torch.optim.SGD(model.parameters(), lr=0.1), "cross_entropy")
    with pytest.raises(TrainingError, match="model.double"):
        stepper.step(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.long))
