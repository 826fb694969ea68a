"""Optimisers and the learning-rate schedule.

LAMB (You et al., "Large Batch Optimization for Deep Learning", 2020) is ALBERT's optimiser
(paper Sec. 4.1). On a GPU we use DeepSpeed's FusedLamb; elsewhere `Lamb` below, written to
follow the same update so that a run means the same thing on both:

    m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
    m_hat = m / (1 - b1^t)           v_hat = v / (1 - b2^t)        (bias_correction)
    u = m_hat / (sqrt(v_hat) + eps) + weight_decay * w
    r = ||w|| / ||u||, clamped to [min_coeff, max_coeff]; 1 when either norm is 0
    w = w - lr * r * u

Weight decay is not applied to LayerNorm parameters and biases (SPEC section 4).

The trust ratio is per *parameter*. DeepSpeed's precision and ZeRO wrappers hand the optimiser
flat tensors instead (a whole parameter group, or one rank's slice of it), which would make it
one ratio per group or per partition. `flat_layouts` reads how the wrapper laid the parameters
out and `Lamb.set_layouts` takes that map: the norms are then summed per parameter over the
slices (and over the ranks holding the other slices), so every ZeRO stage and precision makes
the same update as plain per-parameter LAMB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from albertctl.core.config import TrainConfig
from albertctl.core.errors import AlbertError


@dataclass(frozen=True)
class FlatLayout:
    """Which parameter each stretch of a flat tensor holds.

    `slices`: (start in the flat tensor, length, parameter number); elements in no slice are
    padding. `num_params`: how many parameters the numbers range over (the same on every rank).
    `group`: the process group whose ranks hold the other slices of these parameters, or None
    when this tensor holds them whole.
    """

    slices: tuple[tuple[int, int, int], ...]
    num_params: int
    group: Any = None


class Lamb(torch.optim.Optimizer):
    """Layer-wise adaptive moments, with FusedLamb's defaults for the trust-ratio clamp."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        bias_correction: bool = True,
        max_coeff: float = 10.0,
        min_coeff: float = 0.01,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            max_coeff=max_coeff,
            min_coeff=min_coeff,
        )
        super().__init__(params, defaults)
        self.layouts: dict[int, FlatLayout] = {}

    def set_layouts(self, layouts: dict[int, FlatLayout]) -> None:
        """Flat tensors (by `id`) whose trust ratios are per parameter slice (see module doc)."""
        self.layouts = dict(layouts)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                dtype = torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype
                grad = p.grad.to(dtype)
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=dtype)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if group["bias_correction"]:
                    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
                else:
                    m_hat, v_hat = m, v
                weight = p.to(dtype)
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update + group["weight_decay"] * weight
                layout = self.layouts.get(id(p))
                if layout is None:
                    w_norm, u_norm = weight.norm(), update.norm()
                    ratio = trust_ratio(w_norm, u_norm, group["min_coeff"], group["max_coeff"])
                    p.copy_(weight - group["lr"] * ratio * update)
                    continue
                w_norm, u_norm = _slice_norms(weight, update, layout)
                ratios = trust_ratio(w_norm, u_norm, group["min_coeff"], group["max_coeff"])
                for start, length, index in layout.slices:
                    piece = weight.narrow(0, start, length) - group["lr"] * ratios[index] * update.narrow(
                        0, start, length
                    )
                    p.narrow(0, start, length).copy_(piece)
        return loss


def _slice_norms(
    weight: torch.Tensor, update: torch.Tensor, layout: FlatLayout
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-parameter norms of `weight` and `update` from their slices in a flat tensor, summed
    over the ranks of `layout.group` (every rank calls this for the same tensors in order)."""
    dtype = torch.promote_types(weight.dtype, torch.float32)
    squares = torch.zeros(2, layout.num_params, dtype=dtype, device=weight.device)
    for start, length, index in layout.slices:
        squares[0, index] += weight.narrow(0, start, length).to(dtype).square().sum()
        squares[1, index] += update.narrow(0, start, length).to(dtype).square().sum()
    if layout.group is not None:
        import deepspeed
        from deepspeed.accelerator import get_accelerator

        device = get_accelerator().current_device_name()
        reduced = squares.to(device)
        deepspeed.comm.all_reduce(reduced, group=layout.group)
        squares = reduced.to(weight.device)
    norms = squares.sqrt()
    return norms[0], norms[1]


def trust_ratio(
    w_norm: torch.Tensor, u_norm: torch.Tensor, min_coeff: float, max_coeff: float
) -> torch.Tensor:
    """||w|| / ||u|| clamped to [min_coeff, max_coeff]; 1 when either norm is zero."""
    ratio = (w_norm / u_norm).clamp(min_coeff, max_coeff)
    return torch.where((w_norm > 0) & (u_norm > 0), ratio, torch.ones_like(ratio))


def no_decay(name: str, param: nn.Parameter, module: nn.Module) -> bool:
    """LayerNorm parameters and biases (any 1-D parameter) are not decayed."""
    return isinstance(module, nn.LayerNorm) or name.endswith("bias") or param.ndim < 2


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed weights, and LayerNorm + biases without decay. Shared parameters once."""
    decay: list[nn.Parameter] = []
    skip: list[nn.Parameter] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{name}" if module_name else name
            (skip if no_decay(full, param, module) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": skip, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module, train: TrainConfig, on_gpu: bool, flat: bool = False
) -> torch.optim.Optimizer:
    """LAMB or AdamW over `parameter_groups`. LAMB is FusedLamb on a GPU when DeepSpeed hands
    the optimiser the parameters themselves; our `Lamb` elsewhere and whenever it hands over
    flat tensors (`flat`: ZeRO >= 1, or bf16/fp16 master weights; then call `Lamb.set_layouts`
    with `flat_layouts` of the wrapper). The learning rate is set every step by the loop from
    `learning_rate_at`."""
    groups = parameter_groups(model, train.weight_decay)
    betas = (train.beta1, train.beta2)
    if train.optimizer == "lamb":
        if on_gpu and not flat:
            from deepspeed.ops.lamb import FusedLamb

            return FusedLamb(groups, lr=train.learning_rate, betas=betas, eps=train.epsilon)
        return Lamb(groups, lr=train.learning_rate, betas=betas, eps=train.epsilon)
    return torch.optim.AdamW(groups, lr=train.learning_rate, betas=betas, eps=train.epsilon)


def learning_rate_at(
    step: int, peak: float, warmup_steps: int, train_steps: int, power: float = 1.0
) -> float:
    """The learning rate for the update made at 0-based `step`.

    Linear warmup over `warmup_steps` (reaching `peak` on the last warmup step, so no step is
    wasted at lr 0), then polynomial decay `peak * (1 - step / train_steps) ** power` towards
    0, as the original `optimization.py` (power 1.0: linear).
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    remaining = max(0.0, 1.0 - step / train_steps)
    return peak * remaining**power


# ---------------------------------------------------------------------------------------------
# DeepSpeed's flat layouts. Each wrapper flattens a parameter group in order into one buffer
# (ZeRO 1/2 may pad each parameter for alignment and then split the buffer evenly over the
# ranks; ZeRO-3 splits each parameter over the ranks and concatenates this rank's pieces).
# The map is checked against the parameters' values, so a DeepSpeed that lays them out
# differently is a clear error rather than a silently different update.


def flat_layouts(ds_optimizer: Any) -> dict[int, FlatLayout]:
    """`id(flat tensor) -> FlatLayout` for the tensors DeepSpeed's wrapper gives the client
    optimiser; empty when it gives the parameters themselves (fp32 without ZeRO)."""
    import deepspeed

    def rank(group: Any) -> int:
        return deepspeed.comm.get_rank(group=group)

    def world(group: Any) -> int:
        return deepspeed.comm.get_world_size(group=group)

    def shared(group: Any) -> Any:  # the group to sum norms over; None when this rank is alone
        return group if world(group) > 1 else None

    name = type(ds_optimizer).__name__
    layouts: dict[int, FlatLayout] = {}
    checks: list[tuple[torch.Tensor, int, torch.Tensor]] = []  # (flat, start, expected piece)
    try:
        if hasattr(ds_optimizer, "fp32_partitioned_groups_flat"):  # ZeRO-3
            group = ds_optimizer.dp_process_group
            r = rank(group)
            for flat, params in zip(
                ds_optimizer.fp32_partitioned_groups_flat, ds_optimizer.fp16_groups, strict=True
            ):
                slices, offset = [], 0
                for j, param in enumerate(params):
                    piece = param.ds_tensor.ds_numel
                    valid = max(0, min(piece, param.ds_numel - r * piece))
                    if valid:
                        slices.append((offset, valid, j))
                        checks.append((flat, offset, param.ds_tensor.data.view(-1)[:valid]))
                    offset += piece
                layouts[id(flat)] = _layout(slices, len(params), shared(group), flat, offset)
        elif hasattr(ds_optimizer, "single_partition_of_fp32_groups"):  # ZeRO 1/2
            for i, flat in enumerate(ds_optimizer.single_partition_of_fp32_groups):
                params = ds_optimizer.round_robin_bit16_groups[i]
                group = ds_optimizer.real_dp_process_group[i]
                offsets = getattr(ds_optimizer, "round_robin_bit16_offsets", None)
                offsets = offsets[i] if offsets else _packed_offsets(params)
                layouts[id(flat)] = _partition_layout(
                    flat, params, offsets, ds_optimizer.partition_size[i], rank(group), shared(group), checks
                )
        elif hasattr(ds_optimizer, "fp32_groups_flat_partition"):  # BF16_Optimizer
            for i, flat in enumerate(ds_optimizer.fp32_groups_flat_partition):
                params = ds_optimizer.bf16_groups[i]
                group = ds_optimizer.real_dp_process_group[i]
                size = ds_optimizer.bf16_groups_flat[i].numel() // world(group)
                layouts[id(flat)] = _partition_layout(
                    flat, params, _packed_offsets(params), size, rank(group), shared(group), checks
                )
        elif hasattr(ds_optimizer, "fp32_groups_flat"):  # FP16_Optimizer (fp16, or bf16 without ZeRO)
            for flat, params in zip(ds_optimizer.fp32_groups_flat, ds_optimizer.fp16_groups, strict=True):
                layouts[id(flat)] = _partition_layout(
                    flat, params, _packed_offsets(params), flat.numel(), 0, None, checks
                )
    except (AttributeError, IndexError, TypeError, ValueError) as err:
        raise _layout_error(name, f"unexpected structure ({err})") from None
    for flat, start, expected in checks:
        if not torch.equal(flat.detach().narrow(0, start, expected.numel()).cpu(), expected.float().cpu()):
            raise _layout_error(name, "a parameter's values are not where its layout says")
    return layouts


def _packed_offsets(params: Sequence[torch.Tensor]) -> list[int]:
    offsets, at = [], 0
    for p in params:
        offsets.append(at)
        at += p.numel()
    return offsets


def _partition_layout(
    flat: torch.Tensor,
    params: Sequence[torch.Tensor],
    offsets: Sequence[int],
    size: int,
    rank: int,
    group: Any,
    checks: list[tuple[torch.Tensor, int, torch.Tensor]],
) -> FlatLayout:
    """Rank `rank` holds elements [rank * size, (rank + 1) * size) of the group's buffer;
    `group`: the ranks holding the rest (None when none do)."""
    lo, hi = rank * size, (rank + 1) * size
    slices = []
    for j, (p, offset) in enumerate(zip(params, offsets, strict=True)):
        a, b = max(offset, lo), min(offset + p.numel(), hi)
        if a < b:
            slices.append((a - lo, b - a, j))
            checks.append((flat, a - lo, p.data.reshape(-1)[a - offset : b - offset]))
    return _layout(slices, len(params), group, flat, size)


def _layout(
    slices: list[tuple[int, int, int]], num_params: int, group: Any, flat: torch.Tensor, size: int
) -> FlatLayout:
    if flat.dim() != 1 or flat.numel() != size or any(s + n > size for s, n, _ in slices):
        raise ValueError(f"flat tensor of {flat.numel()} elements, layout of {size}")
    return FlatLayout(tuple(slices), num_params, group)


def _layout_error(wrapper: str, why: str) -> AlbertError:
    import deepspeed

    return AlbertError(
        f"train.optimizer=lamb: cannot map DeepSpeed {deepspeed.__version__}'s {wrapper} flat tensors to "
        f"parameters for per-layer trust ratios: {why}; use train.optimizer=adamw"
    )
