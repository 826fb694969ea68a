"""One training run's live parts: the DeepSpeed engine, its optimiser, the ZeRO stage and this
process's place among the ranks, with the three things the loop does to them: take an
optimizer `step`, `save` a checkpoint, `restore` one. training/loop.py drives them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from albertctl.core.config import TrainConfig
from albertctl.core.errors import AlbertError
from albertctl.training import checkpoint as ckpt
from albertctl.training import distributed, ds_compat
from albertctl.training.batches import Batch
from albertctl.training.distributed import Distributed
from albertctl.training.optim import Lamb, build_optimizer, flat_layouts, learning_rate_at
from albertctl.training.runlog import RunLog, Window

if TYPE_CHECKING:
    from albertctl.training.loop import RunSpec


def dropout_seed(seed: int, rank: int) -> int:
    """The one place the global RNG (dropout) is seeded: from the profile's seed and the rank.
    A resumed run restores the saved generator state instead."""
    return (seed * 1_000_003 + rank * 7919 + 17) % (2**63)


def set_unpad(model: torch.nn.Module, on: bool) -> None:
    """train.unpad on every module that offers it (ALBERT's encoder), set by attribute as
    activation checkpointing is, so this layer needs no model knowledge. Training, pretraining's
    held-out evaluation and fine-tuned predictions all go through here: the same arithmetic."""
    for module in model.modules():
        if hasattr(module, "unpad"):
            module.unpad = on


@dataclass
class Run:
    """What `train` builds once and then steps, saves and restores."""

    spec: RunSpec
    t: TrainConfig
    dist: Distributed
    accumulation: int
    engine: Any  # deepspeed.DeepSpeedEngine wrapping spec.model
    optimizer: Any  # DeepSpeed's optimiser wrapper (ZeRO, bf16/fp16) or our own
    stage: int  # the ZeRO stage
    layouts: dict[int, Any]  # optim.flat_layouts: which stretch of a flat tensor is which parameter
    identity: dict[str, Any]  # checked on resume, recorded in every checkpoint

    @property
    def root(self) -> Path:
        return self.spec.out_dir / "checkpoints"

    @classmethod
    def start(
        cls,
        spec: RunSpec,
        t: TrainConfig,
        dist: Distributed,
        accumulation: int,
        stage: int,
        ds_json: dict[str, Any],
        identity: dict[str, Any],
        log: RunLog,
    ) -> Run:
        """Build the optimiser and the DeepSpeed engine (configured by `ds_json`, see
        `loop.deepspeed_config`) around `spec.model`."""
        import deepspeed

        for module in spec.model.modules():
            if t.activation_checkpointing and hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = True  # the Hugging Face convention, no model knowledge
        set_unpad(spec.model, t.unpad)
        optimizer = build_optimizer(spec.model, t)
        try:
            with distributed.single_process_env(), distributed.quiet_deepspeed():
                engine, ds_optimizer, _, _ = deepspeed.initialize(
                    model=spec.model, optimizer=optimizer, config=ds_json
                )
        finally:
            log.third_party()
        ds_compat.skip_single_rank_allreduce(engine, dist.world_size, stage)
        # Under ZeRO or bf16/fp16 DeepSpeed gives the optimiser flat tensors: LAMB then needs to know
        # which stretch is which parameter to keep its trust ratio per layer (training/optim.py), and
        # checkpoints store the optimiser state per parameter (training/checkpoint.py).
        layouts = flat_layouts(ds_optimizer)
        if isinstance(optimizer, Lamb) and optimizer.adapts:
            optimizer.set_layouts(layouts)
        if t.compile:  # DeepSpeed compiles the wrapped module in place; state-dict keys stay the same
            engine.compile()
        return cls(
            spec,
            t,
            dist,
            accumulation=accumulation,
            engine=engine,
            optimizer=ds_optimizer,
            stage=stage,
            layouts=layouts,
            identity=identity,
        )

    def step(self, step: int, window: Window, last_ckpt: Path | None) -> float:
        """Optimizer step number `step + 1` over this rank's micro-batches; returns its learning
        rate. A non-finite loss on any rank stops before the optimizer step (AlbertError)."""
        t, gas, engine = self.t, self.accumulation, self.engine
        lr = learning_rate_at(step, t.learning_rate, t.warmup_steps, t.train_steps, t.poly_power)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batches = [_to(self.spec.batches.micro_batch(step * gas + k), engine.device) for k in range(gas)]
        _add_step_totals(batches, self.spec.step_totals, gas * self.dist.world_size)
        losses = []
        for k, batch in enumerate(batches):
            out = self.spec.loss(engine, batch)
            engine.backward(out.loss)
            losses.append(out.loss.detach().float().item())
            window.add(out, batch, self.spec.token_key)
            if k < gas - 1:
                engine.step()  # DeepSpeed only counts the micro-batch here
        if distributed.any_rank(not all(math.isfinite(x) for x in losses)):
            bad = next((x for x in losses if not math.isfinite(x)), float("nan"))
            where = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written"
            raise AlbertError(
                f"non-finite loss ({bad}) at step {step + 1}; stopped before the optimizer step, "
                f"{where} (try a lower train.learning_rate or precision fp32)"
            )
        engine.step()
        window.steps += 1
        window.loss += sum(losses)
        window.micro += len(losses)
        return lr

    def evaluate(self, step: int) -> dict[str, float]:
        """`spec.evaluate` on the unwrapped module in eval mode, under no_grad."""
        module = self.engine.module
        module.eval()
        try:
            with torch.no_grad():
                return dict(self.spec.evaluate(module, step))
        finally:
            module.train()

    def save_model(self, target: Path) -> None:
        """An albertctl model directory of the current weights at `target` (collective)."""
        state = full_state_dict(self.engine, self.stage, self.dist.rank)
        if self.dist.rank == 0:
            try:
                self.spec.save_model(state, target)
            except OSError as err:
                raise AlbertError(f"could not write {target}: {err.strerror or err}") from None

    def state_record(self, step: int, best: dict[str, float] | None) -> dict[str, Any]:
        """The checkpoint's state.yaml: where the run stands and what it must match on resume."""
        t = self.t
        return {
            "step": step,
            "next_micro_batch": step * self.accumulation,
            "accumulation": self.accumulation,
            "schedule": {
                "kind": "warmup_poly",
                "peak": t.learning_rate,
                "warmup_steps": t.warmup_steps,
                "train_steps": t.train_steps,
                "power": t.poly_power,
            },
            "seed": t.seed,
            "dropout_seed": dropout_seed(t.seed, self.dist.rank),
            "optimizer_format": ckpt.UNIVERSAL,
            "identity": self.identity,
            "best": best,
        }

    def save(self, step: int, best: dict[str, float] | None) -> Path:
        """A checkpoint of step `step` (collective). Every rank writes its shard into one temporary
        directory; rank 0 adds the model dir and state.yaml, then renames it into place. Any
        OSError (full disk) leaves no partial checkpoint."""
        rank, root = self.dist.rank, self.root
        tmp = root / f".{ckpt.checkpoint_name(step)}.tmp"
        failure: OSError | None = None
        if rank == 0:
            try:
                tmp = ckpt.begin(root, step)
            except OSError as err:
                failure = err
        distributed.barrier()
        model_state = full_state_dict(self.engine, self.stage, rank)
        universal = ckpt.universal_state(  # collective under ZeRO
            self.optimizer,
            self.engine.module,
            self.layouts,
            rank,
            self.dist.world_size,
            distributed.all_reduce_sum,
        )
        if failure is None:
            try:
                shard: dict[str, Any] = {"rng": ckpt.rng_state()}
                if universal is not None:
                    shard[ckpt.UNIVERSAL] = universal
                ckpt.write_shard(tmp, rank, shard)
                if rank == 0:
                    self.spec.save_model(model_state, tmp / ckpt.MODEL)
            except OSError as err:
                failure = err
        if distributed.any_rank(failure is not None):
            if rank == 0:
                ckpt.abandon(tmp)
            err = failure or OSError(0, "another rank failed to write its shard")
            raise ckpt.disk_error(err, step, root) from None
        path = root / ckpt.checkpoint_name(step)
        if rank == 0:
            try:
                path = ckpt.finish(root, tmp, step, self.state_record(step, best), self.t.keep_last)
            except OSError as err:
                ckpt.abandon(tmp)
                raise ckpt.disk_error(err, step, root) from None
        distributed.barrier()
        return path

    def restore(self, path: Path) -> int:
        """Model weights, optimiser state and RNG from checkpoint `path`; returns its step.

        A universal checkpoint (training/checkpoint.py) loads on any world size and ZeRO stage; one
        written before it on the same world size and stage (`check_compatible` refuses others)."""
        state = ckpt.read_state(path)
        if self.stage < 3:
            _load_weights(self.engine.module, path)
        rank = self.dist.rank
        ranks = ckpt.shard_ranks(path)
        if state.get("optimizer_format") == ckpt.UNIVERSAL:
            shards = {r: ckpt.read_shard(path, r) for r in ranks}
            saved = [shard[ckpt.UNIVERSAL] for shard in shards.values() if ckpt.UNIVERSAL in shard]
            if not saved:
                raise AlbertError(f"{path}: no trainer shard holds optimiser state")
            ckpt.load_universal_state(
                self.optimizer,
                self.stage,
                self.engine.module,
                self.layouts,
                rank,
                self.dist.world_size,
                distributed.all_reduce_sum,
                saved,
                str(path),
            )
            shard = shards.get(rank)
        else:
            shard = ckpt.read_shard(path, rank)
            if "optimizer" in shard:
                ckpt.load_optimizer_state(self.optimizer, self.stage, shard["optimizer"])
            elif self.stage > 0:
                raise AlbertError(f"{path}: shard of rank {rank} holds no optimiser state")
        step = int(state["step"])
        if shard is not None:
            ckpt.set_rng_state(shard["rng"])
        else:  # more ranks than the checkpoint had: a fresh dropout stream for this rank and step
            torch.manual_seed(dropout_seed(self.t.seed + step, rank))
        return step


def _load_weights(module: torch.nn.Module, path: Path) -> None:
    """The checkpoint's model/ weights into `module`, every tensor present and of its shape."""
    from safetensors.torch import load_file

    weights = load_file(str(path / ckpt.MODEL / "model.safetensors"))
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
