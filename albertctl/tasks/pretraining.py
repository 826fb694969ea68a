"""The pretraining objective as training and evaluation both run it: MLM + SOP on a collated
batch, and the held-out report (the original's eval metrics beside the most-frequent-token floor).

Here rather than in a pipeline because `pretrain` (its loss and its held-out evaluation) and
`eval --model --data` share it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from albertctl.core.errors import AlbertError
from albertctl.data.pretraining import PretrainingCollator, rows_at
from albertctl.model.albert import PretrainingLoss, pretraining_loss

# Every eval batch gets this one batch index: a row's dynamic mask then depends only on its
# uid, not on the batch size or the number of ranks, and never coincides with training's.
EVAL_BATCH_INDEX = 1 << 40
EVAL_BATCH_SIZE = 64

Reduce = Callable[[list[float]], list[float]]


def pretraining_step(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor], masked_count: torch.Tensor | None = None
) -> PretrainingLoss:
    """MLM + SOP losses and counts of a collated batch (`PretrainingCollator`'s keys), as
    training and evaluation both run it: the last layer only at [CLS] and the masked positions.
    `masked_count`: see `pretraining_loss`."""
    out = model(
        batch["input_ids"],
        batch["token_type_ids"],
        batch["attention_mask"],
        batch["masked_lm_positions"],
        sparse_last_layer=True,
    )
    return pretraining_loss(
        out,
        batch["masked_lm_ids"],
        batch["masked_lm_weights"],
        batch["sentence_order_labels"],
        masked_count=masked_count,
    )


@torch.no_grad()
def pretraining_metrics(
    model: torch.nn.Module,
    dataset: Any,
    collator: PretrainingCollator,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    max_examples: int | None = None,
    reduce: Reduce | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, float]:
    """MLM and SOP loss and accuracy over `dataset` (this rank's share; `reduce` sums over
    ranks), and the most-frequent-masked-token baseline. Masks are fixed by the collator's seed.
    `progress` gets `evaluating` events: {split, done, total} in sequences, at the start and
    after every batch."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n = len(dataset) if max_examples is None else min(len(dataset), max_examples)
    vocab = model.config.vocab_size
    sums = torch.zeros(6, dtype=torch.float64)  # mlm loss, mlm correct, mlm count, sop loss, sop correct, n
    label_counts = torch.zeros(vocab, dtype=torch.float64)
    batches = range(rank, (n + batch_size - 1) // batch_size, world_size)
    mine = sum(min(n, (b + 1) * batch_size) - b * batch_size for b in batches)
    if progress is not None:
        progress({"event": "evaluating", "split": "held-out", "done": 0, "total": mine})
    done = 0
    for b in batches:
        rows = rows_at(dataset, list(range(b * batch_size, min(n, (b + 1) * batch_size))))
        batch = {k: v.to(device) for k, v in collator(rows, EVAL_BATCH_INDEX).items()}
        lo = pretraining_step(model, batch)
        k = float(lo.sentence_order_count)
        sums += torch.tensor(
            [
                float(lo.masked_lm_loss) * float(lo.masked_lm_count),
                float(lo.masked_lm_correct),
                float(lo.masked_lm_count),
                float(lo.sentence_order_loss) * k,
                float(lo.sentence_order_correct),
                k,
            ],
            dtype=torch.float64,
        )
        real = batch["masked_lm_weights"] > 0
        label_counts += torch.bincount(batch["masked_lm_ids"][real].cpu(), minlength=vocab).double()
        done += len(rows)
        if progress is not None:
            progress({"event": "evaluating", "split": "held-out", "done": done, "total": mine})
    if reduce is not None:
        flat = reduce(sums.tolist() + label_counts.tolist())
        sums, label_counts = torch.tensor(flat[:6]), torch.tensor(flat[6:])
    model.train(was_training)
    mlm_loss, mlm_correct, mlm_count, sop_loss, sop_correct, seqs = sums.tolist()
    if seqs == 0:
        raise AlbertError("no held-out examples to evaluate (the eval split is empty)")
    report = {
        "loss": mlm_loss / max(mlm_count, 1) + sop_loss / seqs,
        "masked_lm_accuracy": mlm_correct / max(mlm_count, 1),
        "masked_lm_loss": mlm_loss / max(mlm_count, 1),
        "sentence_order_accuracy": sop_correct / seqs,
        "sentence_order_loss": sop_loss / seqs,
    }
    report["most_frequent_token_accuracy"] = float(label_counts.max()) / max(mlm_count, 1)
    report["most_frequent_token_id"] = int(label_counts.argmax())
    report["eval_examples"] = int(seqs)
    report["eval_masked_tokens"] = int(mlm_count)
    return report
