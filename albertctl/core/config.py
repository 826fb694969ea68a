"""Profiles: typed, validated configuration read from YAML.

A profile is one YAML file with four sections (`model`, `data`, `train`, `deepspeed`). A file
may `extends:` another profile by name or path; its sections are merged key by key over the
parent's. Any value can be overridden on the command line with `--set section.key=value`.
Everything is checked once, here: unknown keys name the file and suggest the nearest valid
key, wrong types and impossible shapes give one-line errors.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from albertctl.core.errors import AlbertError
from albertctl.core.safeload import dump_yaml, parse_yaml, parse_yaml_value, quote, shorten

SharingKind = Literal["all", "attention", "ffn", "none"]

# Every integer setting lies within a signed 32-bit range: past it no count, size or seed is
# meaningful, and torch/numpy would fail with a traceback rather than this one line.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape. Names follow the original `AlbertConfig`."""

    vocab_size: int = 30000  # V
    embedding_size: int = 128  # E: factorised embedding width (paper Sec. 3.1)
    hidden_size: int = 768  # H
    num_hidden_layers: int = 12  # L
    num_attention_heads: int = 12  # A
    intermediate_size: int = 3072  # FFN width
    num_hidden_groups: int = 1  # distinct parameter sets; layer i uses group int(i / L * groups)
    inner_group_num: int = 1  # layers inside one group, applied in turn at each layer
    # Which sub-layers are shared across the layers of a group (paper Sec. 4.5, Table 4):
    # all (ALBERT's default), attention only, ffn only, or none (every layer its own, as BERT).
    sharing: SharingKind = "all"
    # The E -> H dense layer (`embedding_hidden_mapping_in`): "auto" has it only when E != H, as the
    # original; "always" keeps it when E = H too, as transformers' AlbertModel (its imports).
    embedding_projection: Literal["auto", "always"] = "auto"
    hidden_act: Literal["gelu_new", "gelu", "relu"] = "gelu_new"  # tanh GELU: what released weights expect
    hidden_dropout_prob: float = 0.0  # v2 models train with zero dropout
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02  # std of the truncated normal init
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "embedding_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "num_hidden_groups",
            "inner_group_num",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            if getattr(self, name) <= 0:
                raise AlbertError(f"model.{name} must be a positive integer, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise AlbertError(
                f"model.hidden_size ({self.hidden_size}) must be divisible by "
                f"model.num_attention_heads ({self.num_attention_heads})"
            )
        if self.embedding_size > self.hidden_size:
            raise AlbertError(
                f"model.embedding_size ({self.embedding_size}) must not exceed "
                f"model.hidden_size ({self.hidden_size}): factorisation needs E <= H"
            )
        if self.num_hidden_groups > self.num_hidden_layers:
            raise AlbertError(
                f"model.num_hidden_groups ({self.num_hidden_groups}) must not exceed "
                f"model.num_hidden_layers ({self.num_hidden_layers})"
            )
        if self.sharing == "none" and (
            self.num_hidden_groups != self.num_hidden_layers or self.inner_group_num != 1
        ):
            raise AlbertError(
                f"model.sharing=none needs model.num_hidden_groups = model.num_hidden_layers "
                f"({self.num_hidden_layers}) and model.inner_group_num = 1"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise AlbertError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.initializer_range <= 0 or self.layer_norm_eps <= 0:
            raise AlbertError("model.initializer_range and model.layer_norm_eps must be positive")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def has_embedding_projection(self) -> bool:
        return self.embedding_projection == "always" or self.embedding_size != self.hidden_size

    def group_of(self, layer: int) -> int:
        """The parameter group layer `layer` uses: the original's `int(i / L * G)` in floating
        point (modeling.transformer_model), which for some (L, G), e.g. L=18, G=14 or
        L=G=22, differs from both the exact `i * G // L` and transformers' `int(i / (L / G))`.
        sharing "none" gives every layer its own group (G = L)."""
        if self.sharing == "none":
            return layer
        return int(layer / self.num_hidden_layers * self.num_hidden_groups)


@dataclass(frozen=True)
class DataConfig:
    """Pretraining data recipe (SPEC section 3)."""

    max_seq_length: int = 512
    short_seq_prob: float = 0.1  # chance of a shorter random target length
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20  # most masked tokens per sequence, whatever its length
    ngram: int = 3  # longest masked n-gram, in whole words
    random_next_sentence: bool = False  # False: SOP (ALBERT); True: BERT's NSP
    masking: Literal["dynamic", "static"] = "dynamic"  # mask at load time, or dupe_factor stored copies
    dupe_factor: int = 40  # static masking only
    # dynamic masking: chunkings stored per training document, each with its own target
    # lengths; the A/B split, sentence-order swap and masks are drawn afresh every time a
    # chunk is loaded whatever this is, so 1 already gives new pairs every epoch
    pair_copies: int = 1
    do_lower_case: bool = True
    held_out_fraction: float = 0.01  # share of documents kept for evaluation

    def __post_init__(self) -> None:
        if not 8 <= self.max_seq_length <= 8192:
            raise AlbertError(f"data.max_seq_length must be in [8, 8192], got {self.max_seq_length}")
        for name in ("short_seq_prob", "masked_lm_prob", "held_out_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise AlbertError(f"data.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("max_predictions_per_seq", "ngram", "dupe_factor", "pair_copies"):
            if getattr(self, name) < 1:
                raise AlbertError(f"data.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation (SPEC section 4). Batch sizes count sequences."""

    optimizer: Literal["lamb", "adamw"] = "lamb"
    learning_rate: float = 0.00176
    warmup_steps: int = 3125
    train_steps: int = 125000
    poly_power: float = 1.0  # 1.0 = linear decay to zero after warmup
    global_batch_size: int = 4096  # = micro_batch_size x accumulation x world size
    micro_batch_size: int = 32
    weight_decay: float = 0.01  # not applied to LayerNorm and biases
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-6
    # The update rule (training/optim.py). Defaults are google-research/albert's: LAMB's m and v
    # without bias correction, no trust ratio for LayerNorm and biases, no bound on the ratio;
    # AdamW as its AdamWeightDecayOptimizer (no bias correction). Each True/False flip below
    # gives the other behaviour (DeepSpeed FusedLamb's, torch.optim.AdamW's).
    lamb_bias_correction: bool = False  # True: m / (1 - beta1^t), v / (1 - beta2^t)
    lamb_exclude_from_adaptation: bool = True  # False: a trust ratio for LayerNorm and biases too
    lamb_clamp_trust_ratio: bool = False  # True: trust ratio bounded to [0.01, 10]
    adamw_bias_correction: bool = False  # True: torch.optim.AdamW (bias-corrected)
    max_grad_norm: float = 1.0  # 0 disables clipping
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    seed: int = 12345
    save_every: int = 5000
    keep_last: int = 3
    log_every: int = 50
    eval_every: int = 0  # 0: only at the end
    activation_checkpointing: bool = False
    # Linear layers, LayerNorm and the FFN on the real tokens only, not the padding (attention
    # keeps the padded layout): the same losses up to float rounding, less work when batches
    # are padded (README, Performance).
    unpad: bool = True
    compile: bool = False  # torch.compile the model

    def __post_init__(self) -> None:
        for name in (
            "train_steps",
            "global_batch_size",
            "micro_batch_size",
            "keep_last",
            "log_every",
            "save_every",
        ):
            if getattr(self, name) < 1:
                raise AlbertError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise AlbertError(f"train.{name} must not be negative, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise AlbertError(f"train.learning_rate must be positive, got {self.learning_rate}")
        if self.global_batch_size % self.micro_batch_size:
            raise AlbertError(
                f"train.global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"train.micro_batch_size ({self.micro_batch_size})"
            )
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise AlbertError("train.beta1 and train.beta2 must be in [0, 1)")
        if self.weight_decay < 0 or self.epsilon <= 0 or self.max_grad_norm < 0:
            raise AlbertError("train.weight_decay and train.max_grad_norm must be >= 0, train.epsilon > 0")


@dataclass(frozen=True)
class DeepSpeedConfig:
    """ZeRO settings handed to DeepSpeed; `extra` is merged into its JSON config as-is."""

    zero_stage: int = 0
    offload_optimizer: Literal["none", "cpu"] = "none"
    offload_param: Literal["none", "cpu"] = "none"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise AlbertError(f"deepspeed.zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.offload_param != "none" and self.zero_stage != 3:
            raise AlbertError("deepspeed.offload_param needs deepspeed.zero_stage 3")
        for key in BATCH_KEYS:
            if key in self.extra:
                raise AlbertError(
                    f"deepspeed.extra.{key}: batch sizes come from train.global_batch_size and "
                    "train.micro_batch_size; set those instead"
                )
        _check_plain(self.extra, "deepspeed.extra")


# DeepSpeed's batch settings: albertctl derives all three from the train section.
BATCH_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")


def _check_plain(value: Any, key: str) -> None:
    """`deepspeed.extra` becomes DeepSpeed's JSON config: strings, booleans, null, finite
    numbers (integers within ±2^53), and lists and mappings of those."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{key}.{shorten(str(k))}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{key}[{i}]")
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if abs(value) > 2**53:
            raise AlbertError(f"{key} must be an integer within ±2^53, got {quote(value)}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise AlbertError(f"{key} must be a finite number, got {quote(value)}")
    else:
        raise AlbertError(f"{key} must be a JSON value, got {type(value).__name__}")


@dataclass(frozen=True)
class Profile:
    name: str = "custom"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)

    def __post_init__(self) -> None:
        if self.data.max_seq_length > self.model.max_position_embeddings:
            raise AlbertError(
                f"data.max_seq_length ({self.data.max_seq_length}) exceeds "
                f"model.max_position_embeddings ({self.model.max_position_embeddings})"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def replace(self, **sections: Any) -> Profile:
        """A copy with some sections' fields changed: replace(train={"seed": 1})."""
        merged = _deep_merge(self.to_dict(), sections)
        return profile_from_dict(merged, source="profile")


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "deepspeed": DeepSpeedConfig,
}


def profiles_dir() -> Path:
    """Where the built-in profiles live: the source tree, or inside the installed wheel."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here.parent / "profiles", here / "_profiles"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("albertctl's built-in profiles directory is missing from the installation")


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def resolve_profile_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise AlbertError(
                f"profile file {path} not found" if not path.exists() else f"{path}: not a file"
            )
        return path
    path = profiles_dir() / f"{text}.yaml"
    if not path.is_file():
        have = builtin_profiles()
        close = difflib.get_close_matches(text, have, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise AlbertError(f"profile '{text}' not found{hint} (have: {', '.join(have)}, or a YAML path)")
    return path


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping (safe types only, no anchors or aliases)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AlbertError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except IsADirectoryError:
        raise AlbertError(f"{path}: is a directory, expected a YAML file") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AlbertError(
            f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}"
        )
    return data


def _load_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise AlbertError(f"{path}: 'extends' forms a cycle ({chain})")
    data = read_yaml_mapping(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise AlbertError(f"{path}: 'extends' must be a profile name or path, got {quote(parent)}")
    parent_path = Path(parent)
    if not parent_path.is_absolute() and ("/" in parent or parent.endswith((".yaml", ".yml"))):
        parent_path = path.parent / parent  # relative to the extending file
        base = _load_raw(resolve_profile_path(parent_path), (*seen, resolved))
    else:
        base = _load_raw(resolve_profile_path(parent), (*seen, resolved))
    base.pop("name", None)
    base.pop("description", None)
    return _deep_merge(base, data)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "extra":
            out[key] = _deep_merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Override:
    """One `--set section.key=value`, parsed: `keys` is the dotted path, `value` a YAML scalar
    (or flow collection), `text` what was typed, for messages."""

    keys: tuple[str, ...]
    value: Any
    text: str

    @property
    def section(self) -> str:
        return self.keys[0]


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.learning_rate=1e-4` -> (["train", "learning_rate"], 0.0001). Values are YAML scalars."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise AlbertError(f"--set {quote(text)}: expected section.key=value, e.g. train.learning_rate=1e-4")
    value = parse_yaml_value(raw, f"--set {quote(text)}") if raw.strip() else ""
    return key.strip().split("."), value


Overrides = Sequence[str | Override]


def parse_overrides(overrides: Overrides | None) -> tuple[Override, ...]:
    """`--set` texts -> Override records, parsed once at the edge (the CLI); records pass through
    unchanged, so library callers may hand over either."""
    parsed = []
    for item in overrides or ():
        if isinstance(item, Override):
            parsed.append(item)
        else:
            keys, value = parse_override(item)
            parsed.append(Override(tuple(keys), value, item))
    return tuple(parsed)


def apply_overrides(data: dict[str, Any], overrides: Overrides) -> dict[str, Any]:
    out = _deep_merge({}, data)
    for o in parse_overrides(overrides):
        node = out
        for k in o.keys[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise AlbertError(f"--set {quote(o.text)}: {shorten(str(k))} is not a section")
            node = nxt
        node[o.keys[-1]] = copy.deepcopy(o.value)  # a record may be applied to several profiles
    return out


def load_profile(name_or_path: str | Path, overrides: Overrides | None = None) -> Profile:
    """Read a built-in profile or a YAML file, apply `--set` overrides, validate."""
    path = resolve_profile_path(name_or_path)
    data = _load_raw(path)
    data.setdefault("name", path.stem)
    overrides = parse_overrides(overrides)
    if overrides:
        _check_keys(apply_overrides({}, overrides), source="--set")
        data = apply_overrides(data, overrides)
    return profile_from_dict(data, source=f"{path} with --set" if overrides else str(path))


def with_overrides(profile: Profile, overrides: Overrides) -> Profile:
    """`profile` (e.g. a model directory's) with `--set section.key=value` overrides applied."""
    if not overrides:
        return profile
    return profile_from_dict(apply_overrides(profile.to_dict(), overrides), source="--set")


def profile_from_dict(data: dict[str, Any], source: str) -> Profile:
    """Build and validate a Profile; every message is prefixed with `source`."""
    _check_keys(data, source)
    try:
        sections = {
            name: build_section(cls, data.get(name) or {}, f"{name}", source)
            for name, cls in SECTIONS.items()
        }
        name = data.get("name", "custom")
        description = data.get("description", "") or ""
        if not isinstance(name, str) or not isinstance(description, str):
            raise AlbertError("name and description must be strings")
        return Profile(name=name, description=description, **sections)
    except AlbertError as err:
        msg = str(err)
        raise AlbertError(msg if msg.startswith(f"{source}:") else f"{source}: {msg}") from None


def profile_from_yaml_file(path: Path) -> Profile:
    """A resolved profile as saved beside a model (no `extends`, no overrides)."""
    return profile_from_dict(read_yaml_mapping(path), source=str(path))


def suggest(key: str, valid: list[str]) -> str:
    """` (did you mean X?)` for a misspelt key, else ` (valid: ...)`."""
    close = difflib.get_close_matches(key[:100], valid, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else f" (valid: {', '.join(valid)})"


def _check_keys(data: dict[str, Any], source: str) -> None:
    top = ["name", "description", "extends", *SECTIONS]
    for key, value in data.items():
        if key not in top:
            raise AlbertError(f"{source}: unknown key {shorten(str(key))}{suggest(str(key), top)}")
        if key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise AlbertError(f"{source}: {key} must be a mapping of settings, got {quote(value)}")
            valid = [f.name for f in fields(SECTIONS[key])]
            for sub in value:
                if sub not in valid:
                    raise AlbertError(
                        f"{source}: unknown key {key}.{shorten(str(sub))}{suggest(str(sub)[:100], valid)}"
                    )


def build_section(cls: type, values: dict[str, Any], prefix: str, source: str) -> Any:
    """`cls(**values)` with every value type-checked; messages name `prefix.key`."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name in values:
            kwargs[f.name] = _coerce(values[f.name], hints[f.name], f"{prefix}.{f.name}", source)
    return cls(**kwargs)


def load_section(
    cls: type, name: str, values: dict[str, Any], overrides: Overrides = (), source: str = "--set"
) -> Any:
    """One config section (e.g. `task`) from a file's `values` with `--set name.key=value` on
    top; overrides of other sections are left to their own loaders. Unknown keys suggest the
    nearest valid one; every message is prefixed with `source` (plus " with --set" if any applied)."""
    valid = [f.name for f in fields(cls)]
    for key in values:
        if key not in valid:
            raise AlbertError(f"{source}: unknown key {name}.{key}{suggest(str(key), valid)}")
    merged = dict(values)
    for o in parse_overrides(overrides):
        if o.section != name:
            continue
        if len(o.keys) != 2 or o.keys[1] not in valid:
            sub = ".".join(o.keys[1:])
            raise AlbertError(f"--set {o.text!r}: unknown key {name}.{sub}{suggest(sub, valid)}")
        merged[o.keys[1]] = copy.deepcopy(o.value)
        source = source if source.endswith(" with --set") else f"{source} with --set"
    try:
        return build_section(cls, merged, name, source)
    except AlbertError as err:
        msg = str(err)
        raise AlbertError(msg if msg.startswith(f"{source}:") else f"{source}: {msg}") from None


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is dict:
        return "a mapping"
    return {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        type(None): "null",
    }.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = get_origin(tp)
    ok = False
    if origin is Literal:
        ok = value in get_args(tp) and type(value) is type(get_args(tp)[0])
    elif origin in (typing.Union, types.UnionType):
        for option in get_args(tp):
            try:
                return _coerce(value, option, key, source)
            except AlbertError:
                continue
    elif origin is dict:
        ok = isinstance(value, dict)
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -MAX_INT <= value <= MAX_INT:
            raise AlbertError(f"{source}: {key} must be an integer within ±{MAX_INT}, got {quote(value)}")
    elif tp is float:
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e308 else math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                number = float(value[:100])
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):  # NaN and inf pass every `<= 0` check downstream
                raise AlbertError(f"{source}: {key} must be a finite number, got {quote(value)}")
            return number
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is type(None):
        ok = value is None
    if not ok:
        raise AlbertError(f"{source}: {key} must be {_type_name(tp)}, got {quote(value)}")
    return value
