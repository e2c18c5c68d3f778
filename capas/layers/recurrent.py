"""Recurrent layers, each cell written as the slides' equations (course files 000-002).

Layout (docs/CORE.md): a batch of sequences is ``x (B, T, F)``, batch first; a layer
returns every step's output ``(B, T, H)`` (``H * 2`` when bidirectional); the ``last``
token (:class:`LastStep`) turns that into the many-to-one ``(B, H)``.

Cells (one time step; ``x_t (B, F)``, states ``(B, H)``):

=========  ==========================================================================
Elman      S_t = f(U x_t + W S_{t-1} + b)                        (f = tanh, or relu: IRNN)
Jordan     h_t = f(W^X x_t + W^Y y_{t-1} + b),  y_t = tanh(V h_t + c)   (output-recurrent)
second     h_t = f(sum_jk W_ijk x_j [h_{t-1}; 1]_k + b)          (multiplicative, Giles)
LSTM       i, f, o = sigma(.), g = tanh(.) of W_* x_t + U_* h_{t-1} + b_*;
           c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)       ("four sets of inputs")
GRU        z_t = sigma(W_z x_t + U_z h_{t-1} + b_z), r_t likewise,
           h~_t = tanh(W x_t + U (r_t * h_{t-1}) + b)            reset="slides"
           h~_t = tanh(W x_t + b + r_t * (U h_{t-1} + b_hn))      reset="torch"
           h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
=========  ==========================================================================

Biases: one per gate (the slides' b), so an LSTM of F inputs and H units has
``4H(F + H + 1)`` parameters where ``nn.LSTM`` has ``4H(F + H + 2)``: torch adds two
biases (``bias_ih + bias_hh``) to the same sum, a redundant pair. The exception is the
torch-form GRU's ``b_hn``, which sits *inside* ``r_t * (...)`` and is not redundant, so it
is kept: ``3H(F + H + 1) + H``.

The GRU's two forms: torch (and cuDNN) apply the reset gate *after* the recurrent matrix,
``r * (U h + b_hn)``; the slides (Cho et al. 2014's paper form) before it, ``U (r * h)``.
torch also writes ``h_t = (1 - z) * h~ + z * h_{t-1}``, so its z is the slides' ``1 - z``
(its z rows are the negation of ours). ``reset="torch"`` runs torch's fused kernel;
``reset="slides"`` runs the cell loop.

Speed: Elman (tanh/relu), LSTM and the torch-form GRU run torch's fused kernels
(``fused=True``) unless states are recorded; Jordan, second-order and the slides' GRU
always run the explicit cell loop, which can ``record`` every step's states and gates
(``self.records``) for teaching and for the per-step gradients ||dE/dh_t||.

Variable lengths: right-padded batches with a ``(B, T)`` mask (True at real steps), given
to the layers by :func:`sequence_mask` around a forward pass. Padded steps do not change a
state in the cell loop (the state is carried through them), and their outputs are zero;
the fused kernel runs over the padding (a forward direction's real steps are unaffected)
unless ``packed`` asks for ``pack_padded_sequence``. A bidirectional fused layer packs
whenever there is a mask, since its backward direction must start at each sequence's end.

Truncated BPTT: with ``tbptt = k`` the state is detached every k steps in training, so
gradients flow back at most k steps while the forward pass still carries the state.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from capas.errors import SpecError
from capas.layers.activations import get_activation
from capas.layers.norm import Dropout

_MASK: contextvars.ContextVar[Tensor | None] = contextvars.ContextVar("capas_sequence_mask", default=None)


@contextlib.contextmanager
def sequence_mask(mask: Tensor | None) -> Iterator[None]:
    """Recurrent layers and ``last`` read ``mask`` (B, T) bool for the forward passes inside."""
    token = _MASK.set(mask)
    try:
        yield
    finally:
        _MASK.reset(token)


def current_mask() -> Tensor | None:
    """The mask set by the innermost :func:`sequence_mask`, or None (every step is real)."""
    return _MASK.get()


def lengths_of(mask: Tensor, steps: int) -> Tensor:
    """(B,) int64 lengths of a right-padded mask (B, T); SpecError for any other mask."""
    if mask.dim() != 2 or mask.shape[1] != steps:
        raise SpecError(f"a sequence mask must be (B, T) = (B, {steps}), got {tuple(mask.shape)}")
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    if bool((lengths < 1).any()):
        raise SpecError("a sequence in the batch is empty (its mask has no True step); drop empty sequences")
    if not bool((mask == (torch.arange(steps, device=mask.device) < lengths[:, None])).all()):
        raise SpecError("a sequence mask must be True on a prefix of each row (right padding), False after it")
    return lengths


# ---- cells ---------------------------------------------------------------------------------


def _uniform_(tensors: list[Tensor], hidden: int) -> None:
    """torch's recurrent default: every weight and bias ~ U[-1/sqrt(H), 1/sqrt(H)]."""
    bound = 1.0 / math.sqrt(hidden)
    for tensor in tensors:
        nn.init.uniform_(tensor, -bound, bound)


class Cell(nn.Module, abc.ABC):
    """One time step of a recurrent layer with ``gates`` blocks of H pre-activations:
    ``weight_ih (G*H, F)``, ``weight_hh (G*H, H)``, ``bias (G*H,)``."""

    gates = 1
    kind = "elman"

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise SpecError(f"a recurrent cell needs input and hidden sizes >= 1, got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        gates = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias = nn.Parameter(torch.empty(gates))
        _uniform_([self.weight_ih, self.weight_hh, self.bias], hidden_size)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def initial_state(self, batch: int, like: Tensor) -> Any:
        """The zero state h_0 (B, H)."""
        return like.new_zeros(batch, self.hidden_size)

    def output(self, state: Any) -> Tensor:
        """The step's output (B, H) read off its state."""
        return state

    @abc.abstractmethod
    def step(self, x: Tensor, state: Any, record: dict[str, list[Tensor]] | None) -> Any:
        """One step of the cell's equation: x_t (B, F) and the state at t-1 -> the state at t."""

    def has_kernel(self) -> bool:
        """Whether torch has a fused kernel for this cell (:meth:`fused`)."""
        return False

    def fused(self, x: Tensor, state: Any, training: bool) -> tuple[Tensor, Any]:
        """torch's fused kernel over all of x (B, T, F) -> (outputs (B, T, H), last state)."""
        raise SpecError(f"a {self.kind} cell has no fused kernel (torch has none for it); run it with fused=False")


class ElmanCell(Cell):
    """S_t = f(U x_t + W S_{t-1} + b); U = ``weight_ih`` (H, F), W = ``weight_hh`` (H, H)."""

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh", irnn: bool = False) -> None:
        super().__init__(input_size, hidden_size)
        self.activation = get_activation(activation)
        if irnn:  # Le, Jaitly & Hinton (2015): W = I, b = 0, small input weights, ReLU units
            with torch.no_grad():
                self.weight_hh.copy_(torch.eye(hidden_size))
                self.bias.zero_()
                self.weight_ih.normal_(0.0, 0.001)

    def step(self, x: Tensor, state: Tensor, record: dict[str, list[Tensor]] | None) -> Tensor:
        return self.activation(x @ self.weight_ih.T + state @ self.weight_hh.T + self.bias)

    def has_kernel(self) -> bool:
        return self.activation.name in ("tanh", "relu")

    def fused(self, x: Tensor, state: Tensor, training: bool) -> tuple[Tensor, Tensor]:
        kernel = torch._VF.rnn_tanh if self.activation.name == "tanh" else torch._VF.rnn_relu
        weights = [self.weight_ih, self.weight_hh, self.bias, torch.zeros_like(self.bias)]
        out, last = kernel(x, state[None], weights, True, 1, 0.0, training, False, True)
        return out, last[0]


class LSTMCell(Cell):
    """Gates in torch's order i, f, g, o (rows of ``weight_ih`` (4H, F), ``weight_hh`` (4H, H)):
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t); the state is (h, c)."""

    gates = 4
    kind = "lstm"

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros

    def output(self, state: tuple[Tensor, Tensor]) -> Tensor:
        return state[0]

    def step(self, x: Tensor, state: tuple[Tensor, Tensor], record: dict[str, list[Tensor]] | None) -> Any:
        h, c = state
        a = x @ self.weight_ih.T + h @ self.weight_hh.T + self.bias  # (B, 4H)
        i, f, g, o = a.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        if record is not None:
            for name, value in (("input_gate", i), ("forget_gate", f), ("output_gate", o), ("cell", c)):
                record.setdefault(name, []).append(value)
        return h, c

    def has_kernel(self) -> bool:
        return True

    def fused(self, x: Tensor, state: tuple[Tensor, Tensor], training: bool) -> tuple[Tensor, Any]:
        weights = [self.weight_ih, self.weight_hh, self.bias, torch.zeros_like(self.bias)]
        hx = (state[0][None], state[1][None])
        out, h, c = torch._VF.lstm(x, hx, weights, True, 1, 0.0, training, False, True)
        return out, (h[0], c[0])


class GRUCell(Cell):
    """Gates r, z and the candidate n (torch's row order); h_t = (1 - z) * h_{t-1} + z * h~_t
    (the slides' z). ``reset``: "slides" (U (r * h)) or "torch" (r * (U h + b_hn))."""

    gates = 3
    kind = "gru"

    def __init__(self, input_size: int, hidden_size: int, reset: str = "torch") -> None:
        super().__init__(input_size, hidden_size)
        if reset not in ("torch", "slides"):
            raise SpecError(f"a GRU's reset is 'torch' or 'slides', got '{reset}'")
        self.reset = reset
        if reset == "torch":
            self.bias_hn = nn.Parameter(torch.empty(hidden_size))
            _uniform_([self.bias_hn], hidden_size)

    def step(self, x: Tensor, state: Tensor, record: dict[str, list[Tensor]] | None) -> Tensor:
        h = state
        hidden = self.hidden_size
        ax = x @ self.weight_ih.T + self.bias  # (B, 3H)
        w_hr, w_hz, w_hn = self.weight_hh.split(hidden)
        r = torch.sigmoid(ax[:, :hidden] + h @ w_hr.T)
        z = torch.sigmoid(ax[:, hidden : 2 * hidden] + h @ w_hz.T)
        if self.reset == "slides":
            candidate = torch.tanh(ax[:, 2 * hidden :] + (r * h) @ w_hn.T)
        else:
            candidate = torch.tanh(ax[:, 2 * hidden :] + r * (h @ w_hn.T + self.bias_hn))
        if record is not None:
            for name, value in (("reset_gate", r), ("update_gate", z), ("candidate", candidate)):
                record.setdefault(name, []).append(value)
        return (1 - z) * h + z * candidate

    def torch_weights(self) -> list[Tensor]:
        """[w_ih, w_hh, b_ih, b_hh] in torch's convention: its z is our 1 - z (z rows negated)."""
        sign = torch.ones(3 * self.hidden_size, 1, dtype=self.bias.dtype, device=self.bias.device)
        sign[self.hidden_size : 2 * self.hidden_size] = -1
        zeros = torch.zeros(2 * self.hidden_size, dtype=self.bias.dtype, device=self.bias.device)
        return [self.weight_ih * sign, self.weight_hh * sign, self.bias * sign[:, 0], torch.cat([zeros, self.bias_hn])]

    def has_kernel(self) -> bool:
        return self.reset == "torch"

    def fused(self, x: Tensor, state: Tensor, training: bool) -> tuple[Tensor, Tensor]:
        out, last = torch._VF.gru(x, state[None], self.torch_weights(), True, 1, 0.0, training, False, True)
        return out, last[0]


class JordanCell(Cell):
    """Output recurrence (Jordan 1986; the slides' y_n = f(W^Y y_{n-1} + W^X x_n)):
    h_t = f(W^X x_t + W^Y y_{t-1} + b) with W^X = ``weight_ih`` (H, F), W^Y = ``weight_hh``
    (H, O); y_t = tanh(V h_t + c), V = ``weight_out`` (O, H). The state is y (B, O)."""

    kind = "jordan"

    def __init__(self, input_size: int, hidden_size: int, output_size: int, activation: str = "tanh") -> None:
        nn.Module.__init__(self)
        if min(input_size, hidden_size, output_size) < 1:
            raise SpecError("a Jordan cell needs input, hidden and output sizes >= 1")
        self.input_size, self.hidden_size, self.out_size = input_size, hidden_size, output_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, output_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.weight_out = nn.Parameter(torch.empty(output_size, hidden_size))
        self.bias_out = nn.Parameter(torch.empty(output_size))
        _uniform_([self.weight_ih, self.weight_hh, self.bias, self.weight_out, self.bias_out], hidden_size)
        self.activation = get_activation(activation)

    @property
    def output_size(self) -> int:
        return self.out_size

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch, self.out_size)

    def step(self, x: Tensor, state: Tensor, record: dict[str, list[Tensor]] | None) -> Tensor:
        h = self.activation(x @ self.weight_ih.T + state @ self.weight_hh.T + self.bias)  # (B, H)
        if record is not None:
            record.setdefault("hidden", []).append(h)
        return torch.tanh(h @ self.weight_out.T + self.bias_out)  # y_t (B, O)


class SecondOrderCell(Cell):
    """h_t = f(sum_jk W_ijk x_j [h_{t-1}; 1]_k + b_i): ``weight`` (H, F, H + 1); the constant 1
    appended to the state gives the first-order terms W_ij,H+1 x_j (Giles et al. 1992)."""

    kind = "second_order"

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh") -> None:
        nn.Module.__init__(self)
        if input_size < 1 or hidden_size < 1:
            raise SpecError("a second-order cell needs input and hidden sizes >= 1")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight = nn.Parameter(torch.empty(hidden_size, input_size, hidden_size + 1))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        bound = 1.0 / math.sqrt(input_size * (hidden_size + 1))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.activation = get_activation(activation)

    def step(self, x: Tensor, state: Tensor, record: dict[str, list[Tensor]] | None) -> Tensor:
        augmented = torch.cat([state, state.new_ones(state.shape[0], 1)], dim=1)  # (B, H + 1)
        return self.activation(torch.einsum("ijk,bj,bk->bi", self.weight, x, augmented) + self.bias)


# ---- layers --------------------------------------------------------------------------------


def _detach(state: Any) -> Any:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _freeze(new: Any, old: Any, keep: Tensor) -> Any:
    """The new state where ``keep`` (B, 1) is True (a real step), the old one elsewhere."""
    if isinstance(new, tuple):
        return tuple(torch.where(keep, n, o) for n, o in zip(new, old))
    return torch.where(keep, new, old)


class Recurrent(nn.Module):
    """``layers`` stacked recurrent layers of one cell kind, each direction its own cell:
    x (B, T, F) -> (B, T, D * H), D = 2 when ``bidirectional`` (forward then backward
    halves). ``dropout`` between stacked layers (not after the last one).

    Attributes the task or a diagnostic sets: ``tbptt`` (truncate gradients every k steps,
    0 = full BPTT), ``packed`` (pack padded batches for the fused kernel), ``fused`` (use
    torch's kernels where the cell has one), ``record`` (keep every step's states, gates
    and, with gradients on, the states for ||dE/dh_t||, in ``records``: one dict per
    layer and direction of (B, T, *) tensors; ``states`` holds the per-step tensors).
    """

    reads_time = True  # the builder does not wrap it per step

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str = "tanh",
        output_size: int | None = None,
        reset: str = "torch",
    ) -> None:
        super().__init__()
        if kind not in CELLS:
            raise SpecError(f"unknown recurrent kind '{kind}'; known: {', '.join(CELLS)}")
        if layers < 1:
            raise SpecError(f"a recurrent layer needs at least 1 stacked layer, got {layers}")
        self.kind, self.layers, self.bidirectional = kind, layers, bidirectional
        self.options = {
            "activation": activation,
            "output_size": output_size,
            "reset": reset,
            "dropout": dropout,
        }
        directions = 2 if bidirectional else 1
        self.cells = nn.ModuleList()
        size = input_size
        for _ in range(layers):
            for _ in range(directions):
                self.cells.append(make_cell(kind, size, hidden_size, activation, output_size, reset))
            size = self.cells[-1].output_size * directions
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, size
        self.drop = Dropout(dropout) if dropout and layers > 1 else None
        self.tbptt = 0
        self.packed = False
        self.fused = True
        self.record = False
        self.records: list[dict[str, Tensor]] = []
        self.states: list[list[Tensor]] = []

    def forward(self, x: Tensor, teacher: Tensor | None = None) -> Tensor:
        """x (B, T, F) -> (B, T, D*H). ``teacher`` (B, T, O): a Jordan layer's targets, fed
        back as y_{t-1} instead of its own outputs (teacher forcing)."""
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise SpecError(
                f"{self.kind}: expects sequences (B, T, {self.input_size}), got a tensor of shape {tuple(x.shape)}"
            )
        if x.shape[1] == 0:
            raise SpecError(f"{self.kind}: got empty sequences (T = 0); every sequence needs at least one step")
        if teacher is not None and self.kind != "jordan":
            raise SpecError(f"{self.kind}: teacher forcing feeds back outputs, which only a Jordan layer does")
        mask = current_mask()
        lengths = None if mask is None else lengths_of(mask.to(x.device), x.shape[1])
        self.records, self.states = [], []
        directions = 2 if self.bidirectional else 1
        for layer in range(self.layers):
            if layer and self.drop is not None:
                x = self.drop(x)
            outputs = []
            for direction in range(directions):
                cell = self.cells[layer * directions + direction]
                outputs.append(self._direction(cell, x, lengths, direction == 1, teacher if layer == 0 else None))
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
        return x

    def _direction(
        self, cell: Cell, x: Tensor, lengths: Tensor | None, backward: bool, teacher: Tensor | None
    ) -> Tensor:
        """One cell over the sequence: (B, T, F) -> (B, T, H), reversed within each real length
        for the backward direction."""
        if backward:
            x = _reverse(x, lengths)
        pack = lengths is not None and (self.packed or backward)
        truncated_pack = pack and self.tbptt and self.training  # packed chunks share no step boundary
        if not self.fused or self.record or teacher is not None or not cell.has_kernel() or truncated_pack:
            out = self._loop(cell, x, lengths, teacher)
        else:
            out = self._kernel(cell, x, lengths, pack)
        if lengths is not None:
            out = out * (torch.arange(x.shape[1], device=x.device) < lengths[:, None])[..., None].to(out.dtype)
        return _reverse(out, lengths) if backward else out

    def _kernel(self, cell: Cell, x: Tensor, lengths: Tensor | None, pack: bool) -> Tensor:
        """The fused kernel, chunked every ``tbptt`` steps in training (state detached between)."""
        state = cell.initial_state(x.shape[0], x)
        if pack:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            return _packed_run(cell, packed, state, self.training, x.shape[1])
        chunk = self.tbptt if self.tbptt and self.training else x.shape[1]
        pieces = []
        for start in range(0, x.shape[1], chunk):
            out, state = cell.fused(x[:, start : start + chunk], state, self.training)
            pieces.append(out)
            state = _detach(state) if start + chunk < x.shape[1] else state
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)

    def _loop(self, cell: Cell, x: Tensor, lengths: Tensor | None, teacher: Tensor | None) -> Tensor:
        """The explicit unfolding in time: one ``cell.step`` per step."""
        batch, steps = x.shape[:2]
        state = cell.initial_state(batch, x)
        record: dict[str, list[Tensor]] | None = {} if self.record else None
        outputs, states = [], []
        for t in range(steps):
            if self.tbptt and self.training and t and t % self.tbptt == 0:
                state = _detach(state)
            if teacher is not None and t:
                state = teacher[:, t - 1]
            new = cell.step(x[:, t], state, record)
            if lengths is not None:
                new = _freeze(new, state, (t < lengths)[:, None])
            state = new
            output = cell.output(state)
            if self.record:
                if output.requires_grad:
                    output.retain_grad()
                states.append(output)
            outputs.append(output)
        out = torch.stack(outputs, dim=1)  # (B, T, H); padded steps are zeroed by the caller
        if record is not None:
            self.records.append({name: torch.stack(values, dim=1) for name, values in record.items()})
            self.states.append(states)
        return out

    @property
    def weight(self) -> nn.Parameter:
        """The bottom layer's recurrent matrix W (``weight_hh``; a second-order cell's W_ijk):
        the weight the per-layer gradient norms follow, the one BPTT multiplies through time."""
        cell = self.cells[0]
        return cell.weight if isinstance(cell, SecondOrderCell) else cell.weight_hh

    def extra_repr(self) -> str:
        extra = ", bidirectional" if self.bidirectional else ""
        return f"{self.kind}, {self.input_size} -> {self.output_size}, layers={self.layers}{extra}"

    def config(self) -> dict[str, Any]:
        return {
            "type": "recurrent",
            "kind": self.kind,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "layers": self.layers,
            "bidirectional": self.bidirectional,
            **self.options,
        }


def _packed_run(cell: Cell, packed: Any, state: Any, training: bool, steps: int) -> Tensor:
    """The fused kernel on a PackedSequence (padded steps skipped), unpacked to (B, T, H)."""
    batch_sizes = packed.batch_sizes
    data = packed.data
    if isinstance(cell, LSTMCell):
        weights = [cell.weight_ih, cell.weight_hh, cell.bias, torch.zeros_like(cell.bias)]
        hx = (state[0][None], state[1][None])
        out = torch._VF.lstm(data, batch_sizes, hx, weights, True, 1, 0.0, training, False)[0]
    elif isinstance(cell, GRUCell):
        out = torch._VF.gru(data, batch_sizes, state[None], cell.torch_weights(), True, 1, 0.0, training, False)[0]
    else:
        kernel = torch._VF.rnn_tanh if cell.activation.name == "tanh" else torch._VF.rnn_relu
        weights = [cell.weight_ih, cell.weight_hh, cell.bias, torch.zeros_like(cell.bias)]
        out = kernel(data, batch_sizes, state[None], weights, True, 1, 0.0, training, False)[0]
    result = type(packed)(out, batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    return pad_packed_sequence(result, batch_first=True, total_length=steps)[0]


def _reverse(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Each sequence of x (B, T, *) reversed within its real length (padding stays at the end)."""
    if lengths is None:
        return x.flip(1)
    steps = x.shape[1]
    t = torch.arange(steps, device=x.device)
    index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return x.gather(1, index[..., None].expand_as(x))


class LastStep(nn.Module):
    """Many-to-one: each sequence's last real step, (B, T, F) -> (B, F) (the step at its length
    - 1 under a mask). After a bidirectional layer the backward half there has read one step."""

    reads_time = True
    ends_time = True

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise SpecError(f"last: expects sequences (B, T, F), got a tensor of shape {tuple(x.shape)}")
        mask = current_mask()
        if mask is None:
            return x[:, -1]
        lengths = lengths_of(mask.to(x.device), x.shape[1])
        return x[torch.arange(x.shape[0], device=x.device), lengths - 1]

    def config(self) -> dict[str, Any]:
        return {"type": "last_step"}


class Embedding(nn.Module):
    """Token embedding: ids (B, T) int64 -> (B, T, D) rows of ``weight`` (V, D); a one-hot
    (B, T, V) float input gives the same rows (x @ weight), so a one-hot text net and an
    id net share weights."""

    def __init__(self, vocabulary: int, dim: int) -> None:
        super().__init__()
        if vocabulary < 1 or dim < 1:
            raise SpecError(f"an embedding needs a vocabulary and a width >= 1, got {vocabulary} and {dim}")
        self.weight = nn.Parameter(torch.randn(vocabulary, dim))

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            if bool(((x < 0) | (x >= self.weight.shape[0])).any()):
                raise SpecError(f"embedding: token ids must be in [0, {self.weight.shape[0]}), got {int(x.max())}")
            return self.weight[x]
        if x.shape[-1] != self.weight.shape[0]:
            raise SpecError(
                f"embedding: a one-hot input needs {self.weight.shape[0]} features, got shape {tuple(x.shape)}"
            )
        return x @ self.weight

    def config(self) -> dict[str, Any]:
        return {"type": "embedding", "vocabulary": self.weight.shape[0], "dim": self.weight.shape[1]}


CELLS = ("elman", "irnn", "jordan", "second_order", "lstm", "gru")


def make_cell(kind: str, input_size: int, hidden: int, activation: str, output_size: int | None, reset: str) -> Cell:
    """The cell of ``kind`` (one of :data:`CELLS`)."""
    if kind == "elman":
        return ElmanCell(input_size, hidden, activation)
    if kind == "irnn":
        return ElmanCell(input_size, hidden, "relu", irnn=True)
    if kind == "jordan":
        return JordanCell(input_size, hidden, output_size or hidden, activation)
    if kind == "second_order":
        return SecondOrderCell(input_size, hidden, activation)
    if kind == "lstm":
        return LSTMCell(input_size, hidden)
    return GRUCell(input_size, hidden, reset)


def recurrent_layers(model: nn.Module) -> list[tuple[str, Recurrent]]:
    """(name, layer) of every recurrent layer in ``model``."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, Recurrent)]


def set_truncation(model: nn.Module, steps: int | None) -> None:
    """Truncated BPTT: every recurrent layer of ``model`` detaches its state every ``steps``."""
    for _, layer in recurrent_layers(model):
        layer.tbptt = int(steps or 0)
