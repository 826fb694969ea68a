"""`albertctl profile show`: the resolved profile and what it costs to train.

Pure arithmetic from the config (model/cost.py, shared with `pretrain --dry-run`), no torch: it
answers instantly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from albertctl.core.config import Profile, builtin_profiles, load_profile
from albertctl.core.results import Result
from albertctl.model.cost import profile_summary


@dataclass(frozen=True)
class ProfileSummary(Result):
    profile: dict[str, Any]  # the resolved profile, section by section
    parameters: int  # embeddings + encoder + pooler
    parameters_with_pretraining_heads: int
    training_flops_per_token: float
    tokens_per_step: int
    world_size: int
    memory_per_gpu_bytes: dict[str, dict[str, int]]  # zero0..zero3 -> model_states, activations, total


def summary(profile: Profile, world_size: int) -> ProfileSummary:
    """Parameter count, training FLOPs per token, and memory per GPU for ZeRO stages 0-3."""
    return ProfileSummary(**profile_summary(profile, world_size))


def builtin() -> list[dict[str, str]]:
    """`albertctl profile list`: each built-in profile's name and description."""
    return [{"name": name, "description": load_profile(name).description} for name in builtin_profiles()]
