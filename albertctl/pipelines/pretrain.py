"""`albertctl pretrain`: MLM + SOP on `prepare`'s output with the one training loop.

resolve the data (the built-in sample corpus when no --data) -> check it against the
profile -> build the model (fresh, or --init MODEL_DIR) -> rank-sharded batches ->
the loop (training/loop.py) with the MLM + SOP loss -> eval report on held-out data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from albertctl.model.albert import pretraining_loss
from albertctl.training.loop import Batch, LossOutput

# The loop totals this batch tensor over the global batch, so the MLM loss is the mean over
# every real masked position of the step (SPEC section 4), whatever the accumulation.
MASKED_COUNT_KEY = "masked_lm_weights"


def mlm_sop_loss(model: nn.Module, batch: Batch) -> LossOutput:
    """The loop's loss function for pretraining: MLM (at the masked positions) + SOP."""
    out = model(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], batch["masked_lm_positions"]
    )
    count = batch.get(f"step_totals/{MASKED_COUNT_KEY}")
    lo = pretraining_loss(
        out,
        batch["masked_lm_ids"],
        batch["masked_lm_weights"],
        batch["sentence_order_labels"],
        masked_count=count,
    )
    denom = count if count is not None else lo.masked_lm_count.clamp_min(1.0)
    n = lo.sentence_order_count
    return LossOutput(
        lo.loss,
        {
            "masked_lm_accuracy": (lo.masked_lm_correct, lo.masked_lm_count),
            "masked_lm_loss": (lo.masked_lm_loss.detach() * denom, lo.masked_lm_count),
            "sentence_order_accuracy": (lo.sentence_order_correct, n),
            "sentence_order_loss": (lo.sentence_order_loss.detach() * n, n),
        },
    )


def _unused(*_: Any) -> torch.Tensor:  # placeholder until the pipeline lands
    raise NotImplementedError
