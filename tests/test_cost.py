"""model/cost.py's arithmetic against the modules themselves, built on torch's meta device."""

import dataclasses

import pytest
import torch

from albertctl.core.config import ModelConfig, builtin_profiles, load_profile
from albertctl.model.albert import AlbertForPreTraining, AlbertModel, count_parameters
from albertctl.model.cost import encoder_parameter_count, pretraining_parameter_count
from albertctl.pipelines import profile as profile_pipeline


def _meta_counts(config: ModelConfig) -> tuple[int, int]:
    """The oracle: unique parameters of the real modules, allocated nowhere."""
    with torch.device("meta"):
        return count_parameters(AlbertModel(config)), count_parameters(AlbertForPreTraining(config))


SMALL = ModelConfig(
    vocab_size=97,
    embedding_size=8,
    hidden_size=16,
    num_hidden_layers=6,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=40,
    type_vocab_size=3,
)
ODD = {
    "E=H": dataclasses.replace(SMALL, embedding_size=16),
    "unshared layers": dataclasses.replace(SMALL, sharing="none", num_hidden_groups=6),
    "3 groups": dataclasses.replace(SMALL, num_hidden_groups=3),
    "4 uneven groups": dataclasses.replace(SMALL, num_hidden_groups=4),
    "inner groups": dataclasses.replace(SMALL, num_hidden_groups=2, inner_group_num=3),
    "shared attention, groups": dataclasses.replace(SMALL, sharing="attention", num_hidden_groups=2),
    "shared ffn, inner groups": dataclasses.replace(SMALL, sharing="ffn", inner_group_num=2),
    "shared attention, E=H, inner": dataclasses.replace(
        SMALL, sharing="attention", embedding_size=16, num_hidden_groups=3, inner_group_num=2
    ),
}


@pytest.mark.parametrize("name", builtin_profiles())
def test_builtin_profiles_match_meta_device(name):
    config = load_profile(name).model
    assert (encoder_parameter_count(config), pretraining_parameter_count(config)) == _meta_counts(config)


@pytest.mark.parametrize("name", ODD)
def test_odd_shapes_match_meta_device(name):
    config = ODD[name]
    assert (encoder_parameter_count(config), pretraining_parameter_count(config)) == _meta_counts(config)


def test_profile_show_counts_are_the_meta_counts():
    result = profile_pipeline.summary(load_profile("base"), world_size=8)
    encoder, with_heads = _meta_counts(load_profile("base").model)
    assert (result["parameters"], result["parameters_with_pretraining_heads"]) == (encoder, with_heads)
    assert encoder == 11_683_584  # SPEC.md
