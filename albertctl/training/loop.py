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

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import torch
from torch import nn

from albertctl.core.config import DeepSpeedConfig, TrainConfig
from albertctl.core.errors import AlbertError
from albertctl.training import checkpoint as ckpt
from albertctl.training import distributed, trackers
from albertctl.training.batches import Batch, BatchSource
from albertctl.training.distributed import Distributed
from albertctl.training.optim import Lamb, build_optimizer, flat_layouts, learning_rate_at


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


class _Interrupt:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint after the current step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class _Log:
    """metrics.jsonl, TensorBoard when installed, and the progress callback: rank 0 only."""

    def __init__(self, out_dir: Path, rank: int, progress: ProgressFn | None) -> None:
        self.enabled = rank == 0
        self.progress = progress
        self.path = out_dir / "metrics.jsonl"
        self.trackers: list[trackers.Tracker] = []
        if self.enabled:
            out_dir.mkdir(parents=True, exist_ok=True)

    def third_party(self) -> None:
        """Move what DeepSpeed printed while starting into RUN/deepspeed.log."""
        text = distributed.take_chatter()
        if self.enabled and text:
            with (self.path.parent / "deepspeed.log").open("a", encoding="utf-8") as f:
                f.write(text)

    def open_trackers(self, names: tuple[str, ...], params: dict[str, Any]) -> None:
        if self.enabled:
            self.trackers = trackers.open_trackers(names, self.path.parent, params)

    def event(self, event: dict[str, Any], record: bool = True) -> None:
        if not self.enabled:
            return
        if record:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
            metrics = trackers.numeric_fields(event)
            if metrics:
                for tracker in self.trackers:
                    tracker.log(metrics, int(event.get("step", 0)))
        if self.progress is not None:
            self.progress(event)

    def warn(self, message: str) -> None:
        self.event({"event": "warning", "message": message}, record=False)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


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
    import deepspeed

    dist = distributed.init_distributed()
    log = _Log(spec.out_dir, dist.rank, progress)
    t, note = fit_warmup(train_config)
    if note:
        log.warn(note)
    gas = accumulation_steps(t, dist.world_size)
    root = spec.out_dir / "checkpoints"
    identity = {**spec.identity, "world_size": dist.world_size, "zero_stage": ds_config.zero_stage}

    # Decide where we start before building anything heavy: a user error should be quick.
    resume_from: Path | None = None
    state: dict[str, Any] = {}
    if spec.resume and spec.resume_from is not None:
        raise AlbertError("--resume and --resume-from exclude each other: --resume takes the latest in --out")
    if spec.resume_from is not None:
        resume_from = ckpt.check_checkpoint(Path(spec.resume_from))
    elif spec.resume:
        resume_from = ckpt.find_latest_good(root, log.warn)
        if resume_from is None:
            log.warn(f"no checkpoint to resume from under {root}; starting from step 0")
    if resume_from is not None:
        state = ckpt.read_state(resume_from)
        ckpt.check_compatible(resume_from, state, identity)
        if state["step"] >= t.train_steps:
            log.warn(f"{resume_from} is already at step {state['step']} (train.train_steps={t.train_steps})")
    elif spec.resume_from is None and ckpt.latest_names(root):
        raise AlbertError(
            f"{spec.out_dir} already holds checkpoints; pass --resume to continue, or choose a new --out"
        )

    if t.activation_checkpointing:
        for module in spec.model.modules():  # the Hugging Face convention, no model knowledge
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = True
    optimizer = build_optimizer(spec.model, t)
    try:
        with distributed.single_process_env(), distributed.quiet_deepspeed():
            engine, ds_optimizer, _, _ = deepspeed.initialize(
                model=spec.model,
                optimizer=optimizer,
                config=deepspeed_config(t, ds_config, dist.world_size),
            )
    finally:
        log.third_party()
    # Under ZeRO or bf16/fp16 DeepSpeed gives the optimiser flat tensors: LAMB then needs to know
    # which stretch is which parameter to keep its trust ratio per layer (training/optim.py), and
    # checkpoints store the optimiser state per parameter (training/checkpoint.py).
    layouts = flat_layouts(ds_optimizer)
    if isinstance(optimizer, Lamb) and optimizer.adapts:
        optimizer.set_layouts(layouts)
    if t.compile:  # DeepSpeed compiles the wrapped module in place; state-dict keys stay the same
        engine.compile()
    stage = ds_config.zero_stage

    step = 0
    best: dict[str, float] | None = None
    if resume_from is not None:
        step = _restore(engine, ds_optimizer, stage, layouts, resume_from, dist, t.seed)
        best = state.get("best")
    start_step = step
    last_ckpt = resume_from
    params = {f"train.{k}": v for k, v in dataclasses.asdict(t).items()}
    params.update({f"deepspeed.{k}": v for k, v in dataclasses.asdict(ds_config).items()})
    log.open_trackers(spec.report_to, {**params, **identity})
    log.event(
        {
            "event": "start",
            "start_step": step,
            "total_steps": t.train_steps,
            "world_size": dist.world_size,
            "accumulation": gas,
            "global_batch_size": t.global_batch_size,
        },
        record=False,
    )

    def save(at: int) -> Path:
        return _save(
            engine,
            ds_optimizer,
            stage,
            layouts,
            spec,
            dist,
            root,
            at,
            t.keep_last,
            {
                "step": at,
                "next_micro_batch": at * gas,
                "accumulation": gas,
                "schedule": {
                    "kind": "warmup_poly",
                    "peak": t.learning_rate,
                    "warmup_steps": t.warmup_steps,
                    "train_steps": t.train_steps,
                    "power": t.poly_power,
                },
                "seed": t.seed,
                "dropout_seed": dropout_seed(t.seed, dist.rank),
                "optimizer_format": ckpt.UNIVERSAL,
                "identity": identity,
                "best": best,
            },
        )

    window = _Window(time.perf_counter())
    last_metrics: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    best_dir = spec.out_dir / "best" if spec.best_metric else None
    stopped: Literal["finished", "interrupted", "early"] = "finished"
    stale = 0  # evaluations since the last new best (early stopping)
    began = time.perf_counter()
    if resume_from is None:
        torch.manual_seed(dropout_seed(t.seed, dist.rank))
    engine.train()
    with _Interrupt() as interrupt, contextlib.closing(log):
        while step < t.train_steps:
            lr = learning_rate_at(step, t.learning_rate, t.warmup_steps, t.train_steps, t.poly_power)
            for group in ds_optimizer.param_groups:
                group["lr"] = lr
            batches = [_to(spec.batches.micro_batch(step * gas + k), engine.device) for k in range(gas)]
            _add_step_totals(batches, spec.step_totals, gas * dist.world_size)
            losses = []
            for k, batch in enumerate(batches):
                out = spec.loss(engine, batch)
                engine.backward(out.loss)
                losses.append(out.loss.detach().float().item())
                window.add(out, batch, spec.token_key)
                if k < gas - 1:
                    engine.step()  # DeepSpeed only counts the micro-batch here
            if distributed.any_rank(not all(math.isfinite(x) for x in losses)):
                bad = next((x for x in losses if not math.isfinite(x)), float("nan"))
                where = (
                    f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written"
                )
                raise AlbertError(
                    f"non-finite loss ({bad}) at step {step + 1}; stopped before the optimizer step, "
                    f"{where} (try a lower train.learning_rate or precision fp32)"
                )
            engine.step()
            step += 1
            window.steps += 1
            window.loss += sum(losses)
            window.micro += len(losses)

            if step % t.log_every == 0 or step == t.train_steps:
                last_metrics = window.report(step, lr, t.train_steps)
                log.event({"event": "train", **last_metrics})
                window = _Window(time.perf_counter())
            interrupted = distributed.any_rank(interrupt.signal is not None)
            if step % t.save_every == 0 or step == t.train_steps or interrupted:
                last_ckpt = save(step)
                log.event({"event": "checkpoint", "step": step, "path": str(last_ckpt)}, record=False)
            if interrupted:
                stopped = "interrupted"
                break
            if spec.evaluate is not None and (
                (t.eval_every and step % t.eval_every == 0) or step == t.train_steps
            ):
                eval_metrics = _evaluate(engine, spec, step)
                log.event({"event": "eval", "step": step, **eval_metrics})
                if spec.best_metric and _improved(dist, eval_metrics, best, spec):
                    best, stale = {"step": step, **eval_metrics}, 0
                    _save_model(engine, stage, dist, spec.save_model, best_dir)
                    log.event({"event": "best", "step": step, "path": str(best_dir)}, record=False)
                elif spec.best_metric and best is not None:
                    stale += 1
                    if spec.patience and stale >= spec.patience and step < t.train_steps:
                        log.event(
                            {"event": "early_stop", "step": step, "patience": spec.patience, "best": best}
                        )
                        stopped = "early"
                        break
    return TrainResult(
        global_step=step,
        stopped=stopped,
        last_metrics=last_metrics,
        eval_metrics=eval_metrics,
        checkpoint=last_ckpt,
        best=best,
        best_dir=best_dir if best else None,
        seconds=time.perf_counter() - began if step > start_step else 0.0,
    )


def dropout_seed(seed: int, rank: int) -> int:
    """The one place the global RNG (dropout) is seeded: from the profile's seed and the rank.
    A resumed run restores the saved generator state instead."""
    return (seed * 1_000_003 + rank * 7919 + 17) % (2**63)


def _to(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _add_step_totals(
    batches: list[dict[str, torch.Tensor]], keys: tuple[str, ...], micro_batches: int
) -> None:
    """batch["step_totals/<key>"] = (sum of `key` over the global batch) / micro-batches."""
    if not keys:
        return
    local = [sum(float(b[key].float().sum()) for b in batches) for key in keys]
    totals = distributed.all_reduce_sum(local)
    for b in batches:
        for key, total in zip(keys, totals, strict=True):
            b[f"step_totals/{key}"] = torch.tensor(max(total, 1.0) / micro_batches, device=b[key].device)


class _Window:
    """Sums over one log interval on this rank."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.steps = 0
        self.micro = 0
        self.loss = 0.0
        self.tokens = 0.0
        self.sequences = 0.0
        self.metrics: dict[str, list[float]] = {}

    def add(self, out: LossOutput, batch: Batch, token_key: str | None) -> None:
        for name, (num, den) in out.metrics.items():
            acc = self.metrics.setdefault(name, [0.0, 0.0])
            acc[0] += float(num)
            acc[1] += float(den)
        first = next(v for v in batch.values() if isinstance(v, torch.Tensor))
        self.sequences += first.shape[0]
        if token_key is not None and token_key in batch:
            self.tokens += float((batch[token_key] != 0).sum())

    def report(self, step: int, lr: float, total_steps: int) -> dict[str, float]:
        names = sorted(self.metrics)
        flat = [self.loss, self.micro, self.tokens, self.sequences]
        for n in names:
            flat += self.metrics[n]
        flat = distributed.all_reduce_sum(flat)
        seconds = max(time.perf_counter() - self.start, 1e-9)
        out: dict[str, Any] = {"step": step, "loss": flat[0] / max(flat[1], 1)}
        for i, n in enumerate(names):
            num, den = flat[4 + 2 * i], flat[5 + 2 * i]
            out[n] = num / den if den else float("nan")
        out["lr"] = lr
        out["tokens_per_second"] = flat[2] / seconds
        out["sequences_per_second"] = flat[3] / seconds
        out["eta_seconds"] = seconds / max(self.steps, 1) * (total_steps - step)
        return out


def _evaluate(engine: Any, spec: RunSpec, step: int) -> dict[str, float]:
    module = engine.module
    module.eval()
    try:
        with torch.no_grad():
            return dict(spec.evaluate(module, step))
    finally:
        module.train()


def _improved(
    dist: Distributed, metrics: dict[str, float], best: dict[str, float] | None, spec: RunSpec
) -> bool:
    """Rank 0 decides; every rank follows (ZeRO-3 gathers need all of them)."""
    value = metrics.get(spec.best_metric or "")
    better = False
    if dist.rank == 0:
        if value is None:
            raise AlbertError(
                f"best_metric {spec.best_metric!r} is not among the eval metrics ({', '.join(metrics)})"
            )
        old = None if best is None else best.get(spec.best_metric or "")
        better = old is None or (value > old if spec.best_mode == "max" else value < old)
    return distributed.any_rank(better)


def full_state_dict(engine: Any, zero_stage: int, rank: int) -> dict[str, torch.Tensor]:
    """The module's whole state dict in fp32 on CPU, on rank 0 (empty elsewhere). Under
    ZeRO-3 every rank must call it: the partitioned parameters are gathered first."""
    module = engine.module
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            if rank != 0:
                return {}
            return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}
    if rank != 0:
        return {}
    return {k: v.detach().float().cpu().clone() for k, v in module.state_dict().items()}


def _save_model(engine: Any, stage: int, dist: Distributed, save_model: SaveModelFn, target: Path) -> None:
    state = full_state_dict(engine, stage, dist.rank)
    if dist.rank == 0:
        try:
            save_model(state, target)
        except OSError as err:
            raise AlbertError(f"could not write {target}: {err.strerror or err}") from None


def _save(
    engine: Any,
    ds_optimizer: Any,
    stage: int,
    layouts: dict[int, Any],
    spec: RunSpec,
    dist: Distributed,
    root: Path,
    step: int,
    keep_last: int,
    state: dict[str, Any],
) -> Path:
    """Every rank writes its shard into one temporary directory; rank 0 adds the model dir and
    state.yaml, then renames it into place. Any OSError (full disk) leaves no partial checkpoint."""
    tmp = root / f".{ckpt.checkpoint_name(step)}.tmp"
    failure: OSError | None = None
    if dist.rank == 0:
        try:
            tmp = ckpt.begin(root, step)
        except OSError as err:
            failure = err
    distributed.barrier()
    model_state = full_state_dict(engine, stage, dist.rank)
    universal = ckpt.universal_state(  # collective under ZeRO
        ds_optimizer, engine.module, layouts, dist.rank, dist.world_size, distributed.all_reduce_sum
    )
    if failure is None:
        try:
            shard: dict[str, Any] = {"rng": ckpt.rng_state()}
            if universal is not None:
                shard[ckpt.UNIVERSAL] = universal
            ckpt.write_shard(tmp, dist.rank, shard)
            if dist.rank == 0:
                spec.save_model(model_state, tmp / ckpt.MODEL)
        except OSError as err:
            failure = err
    if distributed.any_rank(failure is not None):
        if dist.rank == 0:
            ckpt.abandon(tmp)
        err = failure or OSError(0, "another rank failed to write its shard")
        raise ckpt.disk_error(err, step, root) from None
    path = root / ckpt.checkpoint_name(step)
    if dist.rank == 0:
        try:
            path = ckpt.finish(root, tmp, step, state, keep_last)
        except OSError as err:
            ckpt.abandon(tmp)
            raise ckpt.disk_error(err, step, root) from None
    distributed.barrier()
    return path


def _restore(
    engine: Any,
    ds_optimizer: Any,
    stage: int,
    layouts: dict[int, Any],
    path: Path,
    dist: Distributed,
    seed: int,
) -> int:
    """Model weights, optimiser state and RNG from checkpoint `path`; returns its step.

    A universal checkpoint (training/checkpoint.py) loads on any world size and ZeRO stage; one
    written before it on the same world size and stage (`check_compatible` refuses others)."""
    from safetensors.torch import load_file

    state = ckpt.read_state(path)
    if stage < 3:
        weights = load_file(str(path / ckpt.MODEL / "model.safetensors"))
        module = engine.module
        own = module.state_dict()
        missing = sorted(set(own) - set(weights))
        if missing:
            raise AlbertError(
                f"{path}: checkpoint model lacks {len(missing)} tensors of this model (e.g. {missing[0]})"
            )
        with torch.no_grad():
            for k, v in own.items():
                if v.shape != weights[k].shape:
                    raise AlbertError(
                        f"{path}: {k} has shape {tuple(weights[k].shape)}, this model {tuple(v.shape)}"
                    )
                v.copy_(weights[k].to(v.dtype))
    ranks = ckpt.shard_ranks(path)
    if state.get("optimizer_format") == ckpt.UNIVERSAL:
        shards = {r: ckpt.read_shard(path, r) for r in ranks}
        saved = [shard[ckpt.UNIVERSAL] for shard in shards.values() if ckpt.UNIVERSAL in shard]
        if not saved:
            raise AlbertError(f"{path}: no trainer shard holds optimiser state")
        ckpt.load_universal_state(
            ds_optimizer,
            stage,
            engine.module,
            layouts,
            dist.rank,
            dist.world_size,
            distributed.all_reduce_sum,
            saved,
            str(path),
        )
        shard = shards.get(dist.rank)
    else:
        shard = ckpt.read_shard(path, dist.rank)
        if "optimizer" in shard:
            ckpt.load_optimizer_state(ds_optimizer, stage, shard["optimizer"])
        elif stage > 0:
            raise AlbertError(f"{path}: shard of rank {dist.rank} holds no optimiser state")
    step = int(state["step"])
    if shard is not None:
        ckpt.set_rng_state(shard["rng"])
    else:  # more ranks than the checkpoint had: a fresh dropout stream for this rank and step
        torch.manual_seed(dropout_seed(seed + step, dist.rank))
    return step
