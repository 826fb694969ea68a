"""Fine-tuning heads on top of AlbertModel: classify, regress, span, squad2-beam, choice.

Each head kind is a small module over the encoder's outputs; `AlbertForTask` pairs one with the
encoder. `HEADS` is the one table of head kinds: module, loss, per-feature outputs and default
decoding; tasks, fine-tuning and the converters look a kind up there instead of testing its name. Module names (`classifier`, `qa_outputs`; `start_logits`, `end_logits`,
`answer_class` of the original v2 head) match the reference port and the original TF scopes,
so converted fine-tuned checkpoints load by name (albertctl/convert/names.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from albertctl.core.config import ModelConfig
from albertctl.model.albert import AlbertModel, init_weights
from albertctl.model.head_kinds import KINDS, HeadKind

START_N_TOP = 5  # the original run_squad_v2 beam: 5 starts x 5 ends per window
END_N_TOP = 5
NEG_INF = -1e30  # the original masks impossible positions with -1e30 before log_softmax


class Encoded(NamedTuple):
    """What a head reads: the encoder's outputs and the batch's masks. Every head module's
    `read(encoded)` returns its kind's output."""

    sequence: torch.Tensor  # (B, T, H)
    pooled: torch.Tensor  # (B, H)
    token_type_ids: torch.Tensor | None
    attention_mask: torch.Tensor | None
    start_positions: torch.Tensor | None  # squad2-beam training: the gold starts (B,)


class ClassifierHead(nn.Module):
    """Dropout + dense on the pooled output: `num_labels` logits (B, num_labels)."""

    def __init__(self, config: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))

    def read(self, encoded: Encoded) -> torch.Tensor:
        return self(encoded.pooled)


class ScoreHead(ClassifierHead):
    """One score per sequence (B,): regression, and each option of a multiple-choice question.
    The same `classifier` weights as ClassifierHead with one output (TF: output_weights [1, H])."""

    def __init__(self, config: ModelConfig, num_labels: int = 1) -> None:
        super().__init__(config, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return super().forward(pooled).squeeze(-1)


class SpanHead(nn.Module):
    """Start and end logits for every token (SQuAD v1 and the simple v2 head)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.qa_outputs(sequence).unbind(-1)  # (B, T) each
        return start, end

    def read(self, encoded: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """Padding positions at -1e4, so they never win an argmax or a softmax."""
        start, end = self(encoded.sequence)
        if encoded.attention_mask is not None:
            pad = encoded.attention_mask == 0
            start, end = start.masked_fill(pad, -1e4), end.masked_fill(pad, -1e4)
        return start, end


class BeamSpanOutput(NamedTuple):
    """The v2 head's output. Training (gold starts given): start/end log-probs (B, T) and
    `cls_logits` (B,). Inference: top-k start log-probs and indices (B, k), for each of them
    top-k end log-probs and indices (B, k, k), and `cls_logits` (B,)."""

    start_log_probs: torch.Tensor
    end_log_probs: torch.Tensor
    cls_logits: torch.Tensor
    start_top_index: torch.Tensor | None = None
    end_top_index: torch.Tensor | None = None


class _StartLogits(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, 1)


class _EndLogits(nn.Module):
    """concat[token, start token] -> dense_0 -> tanh -> LayerNorm -> dense_1: one logit."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense_0 = nn.Linear(2 * config.hidden_size, config.hidden_size)
        # tf.contrib.layers.layer_norm, which the original calls here, uses epsilon 1e-12
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=1e-12)
        self.dense_1 = nn.Linear(config.hidden_size, 1)

    def forward(self, sequence: torch.Tensor, start_features: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense_0(torch.cat([sequence, start_features], -1)))
        return self.dense_1(self.LayerNorm(x)).squeeze(-1)


class _AnswerClass(nn.Module):
    """concat[start-weighted token, [CLS]] -> dense_0 -> tanh -> dropout -> dense_1 (no bias)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense_0 = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.dense_1 = nn.Linear(config.hidden_size, 1, bias=False)


class BeamSpanHead(nn.Module):
    """ALBERT's original SQuAD v2 head (squad_utils.create_v2_model, from XLNet).

    Start logits per token; end logits conditioned on the start token's representation (the
    gold start in training, each of the top START_N_TOP starts at inference, then the top
    END_N_TOP ends of each); an answerability logit from [CLS] and the start-probability
    weighted sum of tokens, which does not depend on the end so each window has one.
    `answerable` (B, T) marks the positions an answer may start or end at ([CLS] included:
    the no-answer target); the others get NEG_INF before the softmax.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.start_logits = _StartLogits(config)
        self.end_logits = _EndLogits(config)
        self.answer_class = _AnswerClass(config)

    def forward(
        self,
        sequence: torch.Tensor,
        answerable: torch.Tensor,
        start_positions: torch.Tensor | None = None,
    ) -> BeamSpanOutput:
        b, t, h = sequence.shape
        blocked = ~answerable
        # in fp32 before masking: -1e30 does not fit fp16
        start_logits = self.start_logits.dense(sequence).squeeze(-1).float().masked_fill(blocked, NEG_INF)
        start_log_probs = F.log_softmax(start_logits, -1)  # (B, T)

        start_p = start_log_probs.exp().to(sequence.dtype)
        start_feature = torch.einsum("bth,bt->bh", sequence, start_p)
        ans = torch.tanh(self.answer_class.dense_0(torch.cat([start_feature, sequence[:, 0]], -1)))
        cls_logits = self.answer_class.dense_1(self.answer_class.dropout(ans)).squeeze(-1)  # (B,)

        if start_positions is not None:  # training: condition on the gold start
            gold = sequence[torch.arange(b, device=sequence.device), start_positions]  # (B, H)
            end_logits = (
                self.end_logits(sequence, gold[:, None].expand(b, t, h)).float().masked_fill(blocked, NEG_INF)
            )
            return BeamSpanOutput(start_log_probs, F.log_softmax(end_logits, -1), cls_logits)

        k = min(START_N_TOP, t)
        start_top, start_index = start_log_probs.topk(k, -1)  # (B, k)
        start_features = torch.gather(sequence, 1, start_index[..., None].expand(b, k, h))  # (B, k, H)
        tokens = sequence[:, None].expand(b, k, t, h)
        end_logits = self.end_logits(tokens, start_features[:, :, None].expand(b, k, t, h))  # (B, k, T)
        end_logits = end_logits.float().masked_fill(blocked[:, None], NEG_INF)
        end_top, end_index = F.log_softmax(end_logits, -1).topk(min(END_N_TOP, t), -1)  # (B, k, k)
        return BeamSpanOutput(start_top, end_top, cls_logits, start_index, end_index)

    def read(self, encoded: Encoded) -> BeamSpanOutput:
        b, t = encoded.sequence.shape[:2]
        types, mask = encoded.token_type_ids, encoded.attention_mask
        if types is None:
            types = torch.zeros(b, t, dtype=torch.long, device=encoded.sequence.device)
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.long, device=encoded.sequence.device)
        return self(encoded.sequence, answerable_positions(types, mask), encoded.start_positions)


def answerable_positions(token_type_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: [CLS] and the second segment's tokens except its closing [SEP]; the
    original's p_mask for `[CLS] question [SEP] context [SEP]`."""
    real = attention_mask.bool()
    ok = (token_type_ids == 1) & real
    last = real.long().sum(-1) - 1  # the closing [SEP]
    ok[torch.arange(ok.shape[0], device=ok.device), last] = False
    ok[:, 0] = True
    return ok


# ---------------------------------------------------------------------------------------------
# losses and per-feature outputs of each head kind


Loss = Callable[[Any, torch.Tensor], torch.Tensor]  # (model output, labels) -> scalar
Arrays = Callable[[Any, torch.Tensor], list[np.ndarray]]  # (batch output, attention_mask) -> per feature


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels)


def _mse(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(scores.float(), labels.float())


def _span_loss(output: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    start, end = output
    return (F.cross_entropy(start.float(), labels[:, 0]) + F.cross_entropy(end.float(), labels[:, 1])) / 2


def _beam_loss(output: BeamSpanOutput, labels: torch.Tensor) -> torch.Tensor:
    # the original v2 loss: mean of start and end NLL, plus half the answerability BCE
    start = -output.start_log_probs.gather(1, labels[:, :1]).mean()
    end = -output.end_log_probs.gather(1, labels[:, 1:2]).mean()
    bce = F.binary_cross_entropy_with_logits(output.cls_logits.float(), labels[:, 2].float())
    return (start + end) / 2 + 0.5 * bce


def _rows(output: torch.Tensor, attention_mask: torch.Tensor) -> list[np.ndarray]:
    """(num_labels,) logits, a () score, or (C,) option scores per feature."""
    return list(output.detach().float().cpu().numpy())


def _span_arrays(output: tuple[torch.Tensor, torch.Tensor], attention_mask: torch.Tensor) -> list[np.ndarray]:
    """(2, T_i) start/end logits per feature, trimmed to its real length."""
    start, end = output
    lengths = attention_mask.sum(-1).tolist()
    both = torch.stack([start, end], 1).float().cpu().numpy()  # (B, 2, T)
    return [both[i, :, :n] for i, n in enumerate(lengths)]


def pack_beam(output: BeamSpanOutput, attention_mask: torch.Tensor) -> list[np.ndarray]:
    """One float64 vector per feature: k, k2, the top-k start log-probs, their indices, the
    (k, k2) end log-probs, their indices, the answerability logit (head_kinds.unpack_beam reads it)."""
    b, k = output.start_log_probs.shape
    k2 = output.end_log_probs.shape[-1]
    parts = [
        torch.tensor([[k, k2]], dtype=torch.float64).expand(b, 2),
        output.start_log_probs.double().cpu(),
        output.start_top_index.double().cpu(),  # type: ignore[union-attr]
        output.end_log_probs.reshape(b, -1).double().cpu(),
        output.end_top_index.reshape(b, -1).double().cpu(),  # type: ignore[union-attr]
        output.cls_logits.detach().double().cpu()[:, None],
    ]
    return list(torch.cat(parts, 1).numpy())


# ---------------------------------------------------------------------------------------------
# the table of head kinds


@dataclass(frozen=True)
class HeadSpec:
    """The torch half of a head kind (its facts without torch: head_kinds.KINDS)."""

    module: Callable[[ModelConfig, int], nn.Module]  # (config, num_labels) -> the head module
    loss: Loss  # the kind's usual loss (a Task may bring its own)
    arrays: Arrays  # a batch's output -> one numpy array per feature, for decoding


HEADS: dict[str, HeadSpec] = {
    "classify": HeadSpec(ClassifierHead, _cross_entropy, _rows),
    "regress": HeadSpec(ScoreHead, _mse, _rows),
    "choice": HeadSpec(ScoreHead, _cross_entropy, _rows),
    "span": HeadSpec(lambda config, _: SpanHead(config), _span_loss, _span_arrays),
    "squad2-beam": HeadSpec(lambda config, _: BeamSpanHead(config), _beam_loss, pack_beam),
}


def head_loss(kind: HeadKind) -> Loss:
    return HEADS[kind].loss


def output_arrays(kind: HeadKind, output: Any, attention_mask: torch.Tensor) -> list[np.ndarray]:
    """A batch's model output -> one array per feature (see each kind's `arrays`)."""
    return HEADS[kind].arrays(output, attention_mask)


class AlbertForTask(nn.Module):
    """The encoder plus one head kind (its module from HEADS).

    classify: (B, num_labels) logits; regress: (B,) scores; choice: inputs (B, C, T) -> (B, C)
    scores; span: (start, end) logits of shape (B, T), padding positions at -inf-like values;
    squad2-beam: a BeamSpanOutput (training when `start_positions` is given).
    """

    def __init__(self, config: ModelConfig, head: HeadKind, num_labels: int = 2) -> None:
        super().__init__()
        self.config = config
        self.head_kind = head
        self.kind = KINDS[head]
        self.albert = AlbertModel(config)
        self.head = HEADS[head].module(config, num_labels)
        init_weights(self, config)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | BeamSpanOutput:
        shape = input_ids.shape
        if self.kind.per_choice:  # (B, C, T): score every option, softmax over C outside
            b, c, t = shape
            input_ids, token_type_ids, attention_mask = (
                x.reshape(b * c, t) if x is not None else None
                for x in (input_ids, token_type_ids, attention_mask)
            )
        seq, pooled = self.albert(input_ids, token_type_ids, attention_mask)
        out = self.head.read(Encoded(seq, pooled, token_type_ids, attention_mask, start_positions))
        return out.view(shape[:2]) if self.kind.per_choice else out
