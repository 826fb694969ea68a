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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from albertctl.core.config import TrainConfig


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
                w_norm, u_norm = weight.norm(), update.norm()
                ratio = trust_ratio(w_norm, u_norm, group["min_coeff"], group["max_coeff"])
                p.copy_(weight - group["lr"] * ratio * update)
        return loss


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


def build_optimizer(model: nn.Module, train: TrainConfig, on_gpu: bool) -> torch.optim.Optimizer:
    """LAMB or AdamW over `parameter_groups`; FusedLamb on a GPU, our `Lamb` elsewhere.
    The learning rate is set every step by the loop from `learning_rate_at`."""
    groups = parameter_groups(model, train.weight_decay)
    betas = (train.beta1, train.beta2)
    if train.optimizer == "lamb":
        if on_gpu:
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
