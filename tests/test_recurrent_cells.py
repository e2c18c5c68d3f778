"""Recurrent cells pinned to torch.nn (float64, same weights) or to finite differences."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from capas.errors import SpecError
from capas.layers.recurrent import Recurrent, sequence_mask

F, H, B, T = 3, 4, 2, 5


@pytest.fixture(autouse=True)
def _float64():
    """Every comparison here runs in float64; the default dtype is restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _x(seed: int = 0, steps: int = T) -> torch.Tensor:
    return torch.randn(B, steps, F, generator=torch.Generator().manual_seed(seed))


def _copy_plain(ours: Recurrent, theirs: nn.RNNBase, gru: bool = False) -> None:
    """Give torch's module our weights: its bias_ih is our bias, its bias_hh zero (redundant);
    a GRU's z rows negated (torch's z is our 1 - z) and its b_hn ours."""
    directions = 2 if theirs.bidirectional else 1
    with torch.no_grad():
        for index, cell in enumerate(ours.cells):
            layer, direction = divmod(index, directions)
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            weights = cell.torch_weights() if gru else [cell.weight_ih, cell.weight_hh, cell.bias, 0 * cell.bias]
            for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), weights):
                getattr(theirs, name + suffix).copy_(value)


def _grads(module: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize(
    "kind, torch_class, extra",
    [
        ("elman", nn.RNN, {}),
        ("lstm", nn.LSTM, {}),
        ("gru", nn.GRU, {}),
        ("elman", nn.RNN, {"layers": 2, "bidirectional": True}),
        ("lstm", nn.LSTM, {"layers": 2, "bidirectional": True}),
        ("gru", nn.GRU, {"layers": 3}),
    ],
)
@pytest.mark.parametrize("fused", [True, False])
def test_cells_match_torch_outputs_and_gradients(kind, torch_class, extra, fused):
    torch.manual_seed(0)
    ours = Recurrent(kind, F, H, **extra)
    ours.fused = fused
    theirs = torch_class(
        F, H, batch_first=True, num_layers=extra.get("layers", 1), bidirectional=extra.get("bidirectional", False)
    )
    _copy_plain(ours, theirs, gru=kind == "gru")
    x = _x()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = ours(x1)
    expected = theirs(x2)[0]
    torch.testing.assert_close(out, expected)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    # our single bias gets the gradient torch's bias_ih gets; weights likewise
    directions = 2 if extra.get("bidirectional") else 1
    for index, cell in enumerate(ours.cells):
        layer, direction = divmod(index, directions)
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        sign = torch.ones(cell.weight_ih.shape[0], dtype=torch.float64)
        if kind == "gru":
            sign[H : 2 * H] = -1
        torch.testing.assert_close(cell.weight_ih.grad, getattr(theirs, "weight_ih" + suffix).grad * sign[:, None])
        torch.testing.assert_close(cell.weight_hh.grad, getattr(theirs, "weight_hh" + suffix).grad * sign[:, None])
        torch.testing.assert_close(cell.bias.grad, getattr(theirs, "bias_ih" + suffix).grad * sign)
        if kind == "gru":
            torch.testing.assert_close(cell.bias_hn.grad, getattr(theirs, "bias_hh" + suffix).grad[2 * H :])


def test_gru_update_gate_is_the_slides_one():
    """h_t = (1 - z) h_{t-1} + z h~: a saturated z = 0 keeps the state, z = 1 takes the candidate."""
    torch.manual_seed(1)
    layer = Recurrent("gru", F, H)
    layer.record = True
    cell = layer.cells[0]
    with torch.no_grad():
        cell.bias[H : 2 * H] = -50.0  # z = sigmoid(-50) ~ 0: the state never moves from h_0 = 0
    assert layer(_x()).abs().max() < 1e-15
    with torch.no_grad():
        cell.bias[H : 2 * H] = 50.0  # z ~ 1: h_t = h~_t
    out = layer(_x())
    torch.testing.assert_close(out, layer.records[0]["candidate"])


def test_slides_gru_reset_differs_from_torch_form_and_has_the_slides_equation():
    torch.manual_seed(2)
    slides = Recurrent("gru", F, H, reset="slides")
    cell = slides.cells[0]
    x = _x()
    h = torch.zeros(B, H)
    expected = []
    w_r, w_z, w_n = cell.weight_ih.split(H)
    u_r, u_z, u_n = cell.weight_hh.split(H)
    b_r, b_z, b_n = cell.bias.split(H)
    for t in range(T):
        r = torch.sigmoid(x[:, t] @ w_r.T + h @ u_r.T + b_r)
        z = torch.sigmoid(x[:, t] @ w_z.T + h @ u_z.T + b_z)
        candidate = torch.tanh(x[:, t] @ w_n.T + (r * h) @ u_n.T + b_n)
        h = (1 - z) * h + z * candidate
        expected.append(h)
    torch.testing.assert_close(slides(x), torch.stack(expected, 1))
    torch_form = Recurrent("gru", F, H)
    with torch.no_grad():
        for a, b in zip(torch_form.cells[0].parameters(), [cell.weight_ih, cell.weight_hh, cell.bias]):
            a.copy_(b)
        torch_form.cells[0].bias_hn.zero_()
    assert (torch_form(x) - slides(x)).abs().max() > 1e-3  # r * (U h) is not U (r * h)
    assert sum(p.numel() for p in slides.parameters()) == 3 * H * (F + H + 1)
    assert sum(p.numel() for p in torch_form.parameters()) == 3 * H * (F + H + 1) + H


def test_parameter_counts_one_bias_per_gate():
    assert sum(p.numel() for p in Recurrent("lstm", 28, 128).parameters()) == 4 * 128 * (28 + 128 + 1)
    assert sum(p.numel() for p in nn.LSTM(28, 128).parameters()) == 4 * 128 * (28 + 128 + 2)
    assert sum(p.numel() for p in Recurrent("elman", 5, 7, layers=2).parameters()) == 7 * (5 + 7 + 1) + 7 * (7 + 7 + 1)
    assert sum(p.numel() for p in Recurrent("jordan", 5, 7, output_size=3).parameters()) == 7 * (5 + 3 + 1) + 3 * 8
    assert sum(p.numel() for p in Recurrent("second_order", 5, 7).parameters()) == 7 * 5 * 8 + 7


def _finite_difference_check(layer: Recurrent, x: torch.Tensor, teacher: torch.Tensor | None = None) -> None:
    weights = torch.randn(B, T, layer.output_size, generator=torch.Generator().manual_seed(9))

    def energy() -> torch.Tensor:
        return (layer(x, teacher=teacher) * weights).sum()

    layer.zero_grad()
    energy().backward()
    eps = 1e-6
    for parameter in layer.parameters():
        flat, grad = parameter.data.view(-1), parameter.grad.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 7)):
            keep = flat[i].item()
            flat[i] = keep + eps
            plus = energy().item()
            flat[i] = keep - eps
            minus = energy().item()
            flat[i] = keep
            assert abs((plus - minus) / (2 * eps) - grad[i].item()) < 1e-7


@pytest.mark.parametrize("kind", ["jordan", "second_order", "gru_slides", "irnn"])
def test_bptt_gradients_match_finite_differences(kind):
    torch.manual_seed(3)
    if kind == "gru_slides":
        layer = Recurrent("gru", F, H, reset="slides")
    else:
        layer = Recurrent(kind, F, H, output_size=2 if kind == "jordan" else None)
    _finite_difference_check(layer, _x(4))


def test_jordan_equations_and_teacher_forcing():
    torch.manual_seed(5)
    layer = Recurrent("jordan", F, H, output_size=2)
    cell = layer.cells[0]
    x = _x()
    teacher = torch.rand(B, T, 2)
    for forced in (None, teacher):
        y = torch.zeros(B, 2)
        expected = []
        for t in range(T):
            previous = y if forced is None or t == 0 else forced[:, t - 1]
            h = torch.tanh(x[:, t] @ cell.weight_ih.T + previous @ cell.weight_hh.T + cell.bias)
            y = torch.tanh(h @ cell.weight_out.T + cell.bias_out)
            expected.append(y)
        torch.testing.assert_close(layer(x, teacher=forced), torch.stack(expected, 1))
    _finite_difference_check(layer, x, teacher)


def test_second_order_is_the_bilinear_sum():
    torch.manual_seed(6)
    layer = Recurrent("second_order", F, H)
    cell = layer.cells[0]
    x = _x()
    h = torch.zeros(B, H)
    for t in range(T):
        total = torch.zeros(B, H)
        augmented = torch.cat([h, torch.ones(B, 1)], 1)
        for i in range(H):
            for j in range(F):
                for k in range(H + 1):
                    total[:, i] += cell.weight[i, j, k] * x[:, t, j] * augmented[:, k]
        h = torch.tanh(total + cell.bias)
    torch.testing.assert_close(layer(x)[:, -1], h)


def test_irnn_starts_as_identity_recurrence():
    layer = Recurrent("irnn", F, H)
    cell = layer.cells[0]
    assert torch.equal(cell.weight_hh, torch.eye(H)) and not cell.bias.any()
    assert cell.weight_ih.std() < 0.01 and cell.activation.name == "relu"


def test_mask_freezes_the_state_and_packed_equals_padded():
    torch.manual_seed(7)
    x = _x(steps=6)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    for kind, extra in (("lstm", {}), ("gru", {"bidirectional": True}), ("elman", {"layers": 2})):
        layer = Recurrent(kind, F, H, **extra)
        short = layer(x[1:, :3])  # the second sequence alone, at its real length
        results = []
        for fused, packed in ((False, False), (True, False), (True, True)):
            layer.fused, layer.packed = fused, packed
            with sequence_mask(mask):
                out = layer(x)
            torch.testing.assert_close(out[1:, :3], short)
            assert not out[1, 3:].any()  # padded steps give zeros
            results.append(out)
        torch.testing.assert_close(results[0], results[1])
        torch.testing.assert_close(results[0], results[2])


def test_truncated_bptt_cuts_gradients_beyond_k_steps():
    torch.manual_seed(8)
    for fused in (True, False):
        layer = Recurrent("lstm", F, H)
        layer.fused, layer.tbptt = fused, 2
        x = _x(steps=6).requires_grad_()
        out = layer(x)
        out[:, -1].sum().backward()  # the last step reads back only steps 4 and 5
        assert x.grad[:, :4].abs().max() == 0 and x.grad[:, 4:].abs().max() > 0
        layer.eval()  # no truncation outside training
        x.grad = None
        layer(x)[:, -1].sum().backward()
        assert x.grad[:, 0].abs().max() > 0


def test_recorded_states_give_per_step_gradients():
    torch.manual_seed(9)
    layer = Recurrent("elman", F, H)
    layer.record = True
    out = layer(_x())
    out[:, -1].sum().backward()
    grads = [state.grad for state in layer.states[0]]
    assert len(grads) == T and all(g is not None for g in grads)
    torch.testing.assert_close(grads[-1], torch.ones(B, H))  # dE/dh_T of sum(h_T)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(2, 4), r"elman: expects sequences \(B, T, 3\), got a tensor of shape \(2, 4\)"),
        (torch.zeros(2, 4, 5), r"expects sequences \(B, T, 3\), got a tensor of shape \(2, 4, 5\)"),
        (torch.zeros(2, 0, 3), "empty sequences"),
    ],
)
def test_bad_sequences_are_one_line_errors(bad, message):
    with pytest.raises(SpecError, match=message):
        Recurrent("elman", 3, 4)(bad)


def test_bad_masks_are_one_line_errors():
    layer = Recurrent("elman", F, H)
    for mask, message in (
        (torch.tensor([[True, False, True, False, False]] * B), "prefix"),
        (torch.tensor([[False] * T] * B), "empty"),
        (torch.ones(B, T + 2, dtype=torch.bool), r"\(B, T\) = \(B, 5\)"),
    ):
        with pytest.raises(SpecError, match=message), sequence_mask(mask):
            layer(_x())
