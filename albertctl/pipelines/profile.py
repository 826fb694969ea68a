"""`albertctl profile show`: the resolved profile and what it costs to train."""

from __future__ import annotations

from typing import Any

from albertctl.core.config import Profile
from albertctl.model.albert import encoder_parameter_count, memory_estimate, training_flops_per_token


def summary(profile: Profile, world_size: int) -> dict[str, Any]:
    """Parameter count, training FLOPs per token, and memory per GPU for ZeRO stages 0-3."""
    m, d, t = profile.model, profile.data, profile.train
    params = encoder_parameter_count(m)
    with_heads = params + m.hidden_size * m.embedding_size + 3 * m.embedding_size + m.vocab_size
    with_heads += m.hidden_size * 2 + 2  # MLM transform + LayerNorm + bias, SOP classifier
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
    return {
        "profile": profile.to_dict(),
        "parameters": params,
        "parameters_with_pretraining_heads": with_heads,
        "training_flops_per_token": flops,
        "tokens_per_step": t.global_batch_size * d.max_seq_length,
        "world_size": world_size,
        "memory_per_gpu_bytes": memory,
    }
