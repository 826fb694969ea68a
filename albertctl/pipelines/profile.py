"""`albertctl profile show`: the resolved profile and what it costs to train.

Pure arithmetic from the config (model/cost.py), no torch: it answers instantly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from albertctl.core.config import Profile, builtin_profiles, load_profile
from albertctl.core.results import Result
from albertctl.model.cost import (
    encoder_parameter_count,
    memory_estimate,
    pretraining_parameter_count,
    training_flops_per_token,
)


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
    m, d, t = profile.model, profile.data, profile.train
    params = encoder_parameter_count(m)
    with_heads = pretraining_parameter_count(m)
    masked_fraction = (
        min(d.max_predictions_per_seq, round(d.max_seq_length * d.masked_lm_prob)) / d.max_seq_length
    )
    flops = training_flops_per_token(m, d.max_seq_length, masked_fraction)
    memory = {
        f"zero{stage}": memory_estimate(
            m,
            with_heads,
            t.micro_batch_size,
            d.max_seq_length,
            world_size,
            t.precision,
            stage,
            t.activation_checkpointing,
        )
        for stage in range(4)
    }
    return ProfileSummary(
        profile=profile.to_dict(),
        parameters=params,
        parameters_with_pretraining_heads=with_heads,
        training_flops_per_token=flops,
        tokens_per_step=t.global_batch_size * d.max_seq_length,
        world_size=world_size,
        memory_per_gpu_bytes=memory,
    )


def builtin() -> list[dict[str, str]]:
    """`albertctl profile list`: each built-in profile's name and description."""
    return [{"name": name, "description": load_profile(name).description} for name in builtin_profiles()]
