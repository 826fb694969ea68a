"""A fine-tuned model's outputs over a task's features, and its dev metrics: what fine-tuning
(the best checkpoint) and `eval TASK` (dev metrics, submission files) both run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from albertctl.model.heads import output_arrays
from albertctl.tasks.base import Feature, Task, TaskConfig, collate, sorted_batches

ProgressFn = Callable[[dict[str, Any]], None]


@torch.no_grad()
def predict_outputs(
    task: Task,
    module: nn.Module,
    features: Sequence[Feature],
    config: TaskConfig,
    pad_id: int = 0,
    progress: ProgressFn | None = None,
    split: str = "",
) -> list[np.ndarray]:
    """One output array per feature, in the features' order (batches run longest first).
    `progress` gets `evaluating` events: {split, done, total} in features (sequences, SQuAD
    windows, RACE questions), at the start and after every batch."""
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    outputs: list[np.ndarray | None] = [None] * len(features)
    done = 0
    if progress is not None:
        progress({"event": "evaluating", "split": split, "done": 0, "total": len(features)})
    for batch_ids in sorted_batches([f.length for f in features], config.eval_batch_size):
        batch = collate([features[i] for i in batch_ids], pad_id)
        ids, types, mask = (batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask"))
        arrays = output_arrays(task.head, module(ids, types, mask), batch["attention_mask"])
        for i, array in zip(batch_ids, arrays, strict=True):
            outputs[i] = array
        done += len(batch_ids)
        if progress is not None:
            progress({"event": "evaluating", "split": split, "done": done, "total": len(features)})
    module.train(was_training)
    return outputs  # type: ignore[return-value]


def dev_metrics(
    task: Task,
    module: nn.Module,
    examples: dict[str, Sequence[Any]],
    features: dict[str, Sequence[Feature]],
    config: TaskConfig,
    pad_id: int = 0,
    keep: dict[str, list[Any]] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, float]:
    """Metrics of every dev split, keys suffixed per split (MNLI: accuracy_m, accuracy_mm);
    each split's predictions go into `keep` when it is given; `progress` as in predict_outputs."""
    out: dict[str, float] = {}
    for split, suffix in task.dev_splits.items():
        preds = task.predict(
            examples[split],
            features[split],
            predict_outputs(task, module, features[split], config, pad_id, progress, split),
            config,
        )
        if keep is not None:
            keep[split] = preds
        for key, value in task.metrics(examples[split], preds).items():
            out[f"{key}_{suffix}" if suffix else key] = float(value)
    return out
