"""What a model costs, from its config alone: parameters, training FLOPs per token, memory.

Plain arithmetic, no torch: `albertctl profile show` and `pretrain --dry-run` answer in a
blink, and xxlarge costs nothing to count. The modules in `albert.py` are the truth these
formulas transcribe; tests/test_cost.py compares the counts with the modules built on torch's
meta device for every built-in profile and for odd shapes (E = H, partial sharing, groups).
"""

from __future__ import annotations

from typing import Any

from albertctl.core.config import ModelConfig, Profile


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out  # weight + bias


def _layer_norm(width: int) -> int:
    return 2 * width  # gain + bias


def attention_parameter_count(config: ModelConfig) -> int:
    """Q, K, V and output projections (H -> H each) and the post-attention LayerNorm."""
    h = config.hidden_size
    return 4 * _linear(h, h) + _layer_norm(h)


def ffn_parameter_count(config: ModelConfig) -> int:
    """H -> FFN width -> H and the LayerNorm after it."""
    h, f = config.hidden_size, config.intermediate_size
    return _linear(h, f) + _linear(f, h) + _layer_norm(h)


def encoder_parameter_count(config: ModelConfig) -> int:
    """Embeddings + encoder (with the E->H projection where the model has one: not when E = H,
    unless `embedding_projection` is "always") + pooler, no heads; the count of `AlbertModel`'s
    unique parameters (shared ones once)."""
    c = config
    e, h = c.embedding_size, c.hidden_size
    embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * e + _layer_norm(e)
    attention, ffn = attention_parameter_count(c), ffn_parameter_count(c)
    # A group holds `inner_group_num` layers; under partial sharing ("attention" / "ffn") a
    # grouped layer holds only the shared half and every applied layer owns the other half.
    shared = (attention if c.sharing != "ffn" else 0) + (ffn if c.sharing != "attention" else 0)
    own = {"attention": ffn, "ffn": attention}.get(c.sharing, 0)
    applied = c.num_hidden_layers * c.inner_group_num
    projection = _linear(e, h) if c.has_embedding_projection else 0
    encoder = projection + c.num_hidden_groups * c.inner_group_num * shared + applied * own
    return embeddings + encoder + _linear(h, h)  # + pooler


def pretraining_heads_parameter_count(config: ModelConfig) -> int:
    """The MLM head (H -> E dense, LayerNorm, output bias; the decoder is the tied word
    embedding matrix, counted once in the encoder) and the 2-way SOP classifier."""
    c = config
    mlm = _linear(c.hidden_size, c.embedding_size) + _layer_norm(c.embedding_size) + c.vocab_size
    return mlm + _linear(c.hidden_size, 2)


def pretraining_parameter_count(config: ModelConfig) -> int:
    """`AlbertForPreTraining`'s unique parameters: the encoder with the MLM and SOP heads."""
    return encoder_parameter_count(config) + pretraining_heads_parameter_count(config)


def training_flops_per_token(config: ModelConfig, seq_length: int, masked_fraction: float) -> float:
    """Matmul FLOPs per token of one pretraining step (forward + backward = 3x forward), as
    albertctl computes it.

    Counts every applied layer (sharing saves parameters, not compute), attention scores, the
    MLM head only at the masked share of tokens, and the last layer's sparse form: keys and
    values for every token, everything else only at [CLS] and the masked positions.
    """
    c = config
    h, e, t, f = c.hidden_size, c.embedding_size, seq_length, c.intermediate_size
    applied = c.num_hidden_layers * c.inner_group_num
    queries_side = 2 * (2 * h * h + 2 * h * f) + 2 * 2 * t * h  # Q, output, FFN; QK^T and AV
    per_layer = 2 * (2 * h * h) + queries_side  # + K and V projections
    kept = min(1.0, (1 + masked_fraction * t) / t)  # share of positions the last layer computes
    projection = 2 * e * h if c.has_embedding_projection else 0
    forward = projection + (applied - 1) * per_layer + 2 * (2 * h * h) + kept * queries_side
    forward += masked_fraction * 2 * (h * e + e * c.vocab_size)
    forward += 2 * (h * h + h * 2) / t  # pooler and SOP once per sequence
    return 3.0 * forward


def memory_estimate(
    config: ModelConfig,
    params: int,
    micro_batch: int,
    seq_length: int,
    world_size: int,
    precision: str,
    zero_stage: int,
    activation_checkpointing: bool,
) -> dict[str, float]:
    """Bytes per GPU: model states under ZeRO (Rajbhandari et al. 2020, K=12 for mixed
    precision Adam/LAMB; fp32 keeps 4+4+8) and activations (Korthikanti et al. 2022)."""
    half = precision in ("bf16", "fp16")
    p_bytes, g_bytes, o_bytes = (2, 2, 12) if half else (4, 4, 8)
    n = world_size
    shard = {0: (1, 1, 1), 1: (1, 1, n), 2: (1, n, n), 3: (n, n, n)}[zero_stage]
    states = params * (p_bytes / shard[0] + g_bytes / shard[1] + o_bytes / shard[2])
    act_bytes = 2 if half else 4
    h, t, b, a = config.hidden_size, seq_length, micro_batch, config.num_attention_heads
    applied = config.num_hidden_layers * config.inner_group_num
    # per layer, in units of 16-bit values: 34*b*t*h + 5*a*b*t^2 (with dropout masks)
    per_layer = (17 * b * t * h + 2.5 * a * b * t * t) * act_bytes
    if activation_checkpointing:
        activations = applied * b * t * h * act_bytes + per_layer
    else:
        activations = applied * per_layer
    activations += b * t * config.embedding_size * act_bytes * 4
    return {"model_states": states, "activations": activations, "total": states + activations}


def profile_summary(profile: Profile, world_size: int) -> dict[str, Any]:
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
    return {
        "profile": profile.to_dict(),
        "parameters": params,
        "parameters_with_pretraining_heads": with_heads,
        "training_flops_per_token": flops,
        "tokens_per_step": t.global_batch_size * d.max_seq_length,
        "world_size": world_size,
        "memory_per_gpu_bytes": memory,
    }
