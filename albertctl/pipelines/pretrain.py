"""`albertctl pretrain`: MLM + SOP on `prepare`'s output with the one training loop.

resolve the data (the built-in sample corpus, prepared once and cached, when no --data)
-> check it against the profile (vocabulary size, sequence length)
-> the model: fresh from the profile's seed, or --init MODEL_DIR
-> rank-sharded, shuffled batches; dynamic masks seeded by batch number
-> the loop (training/loop.py) with the MLM + SOP loss, a checkpoint every save_every steps
-> RUN_DIR/model (the final albertctl model dir) and the eval report on held-out data,
   beside the accuracy of always predicting the most frequent masked token.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from albertctl.core import outputs
from albertctl.core.config import Profile
from albertctl.core.console import human_bytes, human_duration
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import HeadRecord, load_model_dir, save_model_dir
from albertctl.core.results import Result
from albertctl.data.corpus import cache_dir
from albertctl.data.pretraining import (
    PretrainingCollator,
    check_data_matches,
    load_split,
    pretraining_data_record,
    read_manifest,
    rows_at,
    vocab_file,
)
from albertctl.data.tokenizer import load_tokenizer
from albertctl.model.albert import AlbertForPreTraining
from albertctl.model.cost import profile_summary
from albertctl.tasks.pretraining import EVAL_BATCH_SIZE, pretraining_metrics, pretraining_step
from albertctl.training import checkpoint as ckpt
from albertctl.training import device, distributed, loop, trackers
from albertctl.training.batches import Batch, IndexedBatches
from albertctl.training.loop import LossOutput

ProgressFn = Callable[[dict[str, Any]], None]
# The loop totals this batch tensor over the global batch, so the MLM loss is the mean over
# every real masked position of the step (SPEC section 4), whatever the accumulation.
MASKED_COUNT_KEY = "masked_lm_weights"


def mlm_sop_loss(model: nn.Module, batch: Batch) -> LossOutput:
    """The loop's loss function for pretraining: MLM (at the masked positions) + SOP."""
    count = batch.get(f"step_totals/{MASKED_COUNT_KEY}")
    lo = pretraining_step(model, batch, masked_count=count)
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


# ---------------------------------------------------------------------------------------------
# the recipe


@dataclass(frozen=True)
class PretrainResult(Result):
    """What `albertctl pretrain` prints; `to_dict()` is its --json output."""

    rank: int  # only rank 0 renders
    stopped: str  # "finished", "interrupted" or "early"
    global_step: int
    seconds: float
    train: dict[str, Any]  # the last logged training metrics
    eval: dict[str, Any]  # the held-out report (global_step first), {} when none ran
    checkpoint: str | None
    model_dir: str
    run_dir: str
    data_dir: str


def run(
    profile: Profile,
    data: Path | None,
    out: Path,
    resume: bool = False,
    init: Path | None = None,
    progress: ProgressFn | None = None,
    report_to: Sequence[str] = (),
    resume_from: Path | None = None,
) -> PretrainResult:
    """Pretrain; returns the training summary and the held-out eval report (rank 0's).
    `report_to`: experiment trackers for the metrics (training.trackers; default: auto).
    `resume_from`: continue from this checkpoint directory (any world size and ZeRO stage)."""
    if init is not None and (resume or resume_from is not None):
        raise AlbertError("--init and --resume exclude each other: --resume continues the run in --out")
    if resume_from is not None:  # before the data is prepared
        ckpt.check_checkpoint(resume_from)
    trackers_used = trackers.parse_report_to(report_to)
    what = f"profile '{profile.name}'"
    m = profile.model
    if data is not None:  # user errors before DeepSpeed starts
        check_data_matches(data, m.vocab_size, m.max_position_embeddings, what)
    init_dir = load_model_dir(init) if init is not None else None
    if init_dir is not None:
        build_model(profile, init_dir)
    # checked and locked before DeepSpeed starts (one line, quickly); rank 0 holds the lock
    with ckpt.run_directory(out, ("model",), [data, init], hold=os.environ.get("RANK", "0") == "0"):
        dist = distributed.init_distributed()
        if progress is not None and dist.rank == 0:  # the run header: device, world size, time to expect
            est = estimate(profile, dist.world_size, dist.local_rank)
            progress({"event": "info", "message": estimate_line(est, profile.train.train_steps)})
            for message in est["warnings"]:
                progress({"event": "warning", "message": message})
        result, final, data_dir = _train(
            profile, data, out, resume, init_dir, dist, progress, what, trackers_used, resume_from
        )
    report = {"global_step": result.global_step, **result.eval_metrics}
    return PretrainResult(
        rank=dist.rank,
        stopped=result.stopped,
        global_step=result.global_step,
        seconds=result.seconds,
        train=result.last_metrics,
        eval=report if result.eval_metrics else {},
        checkpoint=str(result.checkpoint) if result.checkpoint else None,
        model_dir=str(final),
        run_dir=str(out),
        data_dir=str(data_dir),
    )


def _train(
    profile: Profile,
    data: Path | None,
    out: Path,
    resume: bool,
    init_dir: Any | None,
    dist: distributed.Distributed,
    progress: ProgressFn | None,
    what: str,
    trackers_used: tuple[str, ...] = (),
    resume_from: Path | None = None,
) -> tuple[loop.TrainResult, Path, Path]:
    """The data, the model and the loop; then RUN_DIR/model from the last checkpoint."""
    m = profile.model
    data_dir = data if data is not None else builtin_data(profile, dist, progress)
    manifest = check_data_matches(data_dir, m.vocab_size, m.max_position_embeddings, what)
    train_ds, eval_ds = load_split(data_dir, "train"), load_split(data_dir, "eval")
    spm = vocab_file(data_dir, manifest)
    tokenizer = load_tokenizer(spm, profile.data.do_lower_case)
    collator = PretrainingCollator(tokenizer, profile.data, profile.train.seed)
    # recorded in every model dir the run writes: `eval --model M` finds the data without --data
    recorded = pretraining_data_record(data_dir, manifest, builtin=data is None)

    model = build_model(profile, init_dir)
    batches = IndexedBatches(
        len(train_ds),
        lambda idx: rows_at(train_ds, idx),
        collator,
        profile.train.micro_batch_size,
        dist.rank,
        dist.world_size,
        seed=profile.train.seed,
    )

    def save_model(state: dict[str, torch.Tensor], target: Path) -> None:
        save_model_dir(target, profile, state, spm, head=HeadRecord(extra={"pretraining_data": recorded}))

    def held_out(module: nn.Module, step: int) -> dict[str, float]:
        return pretraining_metrics(
            module,
            eval_ds,
            collator,
            EVAL_BATCH_SIZE,
            dist.rank,
            dist.world_size,
            reduce=distributed.all_reduce_sum,
            progress=progress if dist.rank == 0 else None,
        )

    spec = loop.RunSpec(
        model=model,
        batches=batches,
        loss=mlm_sop_loss,
        save_model=save_model,
        out_dir=out,
        evaluate=held_out,
        step_totals=(MASKED_COUNT_KEY,),
        show_metrics=("masked_lm_accuracy", "sentence_order_accuracy"),
        resume=resume,
        resume_from=resume_from,
        report_to=trackers_used,
        identity={
            "profile": profile.name,
            "model": profile.to_dict()["model"],
            "vocab_sha256": manifest.get("vocab", {}).get("sha256"),
        },
    )
    result = loop.train(spec, profile.train, profile.deepspeed, progress)
    final = out / "model"
    if dist.rank == 0 and result.checkpoint is not None:
        save_final_model(final, result.checkpoint, result.global_step, profile, spm, recorded)
    return result, final, data_dir


def save_final_model(
    target: Path, checkpoint: Path, global_step: int, profile: Profile, spm: Path, recorded: dict[str, Any]
) -> None:
    """RUN_DIR/model: the last checkpoint's weights, its step and the data recorded in the head."""
    md = load_model_dir(checkpoint / "model")
    head = HeadRecord(extra={"global_step": global_step, "pretraining_data": recorded})
    save_model_dir(target, profile, md.state_dict, spm, head=head)


def build_model(profile: Profile, init: Any | None) -> AlbertForPreTraining:
    """A fresh model from the profile's seed, or the weights of an --init model directory."""
    with torch.random.fork_rng():
        torch.manual_seed(profile.train.seed)
        model = AlbertForPreTraining(profile.model)
    if init is None:
        return model
    if init.profile.model != profile.model:
        diff = [k for k, v in profile.to_dict()["model"].items() if init.profile.to_dict()["model"][k] != v]
        raise AlbertError(
            f"{init.path}: its model differs from profile '{profile.name}' in "
            f"{', '.join(f'model.{k}' for k in diff)}"
        )
    own = model.state_dict()
    missing = [k for k in own if k not in init.state_dict]
    heads = ("predictions.", "sop_classifier.")
    if any(not k.startswith(heads) for k in missing):
        raise AlbertError(
            f"{init.path}: not an ALBERT model directory ({len(missing)} tensors missing, e.g. {missing[0]})"
        )
    with torch.no_grad():
        for k, v in own.items():
            if k in init.state_dict:
                if init.state_dict[k].shape != v.shape:
                    raise AlbertError(
                        f"{init.path}: {k} has shape {tuple(init.state_dict[k].shape)}, "
                        f"profile '{profile.name}' needs {tuple(v.shape)}"
                    )
                v.copy_(init.state_dict[k])
    return model


def builtin_data(profile: Profile, dist: distributed.Distributed, progress: ProgressFn | None) -> Path:
    """The sample corpus prepared for this profile's vocabulary and data recipe, cached under
    the cache directory (rank 0 prepares, the others wait)."""
    from albertctl.data.preparation import prepare_data

    recipe = {
        "data": profile.to_dict()["data"],
        "vocab_size": profile.model.vocab_size,
        "seed": profile.train.seed,
        "python": sys.version_info[:2],
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    target = cache_dir() / "pretrain-data" / f"sample-{profile.name}-{key}"
    if dist.rank == 0:
        outputs.make_dirs(target.parent)
        # another run preparing the same cache entry: wait for it rather than fail
        with outputs.lock(target.parent / f".{target.name}.lock", target, wait=True):
            try:
                read_manifest(target)
            except AlbertError:
                shutil.rmtree(target, ignore_errors=True)  # our own cache entry, unreadable
                on_prepare = None
                if progress is not None:
                    progress(
                        {"event": "info", "message": f"preparing the sample corpus into {target} (once)"}
                    )

                    def on_prepare(p: dict[str, Any]) -> None:
                        progress({"event": "prepare", **p})

                prepare_data(profile, None, target, num_proc=min(2, os.cpu_count() or 1), progress=on_prepare)
    distributed.all_reduce_sum([0.0])  # a barrier: the other ranks wait for rank 0's data
    return target


# ---------------------------------------------------------------------------------------------
# --dry-run (the launcher: pipelines/launch.py)


def plan(profile: Profile, world_size: int) -> dict[str, Any]:
    """What a run would do, without building anything heavy."""
    t = profile.train
    accumulation = loop.accumulation_steps(t, world_size)
    s = profile_summary(profile, world_size)
    memory = s["memory_per_gpu_bytes"][f"zero{profile.deepspeed.zero_stage}"]
    return {
        "profile": profile.name,
        "world_size": world_size,
        "micro_batch_size": t.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "global_batch_size": t.global_batch_size,
        "train_steps": t.train_steps,
        "warmup_steps": t.warmup_steps,
        "optimizer": t.optimizer,
        "learning_rate": t.learning_rate,
        "precision": t.precision,
        "zero_stage": profile.deepspeed.zero_stage,
        "parameters": s["parameters"],
        "parameters_with_pretraining_heads": s["parameters_with_pretraining_heads"],
        "tokens_per_step": s["tokens_per_step"],
        "training_flops_per_token": s["training_flops_per_token"],
        "memory_per_gpu_bytes": memory["total"],
        "memory_model_states_bytes": memory["model_states"],
        "memory_activations_bytes": memory["activations"],
    }


def dry_run(profile: Profile, world_size: int) -> dict[str, Any]:
    """`pretrain --dry-run`: the plan and the time estimate, in one mapping (its --json output)."""
    return {**plan(profile, world_size), **estimate(profile, world_size)}


# A run whose time at the device's matmul peak (a lower bound) exceeds this is called far too big.
TOO_LONG_SECONDS = 2 * 86400


def estimate(profile: Profile, world_size: int, local_rank: int = 0) -> dict[str, Any]:
    """The device, its measured matmul peak, and the time per step and for the run at that peak:
    training FLOPs per token x tokens per step / (peak x GPUs). Real steps run below the peak, so
    these are lower bounds (on a CPU the peak is fp32's). Warns when even that is beyond
    TOO_LONG_SECONDS, or when the memory estimate exceeds the GPU's memory (the machine's RAM for
    CPU ranks, which share it)."""
    s = profile_summary(profile, world_size)
    dev = device.current(local_rank)
    peak = device.matmul_peak(dev.kind, profile.train.precision)
    on_gpu = dev.kind == "cuda"
    per_step = s["training_flops_per_token"] * s["tokens_per_step"] / (peak * (world_size if on_gpu else 1))
    steps = profile.train.train_steps
    memory = s["memory_per_gpu_bytes"][f"zero{profile.deepspeed.zero_stage}"]["total"]
    needed = memory if on_gpu else memory * world_size
    where = f"{world_size} GPU{'s' if world_size > 1 else ''}" if on_gpu else f"{world_size} CPU process(es)"
    warnings = []
    if per_step * steps > TOO_LONG_SECONDS:
        warnings.append(
            f"profile '{profile.name}' is far too big for this machine: {steps} steps take at least "
            f"{human_duration(per_step * steps)} on {where} ({human_duration(per_step)} per step at the "
            f"measured matmul peak); use more GPUs (--num-gpus, --num-nodes) or a smaller profile"
        )
    precision = profile.train.precision
    if not on_gpu and device.cpu_emulates(precision):
        warnings.append(
            f"train.precision is {precision}, but this CPU has no {precision} instructions "
            f"({' or '.join(device.NATIVE_CPU_FLAGS[precision])}): its matmuls are emulated, tens of times "
            "slower than fp32; use --set train.precision=fp32"
        )
    if dev.memory_bytes and needed > dev.memory_bytes:
        kind = "GPU memory" if on_gpu else "RAM"
        warnings.append(
            f"profile '{profile.name}' needs about {human_bytes(needed)} per {'GPU' if on_gpu else 'machine'} "
            f"(ZeRO-{profile.deepspeed.zero_stage}, micro-batch {profile.train.micro_batch_size}) and this "
            f"machine has {human_bytes(dev.memory_bytes)} of {kind}; see albertctl profile show "
            f"{profile.name} --world-size N"
        )
    return {
        "device": f"{dev.kind}: {dev.name}",
        "world_size": world_size,
        "device_memory_bytes": dev.memory_bytes,
        "matmul_peak_flops": peak,
        "estimated_seconds_per_step": per_step,
        "estimated_run_seconds": per_step * steps,
        "warnings": warnings,
    }


def estimate_line(est: dict[str, Any], steps: int) -> str:
    """One line for the start of a run."""
    return (
        f"{est['device']}, world size {est['world_size']}: estimated "
        f"{human_duration(est['estimated_seconds_per_step'])} per step, "
        f"{human_duration(est['estimated_run_seconds'])} for {steps} steps (FLOPs per step at the "
        f"measured matmul peak, {est['matmul_peak_flops'] / 1e12:.3g} TFLOP/s; real steps are slower)"
    )


def default_out(profile: Profile) -> Path:
    return Path("runs") / f"pretrain-{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}"
