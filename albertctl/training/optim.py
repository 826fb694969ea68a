"""Optimisers and the learning-rate schedule.

Both follow google-research/albert: LAMB (`lamb_optimizer.py`, You et al. 2020; ALBERT paper
Sec. 4.1) for pretraining, and `AdamWeightDecayOptimizer` (`optimization.py`) for fine-tuning.
They share the moments and the decoupled weight decay and differ only in the trust ratio:

    m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2        (no bias correction)
    u = m / (sqrt(v) + eps) + weight_decay * w                      (weight_decay 0: LayerNorm, biases)
    r = ||w|| / ||u||, 1 when either norm is 0                      (LAMB, decayed parameters only)
    w = w - lr * r * u                                              (r = 1 otherwise, and for Adam)

Settings keep other variants reachable: `train.lamb_bias_correction` (m / (1 - b1^t) and
v / (1 - b2^t), DeepSpeed FusedLamb's default), `train.lamb_exclude_from_adaptation: false` (a
ratio for every parameter), `train.lamb_clamp_trust_ratio` (FusedLamb's [0.01, 10]) and
`train.adamw_bias_correction` (`torch.optim.AdamW`). FusedLamb itself is not used: its bias
correction leaves eps uncorrected and it applies a ratio to every parameter of a group.

The trust ratio is per *parameter*. DeepSpeed's precision and ZeRO wrappers hand the optimiser
flat tensors instead (a whole parameter group, or one rank's slice of it), which would make it
one ratio per group or per partition. `flat_layouts` reads how the wrapper laid the parameters
out and `Lamb.set_layouts` takes that map: the norms are then summed per parameter over the
slices (and over the ranks holding the other slices), so every ZeRO stage and precision makes
the same update as plain per-parameter LAMB. The wrappers flatten each parameter group on its
own and keep the group's settings, so the decayed / not-decayed split (and with it which
parameters get a ratio) carries through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from albertctl.core.config import TrainConfig
from albertctl.core.errors import AlbertError
from albertctl.training import ds_compat

# DeepSpeed FusedLamb's default bounds on the trust ratio (`train.lamb_clamp_trust_ratio`).
FUSED_LAMB_CLAMP = (0.01, 10.0)
# Group settings that define the update rule: the run's configuration decides them, also when
# a checkpoint's optimiser state is loaded (it holds the moments, which every variant shares).
_RULE = ("bias_correction", "adapt", "clamp")


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
    """LAMB as google-research/albert's `LAMBOptimizer` (module doc).

    Per group: `adapt` (apply the trust ratio; `parameter_groups` turns it off for LayerNorm
    and biases), `bias_correction`, `clamp` ((min, max) bounds on the ratio, or None).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        bias_correction: bool = False,
        adapt: bool = True,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            adapt=adapt,
            clamp=clamp,
        )
        super().__init__(params, defaults)
        self.layouts: dict[int, FlatLayout] = {}

    @property
    def adapts(self) -> bool:
        """Whether any group takes a trust ratio (and so needs `set_layouts` on flat tensors)."""
        return any(group["adapt"] for group in self.param_groups)

    def set_layouts(self, layouts: dict[int, FlatLayout]) -> None:
        """Flat tensors (by `id`) whose trust ratios are per parameter slice (see module doc)."""
        self.layouts = dict(layouts)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        rules = [{k: group[k] for k in _RULE} for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, rule in zip(self.param_groups, rules, strict=True):
            group.update(rule)

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
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if group["bias_correction"]:
                    t = state["step"].item()
                    m, v = m / (1 - beta1**t), v / (1 - beta2**t)
                weight = p.to(dtype)  # p itself in fp32
                # The original's arithmetic, op for op, into one scratch tensor:
                # update = m / (sqrt(v) + eps) + wd * w;  w <- w - lr * ratio * update
                update = v.sqrt().add_(group["eps"])
                torch.div(m, update, out=update)
                if group["weight_decay"]:
                    update.add_(group["weight_decay"] * weight)
                layout = self.layouts.get(id(p))
                if layout is None:
                    ratio = (
                        trust_ratio(weight.norm(), update.norm(), group["clamp"]) if group["adapt"] else 1.0
                    )
                    _apply(p, weight, update.mul_(group["lr"] * ratio))
                    continue
                ratios = (
                    trust_ratio(*_slice_norms(weight, update, layout), group["clamp"])
                    if group["adapt"]
                    else None
                )
                for start, length, index in layout.slices:  # padding stays as it is
                    ratio = 1.0 if ratios is None else ratios[index]
                    _apply(
                        p.narrow(0, start, length),
                        weight.narrow(0, start, length),
                        update.narrow(0, start, length).mul_(group["lr"] * ratio),
                    )
        return loss


def _apply(p: torch.Tensor, weight: torch.Tensor, step: torch.Tensor) -> None:
    """p <- weight - step, where `weight` is p (fp32) or p's fp32 copy (bf16/fp16 parameters)."""
    if weight is p:
        p.sub_(step)
    else:
        p.copy_(weight - step)


class AdamWeightDecay(Lamb):
    """google-research/albert's `AdamWeightDecayOptimizer`: LAMB's update with no trust ratio,
    i.e. Adam without bias correction and with decoupled weight decay (module doc)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        for group in self.param_groups:
            group["adapt"] = False


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
    w_norm: torch.Tensor, u_norm: torch.Tensor, clamp: Sequence[float] | None = None
) -> torch.Tensor:
    """||w|| / ||u||, 1 when either norm is zero; bounded to `clamp` (min, max) when given."""
    ratio = w_norm / u_norm
    if clamp is not None:
        ratio = ratio.clamp(clamp[0], clamp[1])
    return torch.where((w_norm > 0) & (u_norm > 0), ratio, torch.ones_like(ratio))


def no_decay(name: str, param: nn.Parameter, module: nn.Module) -> bool:
    """LayerNorm parameters and biases (any 1-D parameter) are not decayed."""
    return isinstance(module, nn.LayerNorm) or name.endswith("bias") or param.ndim < 2


def parameter_groups(
    model: nn.Module, weight_decay: float, exclude_from_adaptation: bool = True
) -> list[dict[str, Any]]:
    """Two groups: decayed weights, and LayerNorm + biases without decay. Shared parameters once.

    `adapt` (LAMB's trust ratio) is on for the decayed group and, as the original excludes the
    same names from both, off for the other unless `exclude_from_adaptation` is False. It
    follows the names, not the rate: with `weight_decay` 0 the weights still get a ratio.
    """
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
    groups = [
        {"params": decay, "weight_decay": weight_decay, "adapt": True},
        {"params": skip, "weight_decay": 0.0, "adapt": not exclude_from_adaptation},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """LAMB or AdamW over `parameter_groups`, by default as the original (module doc).

    Under ZeRO or bf16/fp16 DeepSpeed hands the optimiser flat tensors: when `Lamb.adapts`,
    call `Lamb.set_layouts` with `flat_layouts` of the wrapper. The learning rate is set every
    step by the loop from `learning_rate_at`."""
    groups = parameter_groups(model, train.weight_decay, train.lamb_exclude_from_adaptation)
    common = dict(lr=train.learning_rate, betas=(train.beta1, train.beta2), eps=train.epsilon)
    if train.optimizer == "lamb":
        clamp = FUSED_LAMB_CLAMP if train.lamb_clamp_trust_ratio else None
        return Lamb(groups, bias_correction=train.lamb_bias_correction, clamp=clamp, **common)
    for group in groups:
        del group["adapt"]
    if train.adamw_bias_correction:
        return torch.optim.AdamW(groups, **common)
    return AdamWeightDecay(groups, **common)


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
        for g in ds_compat.master_groups(ds_optimizer) or []:
            if g.kind == "zero3":
                r = rank(g.process_group)
                slices, offset = [], 0
                for j, param in enumerate(g.params):
                    piece, numel, local = ds_compat.zero3_piece(param)
                    valid = max(0, min(piece, numel - r * piece))
                    if valid:
                        slices.append((offset, valid, j))
                        checks.append((g.flat, offset, local[:valid]))
                    offset += piece
                layouts[id(g.flat)] = _layout(slices, len(g.params), shared(g.process_group), g.flat, offset)
                continue
            offsets = g.offsets if g.offsets is not None else _packed_offsets(g.params)
            r, group = (
                (0, None) if g.process_group is None else (rank(g.process_group), shared(g.process_group))
            )
            layouts[id(g.flat)] = _partition_layout(
                g.flat, g.params, offsets, g.partition_size, r, group, checks
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
