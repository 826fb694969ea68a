from pathlib import Path

import pytest
import yaml

from albertctl.core.config import Profile, builtin_profiles, load_profile, profile_from_dict
from albertctl.core.errors import AlbertError


def test_builtin_profiles_all_load():
    names = builtin_profiles()
    assert set(names) >= {"tiny", "base", "large", "xlarge", "xxlarge", "bert-base", "bert-large"}
    for name in names:
        assert load_profile(name).name == name


def test_extends_merges_sections():
    large = load_profile("large")
    assert large.model.hidden_size == 1024 and large.model.embedding_size == 128  # inherited
    assert large.train.optimizer == "lamb" and large.train.micro_batch_size == 16


def test_user_file_extends_builtin_and_relative(tmp_path: Path):
    (tmp_path / "mine.yaml").write_text("extends: tiny\ntrain:\n  learning_rate: 0.01\n")
    (tmp_path / "child.yaml").write_text("extends: ./mine.yaml\nmodel:\n  num_hidden_layers: 2\n")
    p = load_profile(tmp_path / "child.yaml")
    assert p.name == "child"
    assert p.train.learning_rate == 0.01 and p.model.num_hidden_layers == 2 and p.model.hidden_size == 128


def test_overrides_parse_yaml_scalars():
    p = load_profile("tiny", ["train.learning_rate=1e-4", "model.sharing=ffn", "train.compile=true"])
    assert p.train.learning_rate == pytest.approx(1e-4)
    assert p.model.sharing == "ffn" and p.train.compile is True


def test_yaml_round_trip_is_identity():
    for name in builtin_profiles():
        p = load_profile(name)
        again = profile_from_dict(yaml.safe_load(p.to_yaml()), source="x")
        assert again == p
        assert again.to_yaml() == p.to_yaml()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  hiden_size: 64\n", "unknown key model.hiden_size (did you mean hidden_size?)"),
        ("modle:\n  hidden_size: 64\n", "unknown key modle (did you mean model?)"),
        ("model:\n  hidden_size: '64'\n", "model.hidden_size must be an integer, got '64'"),
        ("train:\n  learning_rate: fast\n", "train.learning_rate must be a number, got 'fast'"),
        (
            "model:\n  hidden_size: 100\n  num_attention_heads: 12\n",
            "model.hidden_size (100) must be divisible by model.num_attention_heads (12)",
        ),
        (
            "model:\n  embedding_size: 1024\n",
            "model.embedding_size (1024) must not exceed model.hidden_size (768): factorisation needs E <= H",
        ),
        (
            "model:\n  sharing: some\n",
            "model.sharing must be one of 'all', 'attention', 'ffn', 'none', got 'some'",
        ),
        ("train:\n  micro_batch_size: 0\n", "train.micro_batch_size must be at least 1, got 0"),
        ("train:\n  micro_batch_size: -4\n", "train.micro_batch_size must be at least 1, got -4"),
        ("deepspeed:\n  zero_stage: 4\n", "deepspeed.zero_stage must be 0, 1, 2 or 3, got 4"),
        ("- a\n- b\n", "expected a mapping of sections at the top level, got list"),
        ("model: [1, 2\n", "malformed YAML"),
    ],
)
def test_bad_profiles_give_one_line_errors(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text("extends: base\n" + text if not text.startswith("-") else text)
    with pytest.raises(AlbertError) as err:
        load_profile(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_builtin_suggests():
    with pytest.raises(AlbertError, match=r"profile 'tinny' not found \(did you mean 'tiny'\?\)"):
        load_profile("tinny")


def test_bad_override_names_flag():
    with pytest.raises(
        AlbertError, match=r"--set: unknown key train.learnin_rate \(did you mean learning_rate\?\)"
    ):
        load_profile("tiny", ["train.learnin_rate=1"])
    with pytest.raises(AlbertError, match="expected section.key=value"):
        load_profile("tiny", ["train.learning_rate"])


def test_extends_cycle_detected(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("extends: ./b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: ./a.yaml\n")
    with pytest.raises(AlbertError, match="cycle"):
        load_profile(tmp_path / "a.yaml")


def test_group_of_is_the_original_rule():
    m = load_profile("base", ["model.num_hidden_groups=3"]).model
    assert [m.group_of(i) for i in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
    # modeling.transformer_model: int(layer_idx / num_hidden_layers * num_hidden_groups), floats
    m = load_profile("base", ["model.num_hidden_layers=22", "model.num_hidden_groups=22"]).model
    assert [m.group_of(i) for i in range(22)] == [*range(15), 14, *range(16, 22)]
    m = load_profile(
        "base", ["model.num_hidden_layers=22", "model.num_hidden_groups=22", "model.sharing=none"]
    ).model
    assert [m.group_of(i) for i in range(22)] == list(range(22))


def test_profile_defaults_are_valid():
    assert Profile().model.hidden_size == 768


def test_overrides_parse_once_and_records_pass_through():
    from albertctl.core.config import Override, parse_overrides

    parsed = parse_overrides(["train.learning_rate=1e-4", "deepspeed.extra={a: [1]}"])
    assert parsed == (
        Override(("train", "learning_rate"), "1e-4", "train.learning_rate=1e-4"),  # YAML 1.1: coerced later
        Override(("deepspeed", "extra"), {"a": [1]}, "deepspeed.extra={a: [1]}"),
    )
    assert parse_overrides(parsed) == parsed and parse_overrides(None) == ()
    assert load_profile("tiny", parsed) == load_profile(
        "tiny", ["train.learning_rate=1e-4", "deepspeed.extra={a: [1]}"]
    )


def test_load_section_applies_its_own_overrides_only():
    from albertctl.core.config import DataConfig, load_section

    data = load_section(
        DataConfig, "data", {"ngram": 2}, ["data.max_seq_length=64", "train.seed=1"], "f.yaml"
    )
    assert (data.ngram, data.max_seq_length) == (2, 64)
    with pytest.raises(
        AlbertError, match=r"^--set 'data.ngrm=1': unknown key data.ngrm \(did you mean ngram\?\)$"
    ):
        load_section(DataConfig, "data", {}, ["data.ngrm=1"], "f.yaml")
    with pytest.raises(AlbertError, match=r"^f.yaml with --set: data.ngram must be an integer, got 'x'$"):
        load_section(DataConfig, "data", {}, ["data.ngram=x"], "f.yaml")
