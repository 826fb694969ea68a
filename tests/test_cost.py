"""model/cost.py's arithmetic against the modules themselves, built on torch's meta device."""

import dataclasses

import pytest
import torch
from model_fixtures import small_config

from albertctl.core.config import ModelConfig, builtin_profiles, load_profile
from albertctl.model.albert import AlbertForPreTraining, AlbertModel, count_parameters
from albertctl.model.cost import encoder_parameter_count, pretraining_parameter_count
from albertctl.pipelines import profile as profile_pipeline


def _meta_counts(config: ModelConfig) -> tuple[int, int]:
    """The oracle: unique parameters of the real modules, allocated nowhere."""
    with torch.device("meta"):
        return count_parameters(AlbertModel(config)), count_parameters(AlbertForPreTraining(config))


# an odd vocabulary, 3 token types and 6 layers (so some group counts divide L and some do not)
SMALL = small_config(vocab_size=97, num_hidden_layers=6, type_vocab_size=3)
E_IS_H = SMALL.hidden_size
ODD = {
    "E=H": dataclasses.replace(SMALL, embedding_size=E_IS_H),
    "unshared layers": dataclasses.replace(SMALL, sharing="none", num_hidden_groups=6),
    "3 groups": dataclasses.replace(SMALL, num_hidden_groups=3),
    "4 uneven groups": dataclasses.replace(SMALL, num_hidden_groups=4),
    "inner groups": dataclasses.replace(SMALL, num_hidden_groups=2, inner_group_num=3),
    "shared attention, groups": dataclasses.replace(SMALL, sharing="attention", num_hidden_groups=2),
    "shared ffn, inner groups": dataclasses.replace(SMALL, sharing="ffn", inner_group_num=2),
    "shared attention, E=H, inner": dataclasses.replace(
        SMALL, sharing="attention", embedding_size=E_IS_H, num_hidden_groups=3, inner_group_num=2
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
