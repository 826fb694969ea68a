"""Fine-tuning heads on top of AlbertModel: classify, regress, span, choice.

Each head kind is a small module over the encoder's outputs; `AlbertForTask` pairs one with the
encoder. Module names (`classifier`, `qa_outputs`) match the reference port so converted
fine-tuned checkpoints load by name.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from albertctl.core.config import ModelConfig
from albertctl.model.albert import AlbertModel, init_weights

HeadKind = Literal["classify", "regress", "span", "choice"]


class ClassifierHead(nn.Module):
    """Dropout + dense on the pooled output: `num_labels` logits (1 for regression or a choice)."""

    def __init__(self, config: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class SpanHead(nn.Module):
    """Start and end logits for every token (SQuAD v1 and the simple v2 head)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.qa_outputs(sequence).unbind(-1)  # (B, T) each
        return start, end


class AlbertForTask(nn.Module):
    """The encoder plus one head kind.

    classify: (B, num_labels) logits; regress: (B,) scores; choice: inputs (B, C, T) -> (B, C)
    scores; span: (start, end) logits of shape (B, T), padding positions at -inf-like values.
    """

    def __init__(self, config: ModelConfig, head: HeadKind, num_labels: int = 2) -> None:
        super().__init__()
        self.config = config
        self.head_kind = head
        self.albert = AlbertModel(config)
        if head == "span":
            self.head = SpanHead(config)
        else:
            self.head = ClassifierHead(config, 1 if head in ("regress", "choice") else num_labels)
        init_weights(self, config)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.head_kind == "choice":  # (B, C, T): score every option, softmax over C outside
            b, c, t = input_ids.shape
            flat = [
                x.reshape(b * c, t) if x is not None else None
                for x in (input_ids, token_type_ids, attention_mask)
            ]
            return self.head(self.albert(*flat).pooled_output).view(b, c)
        seq, pooled = self.albert(input_ids, token_type_ids, attention_mask)
        if self.head_kind == "span":
            start, end = self.head(seq)
            if attention_mask is not None:
                pad = attention_mask == 0
                start, end = start.masked_fill(pad, -1e4), end.masked_fill(pad, -1e4)
            return start, end
        logits = self.head(pooled)
        return logits.squeeze(-1) if self.head_kind == "regress" else logits
