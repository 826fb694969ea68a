"""TF checkpoints and TF-Hub modules -> albertctl state dicts, through the maps in names.py.

The result carries one row per variable (loaded, skipped with its reason, missing) for the
table the CLI prints. A shape that disagrees with the config raises an AlbertError naming the
variable, both shapes and the config field at fault; encoder weights the checkpoint lacks
are an error too, while a missing pretraining head is initialised and reported as missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from albertctl.convert import names as N
from albertctl.convert.tf_bundle import TensorBundle
from albertctl.core.config import ModelConfig, Profile, load_profile, profile_from_dict
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import HeadRecord
from albertctl.core.safeload import quote, read_json
from albertctl.model.albert import AlbertForPreTraining
from albertctl.model.head_kinds import reads_pooled
from albertctl.model.heads import AlbertForTask


@dataclass
class Converted:
    """A state dict under our names, its head description, and what happened to each tensor."""

    state_dict: dict[str, torch.Tensor]
    head: HeadRecord
    rows: list[dict[str, Any]] = field(default_factory=list)  # status, key, source, shape, note


def profile_from_fields(fields: dict[str, Any], source: str, name: str = "converted") -> tuple[Profile, str]:
    """A profile from ModelConfig fields, starting from the built-in profile closest in size."""
    hidden = fields.get("hidden_size", 768)
    base = N.CLOSEST_PROFILE.get(hidden, "base") if isinstance(hidden, int) else "base"
    data = load_profile(base).to_dict()
    data["name"] = name
    data["description"] = f"converted from {source} (other sections from the built-in {base} profile)"
    data["model"] = {**data["model"], **fields}
    max_pos = data["model"]["max_position_embeddings"]
    if isinstance(max_pos, int):
        data["data"]["max_seq_length"] = min(data["data"]["max_seq_length"], max(max_pos, 8))
    return profile_from_dict(data, source=source), base


def read_config_json(path: Path) -> dict[str, Any]:
    """A JSON object from a user's file (config.json, albert_config.json, a shard index)."""
    try:
        config = read_json(Path(path))
    except FileNotFoundError:
        raise AlbertError(f"{path}: config file not found") from None
    if not isinstance(config, dict):
        raise AlbertError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def infer_fields(bundle: TensorBundle) -> tuple[dict[str, Any], str]:
    """Model fields from the variables' shapes when a module ships no albert_config.json.
    Layers and heads leave no trace in the shapes: they come from the closest built-in profile."""
    canon = N.strip_hub_prefix(bundle.names, str(bundle.index_path))

    def shape(tf_name: str) -> tuple[int, ...]:
        if tf_name not in canon:
            raise AlbertError(
                f"{bundle.index_path}: no albert_config.json and no {tf_name} to infer the config from; pass --config"
            )
        return bundle.shape(canon[tf_name])

    v, e = shape("bert/embeddings/word_embeddings")
    h = shape("bert/pooler/dense/kernel")[1]  # also when E = H (no embedding_hidden_mapping_in)
    groups = {n.split("group_")[1].split("/")[0] for n in canon if "/transformer/group_" in n}
    inner = {n.split("inner_group_")[1].split("/")[0] for n in canon if "/inner_group_" in n}
    first = "bert/encoder/transformer/group_0/inner_group_0/"
    if h not in N.CLOSEST_PROFILE:
        raise AlbertError(
            f"{bundle.index_path}: no albert_config.json, and hidden_size {h} matches no released model "
            "to take num_hidden_layers and num_attention_heads from; pass --config"
        )
    base = load_profile(N.CLOSEST_PROFILE[h]).model
    fields = {
        "vocab_size": v,
        "embedding_size": e,
        "hidden_size": h,
        "intermediate_size": shape(first + "ffn_1/intermediate/dense/kernel")[1],
        "max_position_embeddings": shape("bert/embeddings/position_embeddings")[0],
        "type_vocab_size": shape("bert/embeddings/token_type_embeddings")[0],
        "num_hidden_groups": len(groups),
        "inner_group_num": len(inner),
        "num_hidden_layers": max(base.num_hidden_layers, len(groups)),
        "num_attention_heads": base.num_attention_heads,
    }
    note = (
        f"no albert_config.json: shapes read from the checkpoint, num_hidden_layers={fields['num_hidden_layers']} "
        f"and num_attention_heads={fields['num_attention_heads']} assumed; pass --config to be sure"
    )
    return fields, note


def fresh_state(
    profile: Profile, head_kind: str, num_labels: int, meta: bool = False
) -> dict[str, torch.Tensor]:
    """The state dict of a freshly initialised model of this head kind (seed 0): its keys and
    shapes (`meta`: no memory, no init time) or real values for heads a checkpoint lacks."""
    with torch.random.fork_rng(devices=[]), torch.device("meta" if meta else "cpu"):
        torch.manual_seed(0)
        if head_kind == "pretraining":
            model: torch.nn.Module = AlbertForPreTraining(profile.model)
        else:
            model = AlbertForTask(profile.model, head_kind, num_labels)  # type: ignore[arg-type]
    return model.state_dict()


def _is_meta(state: dict[str, torch.Tensor]) -> bool:
    return any(t.is_meta for t in state.values())


def check_state(state_dict: dict[str, torch.Tensor], profile: Profile, head: HeadRecord, source: str) -> None:
    """Refuse weights that are not those of the model `profile` and `head` describe (a tensor
    missing, transposed or of an integer dtype), before anything is written from them."""
    kind = head.kind
    num_labels = head.num_labels if "num_labels" in head else 2  # a null in a manifest is refused
    if type(num_labels) is not int or not 1 <= num_labels <= 10_000:
        raise AlbertError(
            f"{source}: head num_labels must be an integer from 1 to 10000, got {quote(num_labels)}"
        )
    for key, want in fresh_state(profile, kind, num_labels, meta=True).items():
        got = state_dict.get(key)
        if got is None:
            raise AlbertError(f"{source}: tensor {key} is missing")
        if tuple(got.shape) != tuple(want.shape):
            raise AlbertError(
                f"{source}: {key} has shape {list(got.shape)}, the profile's model needs {list(want.shape)}"
            )
        if not got.is_floating_point():
            raise AlbertError(
                f"{source}: {key} is {str(got.dtype).removeprefix('torch.')}, expected floating point"
            )


def convert_bundle(bundle: TensorBundle, profile: Profile, head_kind: str | None = None) -> Converted:
    """Map a TF checkpoint onto our names for `profile`; `head_kind` None detects it."""
    config = profile.model
    N.check_variable_names(bundle.names, str(bundle.index_path))
    canon = N.strip_hub_prefix(bundle.names, str(bundle.index_path))
    kind, num_labels, evidence = _head_of(bundle, canon, head_kind)
    N.check_grouping(list(canon), config)
    wanted = N.tf_names(config, kind)
    state, rows, used = _read_mapped(bundle, canon, wanted, config, num_labels)
    rows += _fill_unmapped(state, wanted, profile, kind, num_labels)
    rows += _skipped_rows(bundle, used, config)
    head = HeadRecord(
        kind,
        num_labels=num_labels if reads_pooled(kind) else None,
        extra={"converted_from": evidence} if evidence else {},
    )
    return Converted(state, head, rows)


def _head_of(
    bundle: TensorBundle, canon: dict[str, str], head_kind: str | None
) -> tuple[str, int, str | None]:
    """(kind, num_labels, evidence): `--head` checked against the checkpoint, or detected."""
    detected, evidence = N.detect_tf_head(set(canon))
    kind = head_kind or detected
    num_labels = 2
    if reads_pooled(kind):
        if "output_weights" not in canon:
            raise AlbertError(
                f"{bundle.index_path}: --head {kind} needs output_weights, which this checkpoint lacks"
            )
        num_labels = bundle.shape(canon["output_weights"])[0]
        if head_kind is None and num_labels == 1:
            kind = "regress"  # STS-B; RACE has the same shape: --head choice
    elif head_kind is not None and head_kind != "pretraining" and head_kind != detected:
        raise AlbertError(
            f"{bundle.index_path}: --head {head_kind} does not match the checkpoint's head ({detected})"
        )
    return kind, num_labels, evidence


def _read_mapped(
    bundle: TensorBundle, canon: dict[str, str], wanted: list[N.TFName], config: ModelConfig, num_labels: int
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]], set[str]]:
    """The tensors the name map finds, shape-checked: (state, report rows, TF names used)."""
    rows: list[dict[str, Any]] = []
    state: dict[str, torch.Tensor] = {}
    missing_encoder = []
    used = set()
    for name in wanted:
        stored = canon.get(name.tf)
        if stored is None:
            if name.key.startswith("albert."):
                missing_encoder.append(name.tf)
            continue
        got = bundle.shape(stored)
        want = N.expected_shape(name.dims, config, num_labels)
        if got != want:
            raise AlbertError(N.mismatch_cause(name, got, config, num_labels))
        tensor = bundle.read(stored).to(torch.float32)
        state[name.key] = (tensor.t() if name.transpose else tensor).contiguous()
        used.add(stored)
        rows.append({"status": "loaded", "key": name.key, "source": stored, "shape": list(got), "note": ""})
    if missing_encoder:
        raise AlbertError(
            f"{bundle.index_path}: {len(missing_encoder)} encoder variables missing (first: {missing_encoder[0]}); "
            "is it an ALBERT checkpoint for this config?"
        )
    return state, rows, used


def _fill_unmapped(
    state: dict[str, torch.Tensor], wanted: list[N.TFName], profile: Profile, kind: str, num_labels: int
) -> list[dict[str, Any]]:
    """Fresh (seed 0) tensors, added to `state`, for what the checkpoint lacks: a new head, and
    groups no layer runs; the report rows saying so."""
    config = profile.model
    rows: list[dict[str, Any]] = []
    fresh = fresh_state(profile, kind, num_labels, meta=True)
    if any(name.key not in state for name in wanted):
        fresh = fresh_state(profile, kind, num_labels)
    for name in wanted:
        if name.key not in state and name.key in fresh:
            state[name.key] = fresh[name.key]
            rows.append(
                {
                    "status": "missing",
                    "key": name.key,
                    "source": name.tf,
                    "shape": list(fresh[name.key].shape),
                    "note": "initialised (seed 0)",
                }
            )
    for g in N.unused_groups(config):  # the original created no variables for it
        if any(k.startswith(N.group_prefix(g)) for k in fresh if k not in state):
            fresh = fresh_state(profile, kind, num_labels) if _is_meta(fresh) else fresh
        for key in [k for k in fresh if k.startswith(N.group_prefix(g)) and k not in state]:
            state[key] = fresh[key]
            rows.append(
                {
                    "status": "missing",
                    "key": key,
                    "source": f"group_{g}",
                    "shape": list(fresh[key].shape),
                    "note": "no layer runs this group under the original's int(i / L * G); initialised (seed 0)",
                }
            )
    extra = sorted(set(fresh) - set(state))
    if extra:  # our model has a tensor no TF name maps to: a bug in names.py, not a user error
        raise RuntimeError(f"names.py maps no TF variable to {extra}")
    return rows


def _skipped_rows(bundle: TensorBundle, used: set[str], config: ModelConfig) -> list[dict[str, Any]]:
    """A report row for every checkpoint variable the model does not use, with the reason."""
    rows = []
    for stored in bundle.names:
        if stored in used:
            continue
        reason = N.skip_reason(stored) or (
            "E = H: no E->H projection, as the original"
            if "embedding_hidden_mapping_in" in stored and not config.has_embedding_projection
            else "not used by this model"
        )
        rows.append(
            {
                "status": "skipped",
                "key": "",
                "source": stored,
                "shape": list(bundle.shape(stored)),
                "note": reason,
            }
        )
    return rows
