"""DeepSpeed's internals that albertctl reads, all in this one file.

DeepSpeed's optimiser wrappers (ZeRO-3, ZeRO 1/2, BF16_Optimizer, FP16_Optimizer) hand our
client optimiser fp32 flat tensors instead of the parameters. The flat-buffer LAMB
(optim.flat_layouts) must know which stretch of a flat tensor is which parameter, and the
universal checkpoint (checkpoint.py) saves and restores those stretches per parameter. Neither
is public API: the attribute names below are DeepSpeed 0.1x's. When a DeepSpeed upgrade renames
them, this is the file to change (tests/test_optim.py and tests/test_resume_elsewhere.py say so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

WrapperKind = Literal["zero3", "zero", "bf16", "fp16"]


@dataclass(frozen=True)
class MasterGroup:
    """One parameter group as a wrapper lays it out for the client optimiser."""

    kind: WrapperKind
    flat: torch.Tensor  # the fp32 tensor the client optimiser steps (its state is keyed by it)
    params: list[torch.Tensor]  # the model's parameters laid out in it, in order
    process_group: Any  # the ranks the group's buffer is split over (None: not split)
    # Where each parameter starts in the group's whole buffer (ZeRO 1/2 may pad for alignment);
    # None: packed back to back. Unused for ZeRO-3, which splits each parameter instead.
    offsets: list[int] | None
    partition_size: int  # elements of the buffer per rank (ZeRO-3: this rank's flat tensor)


def master_groups(ds_optimizer: Any) -> list[MasterGroup] | None:
    """The wrapper's groups, in its order; None when the client optimiser steps the parameters
    themselves (fp32 without ZeRO). AttributeError/IndexError/TypeError when the wrapper is not
    laid out as this file expects."""
    import deepspeed

    d = ds_optimizer
    if hasattr(d, "fp32_partitioned_groups_flat"):  # ZeRO-3
        pairs = zip(d.fp32_partitioned_groups_flat, d.fp16_groups, strict=True)
        return [MasterGroup("zero3", f, list(p), d.dp_process_group, None, f.numel()) for f, p in pairs]
    if hasattr(d, "single_partition_of_fp32_groups"):  # ZeRO 1/2
        offsets = getattr(d, "round_robin_bit16_offsets", None)
        return [
            MasterGroup(
                "zero",
                flat,
                list(d.round_robin_bit16_groups[i]),
                d.real_dp_process_group[i],
                list(offsets[i]) if offsets else None,
                d.partition_size[i],
            )
            for i, flat in enumerate(d.single_partition_of_fp32_groups)
        ]
    if hasattr(d, "fp32_groups_flat_partition"):  # BF16_Optimizer
        out = []
        for i, flat in enumerate(d.fp32_groups_flat_partition):
            group = d.real_dp_process_group[i]
            size = d.bf16_groups_flat[i].numel() // deepspeed.comm.get_world_size(group=group)
            out.append(MasterGroup("bf16", flat, list(d.bf16_groups[i]), group, None, size))
        return out
    if hasattr(d, "fp32_groups_flat"):  # FP16_Optimizer (fp16, or bf16 without ZeRO)
        pairs = zip(d.fp32_groups_flat, d.fp16_groups, strict=True)
        return [MasterGroup("fp16", f, list(p), None, None, f.numel()) for f, p in pairs]
    return None


def zero3_piece(param: torch.Tensor) -> tuple[int, int, torch.Tensor]:
    """A ZeRO-3 parameter's (elements per rank, elements in all, this rank's piece, flattened)."""
    return param.ds_tensor.ds_numel, param.ds_numel, param.ds_tensor.data.view(-1)


def full_shape(param: torch.Tensor) -> tuple[int, ...]:
    """The parameter's shape in the model (ZeRO-3 leaves an empty placeholder in `shape`)."""
    return tuple(getattr(param, "ds_shape", param.shape))


def unfused_copies(ds_optimizer: Any) -> dict[int, torch.Tensor]:
    """DeepSpeed's unfused bf16/fp16 wrapper (ZeRO 0 where the fused one is unavailable, e.g. bf16
    on a CPU) keeps one fp32 copy per parameter and hands those copies to the client optimiser:
    `id(copy) -> the model's parameter`. Empty for every other wrapper."""
    if not hasattr(ds_optimizer, "fp32_groups") or hasattr(ds_optimizer, "fp32_groups_flat"):
        return {}
    pairs = zip(ds_optimizer.fp32_groups, ds_optimizer.fp16_groups, strict=True)
    return {id(c): p for copies, params in pairs for c, p in zip(copies, params, strict=True)}


def inner_optimizer(ds_optimizer: Any) -> torch.optim.Optimizer | None:
    """The client optimiser a wrapper holds; None when `ds_optimizer` is the client itself."""
    inner = getattr(ds_optimizer, "optimizer", None)
    if isinstance(ds_optimizer, torch.optim.Optimizer) and inner is None:
        return None
    return inner


def refresh_low_precision(ds_optimizer: Any) -> None:
    """Copy the fp32 masters into the bf16/fp16 parameters, where the wrapper keeps both."""
    if hasattr(ds_optimizer, "update_lp_params"):
        ds_optimizer.update_lp_params()


def unpartitioned_masters(ds_optimizer: Any) -> list[torch.Tensor]:
    """ZeRO-0 bf16/fp16 wrappers' fp32 masters (empty for fp32)."""
    groups = getattr(ds_optimizer, "fp32_groups_flat_partition", None) or getattr(
        ds_optimizer, "fp32_groups_flat", None
    )
    return list(groups or [])


def zero12_masters(ds_optimizer: Any) -> list[torch.Tensor]:
    """ZeRO 1/2: this rank's fp32 partition of each group."""
    return list(ds_optimizer.single_partition_of_fp32_groups)


def zero3_state(ds_optimizer: Any) -> tuple[dict[str, Any], list[torch.Tensor]]:
    """ZeRO-3: (the client optimiser's state, this rank's fp32 partitions) from DeepSpeed's state dict."""
    sd = ds_optimizer.state_dict()
    return sd["optimizer_state_dict"], list(sd["fp32_flat_groups"])


def zero3_inner_state(ds_optimizer: Any) -> dict[str, Any]:
    """ZeRO-3: the client optimiser's state dict, keyed as DeepSpeed's own restore expects."""
    ds_optimizer._set_fp32_optimizer_param_groups()
    try:
        return ds_optimizer.optimizer.state_dict()
    finally:
        ds_optimizer._clear_fp32_optimizer_param_groups()


def zero3_load(
    ds_optimizer: Any, optimizer_state: dict[str, Any], fp32_flat_groups: list[torch.Tensor]
) -> None:
    """ZeRO-3: DeepSpeed's own restore (which also copies the fp32 partitions into the parameters),
    fed from our files rather than from its checkpoint format."""
    ds_optimizer._rigid_load_state_dict(
        {
            "loss_scaler": ds_optimizer.loss_scaler,
            "dynamic_loss_scale": ds_optimizer.dynamic_loss_scale,
            "overflow": False,
            "optimizer_state_dict": optimizer_state,
            "fp32_flat_groups": fp32_flat_groups,
        }
    )


def skip_single_rank_allreduce(engine: Any, world_size: int, zero_stage: int) -> None:
    """Without ZeRO, DeepSpeed's engine averages the gradients over the ranks after every
    backward (flattening them into a bucket and back) even when there is one rank, where the
    average is the gradient itself: turn that pass off then. Under ZeRO the same hook feeds the
    partitioned gradient buffers, so it stays."""
    if world_size == 1 and zero_stage == 0:
        engine.enable_backward_allreduce = False
