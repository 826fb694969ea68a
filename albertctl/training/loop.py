"""The one training loop: a DeepSpeed engine for pretraining and every fine-tuning task.

The loop knows nothing about ALBERT. A run is described by:

- a `torch.nn.Module` (any model),
- a `BatchSource` (training/batches.py): micro-batch number i of this rank, deterministic, so the data position is
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

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import torch
from torch import nn

from albertctl.core.config import DeepSpeedConfig, TrainConfig
from albertctl.core.errors import AlbertError
from albertctl.training import checkpoint as ckpt
from albertctl.training import distributed
from albertctl.training.batches import Batch, BatchSource
from albertctl.training.distributed import Distributed
from albertctl.training.interrupt import Interrupt
from albertctl.training.run import Run, dropout_seed
from albertctl.training.runlog import RunLog, Window


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
    # Early stopping: stop after this many evaluations in a row without a new best; 0 = off.
    patience: int = 0
    # Batch tensors whose sum over the global batch the loss needs (see module docstring).
    step_totals: tuple[str, ...] = ()
    # Metric names shown in the live progress line beside step, loss, lr, tokens/s and ETA.
    show_metrics: tuple[str, ...] = ()
    # Tokens per micro-batch for the tokens/s column: the count of this batch tensor's
    # nonzero entries (e.g. "attention_mask"); None shows sequences/s instead.
    token_key: str | None = "attention_mask"
    resume: bool = False  # continue from the latest good checkpoint in out_dir/checkpoints
    # Continue from this checkpoint directory instead (any run's, any world size and ZeRO stage
    # for checkpoints in the universal format; see training/checkpoint.py).
    resume_from: Path | None = None
    # Extra values recorded in each checkpoint's state.yaml and checked on --resume
    # (e.g. the profile name and model shape): a mismatch is a user error.
    identity: dict[str, Any] = field(default_factory=dict)
    # Experiment trackers for the metrics (trackers.parse_report_to); () = metrics.jsonl only.
    report_to: tuple[str, ...] = ()


@dataclass
class TrainResult:
    global_step: int
    stopped: Literal["finished", "interrupted", "early"]
    last_metrics: dict[str, float]  # the last logged training metrics
    eval_metrics: dict[str, float]  # the last evaluation (empty when no EvalFn)
    checkpoint: Path | None  # the last checkpoint written (rank 0's path)
    best: dict[str, float] | None = None  # eval metrics of the best checkpoint, if tracked
    best_dir: Path | None = None
    seconds: float = 0.0


def accumulation_steps(train: TrainConfig, world_size: int) -> int:
    """global_batch = micro_batch x accumulation x world_size; AlbertError when it does not divide."""
    per_step = train.micro_batch_size * world_size
    if train.global_batch_size % per_step:
        raise AlbertError(
            f"train.global_batch_size ({train.global_batch_size}) must be a multiple of "
            f"train.micro_batch_size x world size ({train.micro_batch_size} x {world_size} = {per_step})"
        )
    return train.global_batch_size // per_step


def deepspeed_config(train: TrainConfig, ds: DeepSpeedConfig, world_size: int) -> dict[str, Any]:
    """The JSON config handed to `deepspeed.initialize` (batch sizes, ZeRO, precision,
    clipping), with `ds.extra` merged on top."""
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.offload_optimizer != "none":
        zero["offload_optimizer"] = {"device": ds.offload_optimizer}
    if ds.offload_param != "none":
        zero["offload_param"] = {"device": ds.offload_param}
    config: dict[str, Any] = {
        "train_batch_size": train.global_batch_size,
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": accumulation_steps(train, world_size),
        "zero_optimization": zero,
        "bf16": {"enabled": train.precision == "bf16"},
        "fp16": {"enabled": train.precision == "fp16", "initial_scale_power": 16},
        # Our LAMB and AdamW are client optimisers (on every device); ZeRO handles any torch optimiser.
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    if train.max_grad_norm > 0:
        config["gradient_clipping"] = train.max_grad_norm
    return _merge(config, ds.extra)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def fit_warmup(t: TrainConfig) -> tuple[TrainConfig, str | None]:
    """A warm-up at least as long as the run never reaches the peak learning rate (e.g. a task's
    1000 warm-up steps kept after `--set task.train_steps=50`): warm up over the first 10% instead,
    and say so. A warm-up shorter than the run is kept as given."""
    if t.warmup_steps < t.train_steps:
        return t, None
    fitted = t.train_steps // 10
    return dataclasses.replace(t, warmup_steps=fitted), (
        f"warm-up of {t.warmup_steps} steps is not shorter than the run ({t.train_steps} steps), so the "
        f"learning rate would never reach its peak: warming up over {fitted} steps (10% of the run) instead; "
        "set warmup_steps below train_steps to choose"
    )


def train(
    spec: RunSpec, train_config: TrainConfig, ds_config: DeepSpeedConfig, progress: ProgressFn | None = None
) -> TrainResult:
    """Run `train_config.train_steps` optimizer steps (from the resumed step, if resuming).

    Every `save_every` steps and at the end: an atomic checkpoint (keep the last `keep_last`).
    Every `log_every` steps: a metrics event (step, loss, lr, tokens/s, ETA, the loss
    function's metrics). Every `eval_every` steps (0: only at the end): `spec.evaluate`.
    A non-finite loss stops *before* the optimizer step with an AlbertError naming the step
    and the last good checkpoint. SIGINT/SIGTERM finish the current step, save a checkpoint and
    return with `stopped="interrupted"`.

    The checkpoint's `model/` directory must hold the module's state dict under the module's
    own names (as `core.modeldir.save_model_dir` writes it): `--resume` reloads it from there.
    """
    dist = distributed.init_distributed()
    log = RunLog(spec.out_dir, dist.rank, progress)
    t, note = fit_warmup(train_config)
    if note:
        log.warn(note)
    gas = accumulation_steps(t, dist.world_size)
    identity = {**spec.identity, "world_size": dist.world_size, "zero_stage": ds_config.zero_stage}
    resume_from, state = _resume_point(spec, t, identity, log)  # before anything heavy: errors come quickly
    ds_json = deepspeed_config(t, ds_config, dist.world_size)
    run = Run.start(spec, t, dist, gas, ds_config.zero_stage, ds_json, identity, log)
    step = run.restore(resume_from) if resume_from is not None else 0
    best = Best(spec, state.get("best"))
    start_step, last_ckpt = step, resume_from
    params = {f"train.{k}": v for k, v in dataclasses.asdict(t).items()}
    params.update({f"deepspeed.{k}": v for k, v in dataclasses.asdict(ds_config).items()})
    log.open_trackers(spec.report_to, {**params, **identity})
    start = {"start_step": step, "total_steps": t.train_steps, "world_size": dist.world_size}
    log.event(
        {"event": "start", **start, "accumulation": gas, "global_batch_size": t.global_batch_size}, False
    )

    window = Window(time.perf_counter())
    last_metrics: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    stopped: Literal["finished", "interrupted", "early"] = "finished"
    began = time.perf_counter()
    if resume_from is None:
        torch.manual_seed(dropout_seed(t.seed, dist.rank))
    run.engine.train()
    with Interrupt() as interrupt, contextlib.closing(log):
        while step < t.train_steps:
            lr = run.step(step, window, last_ckpt)
            step += 1
            if step % t.log_every == 0 or step == t.train_steps:
                last_metrics = window.report(step, lr, t.train_steps)
                log.event({"event": "train", **last_metrics})
                window = Window(time.perf_counter())
            interrupted = distributed.any_rank(interrupt.signal is not None)
            if step % t.save_every == 0 or step == t.train_steps or interrupted:
                last_ckpt = run.save(step, best.metrics)
                log.event({"event": "checkpoint", "step": step, "path": str(last_ckpt)}, record=False)
            if interrupted:
                stopped = "interrupted"
                break
            if spec.evaluate is not None and (
                (t.eval_every and step % t.eval_every == 0) or step == t.train_steps
            ):
                eval_metrics = run.evaluate(step)
                log.event({"event": "eval", "step": step, **eval_metrics})
                if best.update(run, log, step, eval_metrics, can_stop=step < t.train_steps):
                    stopped = "early"
                    break
    return TrainResult(
        global_step=step,
        stopped=stopped,
        last_metrics=last_metrics,
        eval_metrics=eval_metrics,
        checkpoint=last_ckpt,
        best=best.metrics,
        best_dir=best.dir if best.metrics else None,
        seconds=time.perf_counter() - began if step > start_step else 0.0,
    )


def _resume_point(
    spec: RunSpec, t: TrainConfig, identity: dict[str, Any], log: RunLog
) -> tuple[Path | None, dict[str, Any]]:
    """The checkpoint to continue from (None: a fresh start) and its state.yaml; AlbertError for
    contradictory options, an incompatible checkpoint, or a fresh start over earlier checkpoints."""
    root = spec.out_dir / "checkpoints"
    resume_from: Path | None = None
    if spec.resume and spec.resume_from is not None:
        raise AlbertError("--resume and --resume-from exclude each other: --resume takes the latest in --out")
    if spec.resume_from is not None:
        resume_from = ckpt.check_checkpoint(Path(spec.resume_from))
    elif spec.resume:
        resume_from = ckpt.find_latest_good(root, log.warn)
        if resume_from is None:
            log.warn(f"no checkpoint to resume from under {root}; starting from step 0")
    if resume_from is None:
        if spec.resume_from is None and ckpt.latest_names(root):
            raise AlbertError(
                f"{spec.out_dir} already holds checkpoints; pass --resume to continue, or choose a new --out"
            )
        return None, {}
    state = ckpt.read_state(resume_from)
    ckpt.check_compatible(resume_from, state, identity)
    if state["step"] >= t.train_steps:
        log.warn(f"{resume_from} is already at step {state['step']} (train.train_steps={t.train_steps})")
    return resume_from, state


class Best:
    """Fine-tuning's `best/` model dir and early stopping, from `spec.best_metric`, `best_mode`
    and `patience` (a no-op without `best_metric`)."""

    def __init__(self, spec: RunSpec, metrics: dict[str, float] | None) -> None:
        self.spec = spec
        self.metrics = metrics  # eval metrics of the best so far, with its "step"
        self.dir = spec.out_dir / "best" if spec.best_metric else None
        self.stale = 0  # evaluations since the last new best

    def update(self, run: Run, log: RunLog, step: int, metrics: dict[str, float], can_stop: bool) -> bool:
        """Keep `best/` up to date after an evaluation; True (and an early_stop event) when
        patience has run out and `can_stop` (not the run's last step)."""
        spec = self.spec
        if not spec.best_metric or self.dir is None:
            return False
        if self._improved(run.dist, metrics):
            self.metrics, self.stale = {"step": step, **metrics}, 0
            run.save_model(self.dir)
            log.event({"event": "best", "step": step, "path": str(self.dir)}, record=False)
            return False
        if self.metrics is None:
            return False
        self.stale += 1
        if spec.patience and self.stale >= spec.patience and can_stop:
            log.event({"event": "early_stop", "step": step, "patience": spec.patience, "best": self.metrics})
            return True
        return False

    def _improved(self, dist: Distributed, metrics: dict[str, float]) -> bool:
        """Rank 0 decides; every rank follows (ZeRO-3 gathers need all of them)."""
        name = self.spec.best_metric or ""
        value = metrics.get(name)
        better = False
        if dist.rank == 0:
            if value is None:
                raise AlbertError(
                    f"best_metric {name!r} is not among the eval metrics ({', '.join(metrics)})"
                )
            old = None if self.metrics is None else self.metrics.get(name)
            better = old is None or (value > old if self.spec.best_mode == "max" else value < old)
        return distributed.any_rank(better)
