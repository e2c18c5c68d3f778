"""The recurrent tokens of the notation (registered in ``capas.layers.kinds.KINDS``).

==================  ========================================================================
token               layer (``capas.layers.recurrent``), on a sequence input ``TxF``
==================  ========================================================================
``elmanH``          Elman: S_t = tanh(U x_t + W S_{t-1} + b), every step's S_t (B, T, H);
                    ``elmanHxL``: L stacked layers; ``elman64:relu`` another f
``irnnH``           Elman with ReLU units and the identity recurrence (IRNN, Le et al. 2015)
``lstmH``           LSTM; ``lstmHxL`` stacked
``gruH``            GRU, torch's reset form r * (U h + b) (fused kernel)
``grusH``           GRU, the slides' reset form U (r * h) (cell loop)
``bielmanH``,       bidirectional: forward and backward halves concatenated, (B, T, 2H)
``bilstmH``, ``bigruH``
``jordanHxO``       Jordan (output-recurrent): H hidden units, O outputs fed back, (B, T, O)
``soH``             second-order: h_t = f(sum_jk W_ijk x_j [h_{t-1}; 1]_k + b)
``last``            many-to-one: each sequence's last real step, (B, T, H) -> (B, H)
``embD``            token embedding: a one-hot step of V features (or an id) -> D features
==================  ========================================================================

A recurrent token returns every step (many-to-many: ``Tx28 lstm64 d10`` puts a 10-way
output at each step); add ``last`` for many-to-one (``Tx28 lstm128 last d10``). Dropout
between stacked layers is written as a token between them: ``lstm128 drop0.2 lstm128``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from capas.errors import SpecError
from capas.layers import register_layer
from capas.layers.kinds import BuildContext, LayerKind, Shape, register_kind
from capas.layers.recurrent import Embedding, LastStep, Recurrent

_ACT = frozenset({"activation"})


def _check_sequence_step(layer: Any, shape: Shape, context: BuildContext) -> int:
    """The width F of one step; SpecError when the input is not a sequence of vectors."""
    if context.time is None:
        width = shape[0] if len(shape) == 1 else "x".join(map(str, shape))
        if context.before == "the input" and len(shape) == 3:
            hint = f"read the image row by row with the input T{shape[1]}x{shape[0] * shape[2]} (sequential-mnist)"
        elif context.before == "the input":
            hint = f"start the spec with a sequence input such as Tx{width} (batches (B, T, {width}))"
        else:
            hint = "a 'last' token before it ended the time axis; put the layers that read time before 'last'"
        raise SpecError(
            f"'{layer.token()}' reads a sequence, but {context.before} gives {context.describe(shape)} with no time "
            f"axis; {hint}"
        )
    if len(shape) != 1:
        raise SpecError(
            f"'{layer.token()}' needs a vector at every time step, but {context.before} gives "
            f"{context.describe(shape)}; add 'flat' before it"
        )
    return shape[0]


def _recurrent_build(kind: str, bidirectional: bool = False, reset: str = "torch") -> Any:
    def build(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
        width = _check_sequence_step(layer, shape, context)
        sizes = layer.sizes
        activation = layer.activation or "tanh"
        if kind == "jordan":
            module = Recurrent("jordan", width, sizes[0], activation=activation, output_size=sizes[1])
        else:
            stacked = sizes[1] if len(sizes) > 1 else 1
            module = Recurrent(
                kind, width, sizes[0], layers=stacked, bidirectional=bidirectional, activation=activation, reset=reset
            )
        return module, (module.output_size,)

    return build


def _build_last(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    _check_sequence_step(layer, shape, context)
    return LastStep(), shape


def _build_embedding(layer: Any, shape: Shape, context: BuildContext) -> tuple[nn.Module, Shape]:
    width = _check_sequence_step(layer, shape, context)
    return Embedding(width, layer.sizes[0]), (layer.sizes[0],)


def _head(token: str) -> Any:
    def head(table: dict[str, Any], dims: int, entry: Any) -> str:
        second = table.get("outputs", table.get("layers"))
        return token + "x".join(str(n) for n in [table["units"], *([second] if second is not None else [])])

    return head


def _kind(name: str, token: str, build: Any, usage: str, prefix: str, counts=(1, 2), options=frozenset()) -> LayerKind:
    keys = {"units", "act"} | ({"outputs"} if name == "jordan" else {"layers"} if counts == (1, 2) else set())
    syntax = f"write {usage} with sizes >= 1, e.g. {usage.replace('H', '64').replace('L', '2').replace('O', '10')}"
    return LayerKind(
        name,
        token,
        build,
        _head(token),
        prefix,
        counts=counts,
        options=options,
        syntax=syntax,
        usage=usage,
        table_keys=frozenset(keys if options else keys - {"act"}),
        table_required=("units", "outputs") if name == "jordan" else ("units",),
    )


RECURRENT_KINDS = (
    _kind("elman", "elman", _recurrent_build("elman"), "elmanH[xL]", "elman", options=_ACT),
    _kind("irnn", "irnn", _recurrent_build("irnn"), "irnnH[xL]", "irnn"),
    _kind("lstm", "lstm", _recurrent_build("lstm"), "lstmH[xL]", "lstm"),
    _kind("gru", "gru", _recurrent_build("gru"), "gruH[xL]", "gru"),
    _kind("gru_slides", "grus", _recurrent_build("gru", reset="slides"), "grusH[xL]", "gru"),
    _kind("bi_elman", "bielman", _recurrent_build("elman", True), "bielmanH[xL]", "bielman", options=_ACT),
    _kind("bi_lstm", "bilstm", _recurrent_build("lstm", True), "bilstmH[xL]", "bilstm"),
    _kind("bi_gru", "bigru", _recurrent_build("gru", True), "bigruH[xL]", "bigru"),
    _kind("jordan", "jordan", _recurrent_build("jordan"), "jordanHxO", "jordan", counts=(2,), options=_ACT),
    _kind("second_order", "so", _recurrent_build("second_order"), "soH", "so", counts=(1,), options=_ACT),
    _kind("embedding", "emb", _build_embedding, "embD", "emb", counts=(1,)),
    LayerKind(
        "last_step",
        "last",
        _build_last,
        lambda table, dims, entry: "last",
        "last",
        form="bare",
        usage="last",
    ),
)

for _kind_record in RECURRENT_KINDS:
    register_kind(_kind_record)
register_layer("recurrent", Recurrent)
register_layer("last_step", LastStep)
register_layer("embedding", Embedding)


def check_not_in_block(module: nn.Module, name: str) -> None:
    """Blocks run their body at every step; a layer reading time cannot go inside one."""
    if getattr(module, "reads_time", False):
        raise SpecError(f"{name} reads the time axis and cannot go inside a block (res, rep, cat); put it outside")
