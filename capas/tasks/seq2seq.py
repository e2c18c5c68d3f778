"""``Seq2SeqTask``: train an encoder-decoder (``capas.models.seq2seq.Seq2Seq``) on the loop.

Data are id sequences (a :class:`capas.data.pairs.PairsDataset`, or any Dataset whose
``x_*`` (N, S) and ``y_*`` (N, T) are int64 ids padded with ``<pad>`` and ending in ``<eos>``).

A step decodes the target with **teacher forcing**: position t is fed the true previous
symbol with probability ``ratio(epoch)``, else the model's own previous argmax (Bengio et
al. 2015's scheduled sampling; coins from the run's ``sample`` generator, so a resumed run
draws the same ones). The ratio goes linearly from ``teacher_forcing`` at epoch 1 to
``teacher_forcing_final`` at epoch ``teacher_forcing_epochs`` (default: the last), then
stays. The loss is the cross-entropy of every real target position (``<eos>`` included,
``<pad>`` masked out), averaged over those positions.

History: ``train_loss``, ``train_token_accuracy`` (teacher-forced argmax);
``val_loss``, ``val_token_accuracy`` (teacher-forced), ``val_exact_match`` and
``val_decoded_token_accuracy`` (greedy decoding). Test metrics (metrics.json): ``test_loss``,
``test_exact_match``, ``test_token_accuracy``, ``test_bleu`` (character BLEU) and, when the
targets are text with spaces, ``test_word_bleu`` (BLEU over words), all of greedy decoding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from capas.data.batch import Batch
from capas.data.vocab import PAD
from capas.errors import TrainingError
from capas.models.seq2seq import Seq2Seq
from capas.tasks.options import SPARSITY_PENALTY, SUPERVISED_ONLY, refuse_closure_optimizers, refuse_unused
from capas.tasks.seq2seq_metrics import bleu_scores, exact_match, token_accuracy
from capas.train.optim import make_optimizer, schedule_for, weight_decay_groups
from capas.train.task import Task, TaskContext

#: TrainConfig fields of supervised classification an encoder-decoder has no use for
UNUSED = (*SUPERVISED_ONLY, *SPARSITY_PENALTY)  # its loss has no hidden-activity term


def masked_loss(logits: Tensor, tgt: Tensor) -> Tensor:
    """Mean cross-entropy of logits (B, T, V) over the real positions of ``tgt`` (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD)


def trim(ids: Tensor) -> Tensor:
    """``ids`` (B, L) without trailing columns that are ``<pad>`` in every row."""
    used = int((ids != PAD).any(0).nonzero().max()) + 1 if bool((ids != PAD).any()) else 1
    return ids[:, :used]


class Seq2SeqTask(Task):
    """Teacher-forced training of a ``Seq2Seq`` model.

    Args:
        teacher_forcing: ratio at epoch 1 (1.0: always the true previous symbol).
        teacher_forcing_final: ratio reached at ``teacher_forcing_epochs`` (None: constant).
        teacher_forcing_epochs: epoch where the schedule ends (None: the run's last epoch).
    """

    kind = "seq2seq"

    def __init__(
        self,
        model: Seq2Seq,
        *,
        teacher_forcing: float = 1.0,
        teacher_forcing_final: float | None = None,
        teacher_forcing_epochs: int | None = None,
    ) -> None:
        if not isinstance(model, Seq2Seq):
            raise TrainingError(f"Seq2SeqTask trains a capas Seq2Seq model, got {type(model).__name__}")
        for name, value in (("teacher_forcing", teacher_forcing), ("teacher_forcing_final", teacher_forcing_final)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise TrainingError(f"{name} is a probability in [0, 1], got {value}")
        if teacher_forcing_epochs is not None and teacher_forcing_epochs < 1:
            raise TrainingError(f"teacher_forcing_epochs must be at least 1, got {teacher_forcing_epochs}")
        self.model = self.forward_module = model
        self.options = {
            "teacher_forcing": teacher_forcing,
            "teacher_forcing_final": teacher_forcing_final,
            "teacher_forcing_epochs": teacher_forcing_epochs,
        }
        self.ratio = teacher_forcing

    def teacher_forcing_ratio(self, epoch: int) -> float:
        """The schedule: linear from ``teacher_forcing`` (epoch 1) to the final ratio."""
        start, final = self.options["teacher_forcing"], self.options["teacher_forcing_final"]
        if final is None:
            return start
        end = self.options["teacher_forcing_epochs"] or self.ctx.config.epochs
        progress = 1.0 if end <= 1 else min(1.0, (epoch - 1) / (end - 1))
        return start + (final - start) * progress

    def setup(self, ctx: TaskContext) -> None:
        """Id tensors on the device, the optimizer and its schedule."""
        self.ctx = ctx
        config, data = ctx.config, ctx.data
        refuse_unused(config, "seq2seq", UNUSED)
        if data.loader is not None:
            raise TrainingError("seq2seq training takes a PairsDataset (capas.data.pairs.load_pairs), not a DataLoader")
        self.x_train, self.y_train = self._ids(data.x_train, data.y_train, "training")
        self.train_adapter = ctx.make_adapter((self.x_train,), (self.y_train,))
        self.val_adapter = None
        if data.x_val is not None:
            x_val, y_val = self._ids(data.x_val, data.y_val, "validation")
            self.val_adapter = ctx.make_adapter((x_val,), (y_val,))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        groups = weight_decay_groups(self.params, config.l2, config.regularize_bias)  # biases only if asked
        self.optimizer = make_optimizer(
            config.optimizer, groups, config.lr, config.momentum, **config.optimizer_options
        )
        self.schedule = schedule_for(config, self.optimizer, self.train_adapter.steps_per_epoch)
        refuse_closure_optimizers([self.optimizer], "seq2seq")

    def _ids(self, x: Tensor | None, y: Tensor | None, split: str) -> tuple[Tensor, Tensor]:
        """Checked (N, S) and (N, T) id tensors on the device."""
        model = self.model
        for name, ids, vocab in (("inputs", x, model.source_vocab), ("targets", y, model.target_vocab)):
            if ids is None or ids.dtype != torch.long or ids.dim() != 2:
                shape = None if ids is None else (tuple(ids.shape), str(ids.dtype))
                raise TrainingError(
                    f"seq2seq {split} {name} must be (N, L) int64 token ids, got {shape}; "
                    "load them with capas.data.pairs.load_pairs"
                )
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(vocab)):
                raise TrainingError(
                    f"seq2seq {split} {name} hold ids outside the model's vocabulary of {len(vocab)}; "
                    "build the model for this data (Seq2Seq.for_data)"
                )
        return self.ctx.on_device(x), self.ctx.on_device(y)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": self.optimizer}

    def schedules(self) -> dict[str, Any]:
        return {} if self.schedule is None else {"main": self.schedule}

    def epoch_subset(self, epoch: int) -> Tensor | None:
        """All samples; the loop calls this once before each epoch, which is when the
        teacher-forcing ratio of that epoch is set."""
        self.ratio = self.teacher_forcing_ratio(epoch)
        return None

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        src, tgt = trim(batch.x), trim(batch.y)
        logits, _ = self.forward_module(src, tgt, self.ratio, self.ctx.generators.sample)
        loss = masked_loss(logits, tgt)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        config = self.ctx.config
        if config.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, config.clip_norm)
        if config.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.params, config.clip_value)
        self.optimizer.step()
        return {"loss": loss.detach(), "token_accuracy": token_accuracy(logits.detach().argmax(-1), tgt)}

    def eval_step(self, batch: Batch) -> dict[str, Tensor]:
        """Teacher-forced loss and token accuracy; exact match and token accuracy of greedy decoding."""
        src, tgt = trim(batch.x), trim(batch.y)
        logits, _ = self.model(src, tgt, 1.0)
        decoded, _ = self.model.greedy(src)
        return {
            "loss": masked_loss(logits, tgt),
            "token_accuracy": token_accuracy(logits.argmax(-1), tgt),
            "exact_match": exact_match(decoded, tgt),
            "decoded_token_accuracy": token_accuracy(decoded, tgt),
        }

    def final_metrics(self) -> dict[str, Any]:
        """Test loss (teacher-forced), exact match, token accuracy and BLEU of greedy decoding."""
        data = self.ctx.data
        if data.x_test is None:
            return {}
        x, y = self._ids(data.x_test, data.y_test, "test")
        return test_metrics(self.model, x, y, self.ctx.config.eval_batch_size)

    def probe(self, n: int) -> Batch:
        return Batch((self.x_train[:n],), (self.y_train[:n],))

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """No tensors (the coins' generator is the run's); the ratio, for the record."""
        return {}, {"teacher_forcing_ratio": self.ratio}

    def load_state_dict(self, tensors: dict[str, Tensor], record: dict[str, Any]) -> None:
        self.ratio = float(record.get("teacher_forcing_ratio", self.ratio))

    def describe(self) -> dict[str, Any]:
        """config.json's task record; ``options`` rebuild the same task on resume."""
        return {"kind": self.kind, "engine": self.engine, "options": dict(self.options)}


@torch.no_grad()
def test_metrics(model: Seq2Seq, x: Tensor, y: Tensor, batch_size: int = 1024) -> dict[str, Any]:
    """``test_loss`` (teacher-forced), ``test_exact_match``, ``test_token_accuracy`` and
    ``test_bleu`` (``test_word_bleu`` too for text targets) of greedy decoding, for source ids x (N, S) and target ids y (N, T) of
    ``model``'s vocabularies: what ``fit`` reports and ``capas evaluate`` recomputes."""
    from capas.models.modes import eval_mode

    totals = {"loss": 0.0, "exact_match": 0.0, "token_accuracy": 0.0}
    candidates, references = [], []
    vocab = model.target_vocab
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            src, tgt = trim(x[start : start + batch_size]), trim(y[start : start + batch_size])
            logits, _ = model(src, tgt, 1.0)
            decoded, _ = model.greedy(src)
            totals["loss"] += float(masked_loss(logits, tgt)) * len(src)
            totals["exact_match"] += float(exact_match(decoded, tgt)) * len(src)
            totals["token_accuracy"] += float(token_accuracy(decoded, tgt)) * int((tgt != PAD).sum())
            candidates += [vocab.decode(row) for row in decoded.tolist()]
            references += [vocab.decode(row) for row in tgt.tolist()]
    n, tokens = len(x), int((y != PAD).sum())
    return {
        "test_loss": totals["loss"] / n,
        "test_exact_match": totals["exact_match"] / n,
        "test_token_accuracy": totals["token_accuracy"] / tokens,
        **{f"test_{name}": value for name, value in bleu_scores(candidates, references).items()},
    }
