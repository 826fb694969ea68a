"""The one training loop: a DeepSpeed engine for pretraining and every fine-tuning task.

The loop knows nothing about ALBERT. A run is described by:

- a `torch.nn.Module` (any model),
- a `BatchSource`: micro-batch number i of this rank, deterministic, so the data position is
  just a counter and a resumed run sees exactly the batches it would have seen,
- a `LossFn`: `(model, batch) -> LossOutput(loss, metrics)`,
- an optional `EvalFn` (called every `train.eval_every` steps and at the end),
- `TrainConfig` + `DeepSpeedConfig` from the profile, an output directory, and a
  `SaveModelFn` that writes an albertctl model directory into every checkpoint.

Batch arithmetic: micro_batch_size x gradient accumulation x world size = global_batch_size.
DeepSpeed divides each micro-batch's loss by the accumulation steps and averages gradients
over ranks, so a `LossFn` returns the *mean* loss of its micro-batch. A loss whose
normaliser varies between micro-batches (MLM: real masked positions) names the batch tensors
to total in `RunSpec.step_totals`; the loop sums them over the whole global batch (every
micro-batch of the step, every rank) and hands the loss function the per-micro-batch average
in `batch["step_totals/<name>"]`, so that dividing by it weighs every prediction equally.

Run directory layout (`out_dir`):

    metrics.jsonl          one JSON object per log / eval event
    checkpoints/step-N/    see `training.checkpoint`: model dir + optimiser, RNG, data position
    best/                  an albertctl model dir of the best eval so far (when `best_metric`)
    tensorboard/           when tensorboard is installed
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import torch
from torch import nn

from albertctl.core.config import DeepSpeedConfig, TrainConfig

Batch = Mapping[str, torch.Tensor]


class LossOutput(NamedTuple):
    """What a loss function returns for one micro-batch.

    `loss`: scalar tensor, the micro-batch's mean loss (the thing to differentiate).
    `metrics`: name -> (numerator, denominator) sums, e.g.
    `{"masked_lm_accuracy": (correct, count), "masked_lm_loss": (loss * count, count)}`.
    The loop adds numerators and denominators over micro-batches, ranks and the log interval,
    and reports numerator / denominator. Tensors or floats; they are detached by the loop.
    """

    loss: torch.Tensor
    metrics: dict[str, tuple[torch.Tensor | float, torch.Tensor | float]]


class LossFn(Protocol):
    def __call__(self, model: nn.Module, batch: Batch) -> LossOutput:
        """`model` is the DeepSpeed engine wrapping your module: call it like the module."""
        ...


class BatchSource(Protocol):
    """Micro-batches of one rank, addressed by a counter (0, 1, 2, ...).

    `micro_batch(i)` must return the same tensors for the same `i` every time (seed the
    shuffling and masking from `i`), and different ranks must see different data: build the
    source with the rank and world size (see `IndexedBatches`). The loop asks for
    `i = step * accumulation + k` and records the next `i` as the data position.
    """

    def micro_batch(self, index: int) -> Batch: ...


class EvalFn(Protocol):
    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        """Evaluate `model` (the unwrapped module, already in eval mode, under no_grad) at
        `step`; return flat metrics. Called on every rank (ZeRO-3 needs all ranks); rank 0's
        result is logged and used for `best_metric`."""
        ...


class SaveModelFn(Protocol):
    def __call__(self, state_dict: dict[str, torch.Tensor], target: Path) -> None:
        """Write an albertctl model directory at `target` (e.g. via `core.modeldir.save_model_dir`)
        from a full, consolidated fp32 state dict on CPU. Called on rank 0 only."""
        ...


class ProgressFn(Protocol):
    def __call__(self, event: dict[str, Any]) -> None:
        """Receives every log/eval event (the same dicts as metrics.jsonl). Rank 0 only."""
        ...


@dataclass(frozen=True)
class RunSpec:
    """Everything that says *what* to train, apart from the profile's train/deepspeed sections."""

    model: nn.Module
    batches: BatchSource
    loss: LossFn
    save_model: SaveModelFn
    out_dir: Path
    evaluate: EvalFn | None = None
    # Fine-tuning: keep `out_dir/best` as the model dir with the best value of this eval metric.
    best_metric: str | None = None
    best_mode: Literal["max", "min"] = "max"
    # Batch tensors whose sum over the global batch the loss needs (see module docstring).
    step_totals: tuple[str, ...] = ()
    # Metric names shown in the live progress line beside step, loss, lr, tokens/s and ETA.
    show_metrics: tuple[str, ...] = ()
    # Tokens per micro-batch for the tokens/s column: the count of this batch tensor's
    # nonzero entries (e.g. "attention_mask"); None shows sequences/s instead.
    token_key: str | None = "attention_mask"
    resume: bool = False  # continue from the latest good checkpoint in out_dir/checkpoints
    # Extra values recorded in each checkpoint's state.yaml and checked on --resume
    # (e.g. the profile name and model shape): a mismatch is a user error.
    identity: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    global_step: int
    stopped: Literal["finished", "interrupted"]
    last_metrics: dict[str, float]  # the last logged training metrics
    eval_metrics: dict[str, float]  # the last evaluation (empty when no EvalFn)
    checkpoint: Path | None  # the last checkpoint written (rank 0's path)
    best: dict[str, float] | None = None  # eval metrics of the best checkpoint, if tracked
    best_dir: Path | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int


def init_distributed() -> Distributed:
    """Set DeepSpeed up for this process: CPU accelerator when no GPU, and the env variables a
    single process needs without the launcher (RANK=0, WORLD_SIZE=1, a free MASTER_PORT)."""
    raise NotImplementedError


def accumulation_steps(train: TrainConfig, world_size: int) -> int:
    """global_batch = micro_batch x accumulation x world_size; AlbertError when it does not divide."""
    raise NotImplementedError


def deepspeed_config(train: TrainConfig, ds: DeepSpeedConfig, world_size: int) -> dict[str, Any]:
    """The JSON config handed to `deepspeed.initialize` (batch sizes, ZeRO, precision,
    clipping), with `ds.extra` merged on top."""
    raise NotImplementedError


def train(spec: RunSpec, train_config: TrainConfig, ds_config: DeepSpeedConfig,
          progress: ProgressFn | None = None) -> TrainResult:
    """Run `train_config.train_steps` optimizer steps (from the resumed step, if resuming).

    Every `save_every` steps and at the end: an atomic checkpoint (keep the last `keep_last`).
    Every `log_every` steps: a metrics event (step, loss, lr, tokens/s, ETA, the loss
    function's metrics). Every `eval_every` steps (0: only at the end): `spec.evaluate`.
    A non-finite loss stops *before* the optimizer step with an AlbertError naming the step
    and the last good checkpoint. SIGINT/SIGTERM finish the current step, save a checkpoint and
    return with `stopped="interrupted"`.
    """
    raise NotImplementedError


class IndexedBatches:
    """A `BatchSource` over `num_examples` examples: shuffled per epoch from `seed`, sharded
    over ranks, collated per micro-batch.

    Global micro-batch g = i * world_size + rank holds stream positions
    [g * micro_batch_size, (g + 1) * micro_batch_size); position p is example
    `permutation(epoch = p // num_examples)[p % num_examples]`. One rank with accumulation k*n
    therefore sees exactly the examples n ranks with accumulation k see, step for step.
    `collate(examples, g)` gets the global micro-batch number (use it to seed masking).
    """

    def __init__(
        self,
        num_examples: int,
        fetch: Callable[[list[int]], list[dict[str, Any]]],
        collate: Callable[[list[dict[str, Any]], int], Batch],
        micro_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        raise NotImplementedError

    def micro_batch(self, index: int) -> Batch:
        raise NotImplementedError
