"""The small model config the model, cost and head tests build on (seconds on a CPU)."""

from albertctl.core.config import ModelConfig


def small_config(**overrides) -> ModelConfig:
    """V=100, E=16, H=32, L=3, 4 heads, FFN 64, 32 positions, plus `overrides`."""
    shape = dict(
        vocab_size=100,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return ModelConfig(**{**shape, **overrides})
