"""Hugging Face directories in and out: config.json, model.safetensors, spiece.model.

Out: a directory `transformers.AlbertForPreTraining.from_pretrained` and
`AlbertTokenizer.from_pretrained` load as-is. A model with a WordPiece vocabulary (the Chinese
ones) gets vocab.txt and `BertTokenizer` in tokenizer_config.json instead, as the Chinese
ALBERT checkpoints on the HF hub have it. The tied decoder (`predictions.decoder.*`) is
not written: transformers ties it to the word embeddings and `predictions.bias` on load. The
full albertctl profile and head ride along in config.json under "albertctl", so that
albertctl -> hf -> albertctl gives back the same directory contents.

In: config.json plus model.safetensors (or its sharded index), or pytorch_model.bin read with
`torch.load(weights_only=True)` (no pickled code runs).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from albertctl.convert import names as N
from albertctl.convert.tf import Converted, fresh_state, profile_from_fields, read_config_json
from albertctl.core.config import Profile, profile_from_dict
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import HeadRecord
from albertctl.core.outputs import (
    atomic_directory,
    check_output,
    check_safetensors,
    only_files,
    save_safetensors,
)
from albertctl.core.safeload import quote, shorten
from albertctl.data.wordpiece import WordPieceTokenizer
from albertctl.model.head_kinds import KINDS

SPM = "spiece.model"
VOCAB = "vocab.txt"  # a WordPiece vocabulary, read by transformers' BertTokenizer
PROJECTION = "albert.encoder.embedding_hidden_mapping_in."
EMBEDDINGS_KEY = "albert.embeddings.word_embeddings.weight"


def hf_config(profile: Profile, head: HeadRecord) -> dict[str, Any]:
    m = profile.model
    kind = head.kind
    if m.sharing in ("attention", "ffn"):
        raise AlbertError(
            f"model.sharing={m.sharing} cannot be expressed in the transformers ALBERT format "
            "(it shares whole layers by group only)"
        )
    if kind not in N.HF_ARCHITECTURES:
        raise AlbertError(
            f"head kind {kind!r} has no transformers counterpart (have: {', '.join(N.HF_ARCHITECTURES)})"
        )
    N.check_transformers_grouping(m, "--to hf", "export to transformers")
    config: dict[str, Any] = {
        "architectures": [N.HF_ARCHITECTURES[kind]],
        "model_type": "albert",
        **{k: getattr(m, k) for k in N.CONFIG_FIELDS},
        "hidden_act": m.hidden_act,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }
    if N.HF_ARCHITECTURES[kind] == "AlbertForSequenceClassification":  # classify, regress
        regression = KINDS[kind].regression
        config["num_labels"] = int(head.num_labels if "num_labels" in head else 1 if regression else 2)
        if regression:
            config["problem_type"] = "regression"
        labels = head.labels or []
        if len(labels) == config["num_labels"]:  # a head fine-tuned by albertctl names its labels
            config["id2label"] = {str(i): str(label) for i, label in enumerate(labels)}
            config["label2id"] = {str(label): i for i, label in enumerate(labels)}
    config["albertctl"] = {"profile": profile.to_dict(), "head": head.to_dict()}
    return config


def tokenizer_config(profile: Profile) -> dict[str, Any]:
    """AlbertTokenizer over spiece.model."""
    return {
        "tokenizer_class": "AlbertTokenizer",
        "do_lower_case": profile.data.do_lower_case,
        "remove_space": True,
        "keep_accents": False,
        "model_max_length": profile.model.max_position_embeddings,
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        "unk_token": "<unk>",
        "sep_token": "[SEP]",
        "pad_token": "<pad>",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }


HF_EXPORT = "a Hugging Face directory albertctl exported"
EXPORT_FILES = ("config.json", "model.safetensors", SPM, VOCAB, "tokenizer_config.json")


def owns_hf_export(path: Path) -> bool:
    """An earlier export: config.json carries the "albertctl" section, and nothing else is there."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(config, dict)
        and isinstance(config.get("albertctl"), dict)
        and only_files(path, EXPORT_FILES)
    )


def check_hf_output(target: Path, inputs: Iterable[Path | str | None] = ()) -> None:
    check_output(Path(target), owns_hf_export, HF_EXPORT, inputs=inputs)


def validate_hf_dir(path: Path) -> None:
    """The export loads back: config.json parses and the weights' header fits the file."""
    read_config_json(path / "config.json")
    check_safetensors(path / "model.safetensors")


def wordpiece_tokenizer_config(profile: Profile) -> dict[str, Any]:
    """BertTokenizer over vocab.txt: FullTokenizer's steps (CJK characters split, accents
    stripped exactly when lower-casing)."""
    return {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": profile.data.do_lower_case,
        "tokenize_chinese_chars": True,
        "strip_accents": None,
        "model_max_length": profile.model.max_position_embeddings,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }


def write_hf_dir(
    target: Path,
    profile: Profile,
    state_dict: dict[str, torch.Tensor],
    spm_model: Path | None,
    head: HeadRecord,
    inputs: Iterable[Path | str | None] = (),
) -> Path:
    """Export atomically, replacing only an earlier export (or an empty directory) that is not
    one of `inputs`; nothing is left under `target` if anything fails."""
    config = hf_config(profile, head)
    wordpiece = spm_model is not None and Path(spm_model).suffix == ".txt"
    if wordpiece:  # BERT's layout puts [PAD] [CLS] [SEP] elsewhere than SentencePiece's 0, 2, 3
        tok = WordPieceTokenizer(spm_model)
        config.update(pad_token_id=tok.pad_id, bos_token_id=tok.cls_id, eos_token_id=tok.sep_id)
    tensors = {N.ours_to_hf(k): v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    if not profile.model.has_embedding_projection:
        # transformers always has the E -> H layer; with E = H an identity and a zero bias
        # compute exactly what the original (no projection) computes
        h = profile.model.hidden_size
        tensors[PROJECTION + "weight"] = torch.eye(h, dtype=tensors[N.ours_to_hf(EMBEDDINGS_KEY)].dtype)
        tensors[PROJECTION + "bias"] = torch.zeros(h, dtype=tensors[PROJECTION + "weight"].dtype)
    with atomic_directory(
        Path(target), owns_hf_export, HF_EXPORT, inputs=inputs, validate=validate_hf_dir
    ) as tmp:
        save_safetensors(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if spm_model is not None:
            shutil.copyfile(spm_model, tmp / (VOCAB if wordpiece else SPM))
            tok_config = wordpiece_tokenizer_config(profile) if wordpiece else tokenizer_config(profile)
            (tmp / "tokenizer_config.json").write_text(
                json.dumps(tok_config, indent=2) + "\n", encoding="utf-8"
            )
    return Path(target)


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    pickle = path / "pytorch_model.bin"
    try:
        if single.is_file():
            return load_file(str(single))
        if index.is_file():
            out: dict[str, torch.Tensor] = {}
            for shard in _index_shards(path, index):
                out.update(load_file(str(shard)))
            return out
    except (SafetensorError, OSError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AlbertError(f"{path}: unreadable weights ({shorten(first, 160)})") from None
    if pickle.is_file():
        try:
            weights = torch.load(pickle, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 (the unpickler raises many kinds; all mean "refused")
            raise AlbertError(
                f"{pickle}: refused (torch.load with weights_only=True reads plain tensors only); "
                "convert it to model.safetensors"
            ) from None
        if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
        ):
            raise AlbertError(f"{pickle}: expected a mapping of tensor names to tensors")
        return weights
    raise AlbertError(f"{path}: no model.safetensors or pytorch_model.bin")


def _index_shards(path: Path, index: Path) -> list[Path]:
    """The shard files a model.safetensors.index.json names, each a plain file name in `path`."""
    weight_map = read_config_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise AlbertError(f"{index}: expected a 'weight_map' of tensor names to shard files")
    shards = []
    for name in sorted({str(v) for v in weight_map.values()}):
        if "/" in name or "\\" in name or name in ("", ".", "..") or not name.endswith(".safetensors"):
            raise AlbertError(f"{index}: shard {quote(name)} must be a .safetensors file name in {path}")
        shards.append(path / name)
    return shards


def _detect_head(config: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    stored = config.get("albertctl", {}).get("head") if isinstance(config.get("albertctl"), dict) else None
    if stored:
        return dict(stored)
    arch = (config.get("architectures") or [""])[0]
    if any(k.startswith("qa_outputs.") for k in keys):
        return {"kind": "span"}
    if any(k.startswith("classifier.") for k in keys):
        if arch == "AlbertForMultipleChoice":
            return {"kind": "choice", "num_labels": 1}
        n = int(config.get("num_labels", len(config.get("id2label", {})) or 2))
        if config.get("problem_type") == "regression" or n == 1:
            return {"kind": "regress", "num_labels": 1}
        return {"kind": "classify", "num_labels": n}
    return {"kind": "pretraining"}


def _is_identity(weights: dict[str, torch.Tensor]) -> bool:
    """Whether the E -> H layer is exactly the identity with a zero bias (what `write_hf_dir`
    writes for a model without one)."""
    weight, bias = weights[PROJECTION + "weight"], weights.get(PROJECTION + "bias")
    eye = torch.eye(weight.shape[0], dtype=weight.dtype) if weight.shape[0] == weight.shape[1] else None
    return eye is not None and torch.equal(weight, eye) and (bias is None or not bias.any())


def _place_weights(
    weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Each transformers tensor under our name when this model has it with the same shape, else
    skipped with the reason; returns (state, the report's rows in checkpoint order)."""
    rows: list[dict[str, Any]] = []
    state: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        ours = N.hf_to_ours(key)
        if key in N.HF_TIED:
            rows.append(
                {
                    "status": "skipped",
                    "key": "",
                    "source": key,
                    "shape": list(tensor.shape),
                    "note": "tied to the word embeddings / predictions.bias",
                }
            )
            continue
        if N.HF_BUFFERS.search(key) or ours not in expected:
            note = "not used by this model"
            if N.HF_BUFFERS.search(key):
                note = "buffer"
            elif key.startswith(PROJECTION):
                note = "identity E -> H layer (E = H: none, as the original)"
            rows.append(
                {"status": "skipped", "key": "", "source": key, "shape": list(tensor.shape), "note": note}
            )
            continue
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise AlbertError(
                f"{key}: checkpoint shape {list(tensor.shape)}, config expects {list(expected[ours].shape)} "
                f"({path / 'config.json'} does not describe these weights)"
            )
        state[ours] = tensor
        rows.append({"status": "loaded", "key": ours, "source": key, "shape": list(tensor.shape), "note": ""})
    return state, rows


def read_hf_dir(path: Path) -> tuple[Profile, Converted, Path | None]:
    """A transformers ALBERT directory as (profile, converted weights, spiece.model, vocab.txt
    or None)."""
    path = Path(path)
    if not path.is_dir():
        raise AlbertError(f"{path}: expected a Hugging Face model directory (config.json + weights)")
    config = read_config_json(path / "config.json")
    if config.get("model_type") not in ("albert", None):
        raise AlbertError(f"{path / 'config.json'}: model_type is {config.get('model_type')!r}, not 'albert'")
    embedded = config.get("albertctl")
    if isinstance(embedded, dict) and isinstance(embedded.get("profile"), dict):
        profile = profile_from_dict(embedded["profile"], source=str(path / "config.json"))
    else:
        fields = N.model_fields_from_config(config, str(path / "config.json"), "hf")
        profile, _ = profile_from_fields(fields, str(path / "config.json"))
    weights = _load_weights(path)
    N.check_transformers_grouping(profile.model, str(path), "import this transformers model")
    weight = weights.get(PROJECTION + "weight")
    if weight is not None and not profile.model.has_embedding_projection and not _is_identity(weights):
        # E = H under albertctl's own profile, but the E -> H layer holds real weights: keep it
        model = dataclasses.replace(profile.model, embedding_projection="always")
        profile = dataclasses.replace(profile, model=model)
    head = _detect_head(config, set(weights))
    kind = head["kind"]
    num_labels = int(head.get("num_labels", 2))
    expected = fresh_state(profile, kind, num_labels, meta=True)
    state, rows = _place_weights(weights, expected, path)
    decoder = weights.get("predictions.decoder.weight")
    embeddings = state.get("albert.embeddings.word_embeddings.weight")
    if decoder is not None and embeddings is not None and not torch.equal(decoder, embeddings):
        raise AlbertError(
            f"{path}: predictions.decoder.weight differs from the word embeddings (untied decoder)"
        )
    missing = [k for k in expected if k not in state]
    if any(k.startswith("albert.") and "pooler" not in k for k in missing):
        first = next(k for k in missing if k.startswith("albert."))
        raise AlbertError(f"{path}: {len(missing)} tensors missing (first: {N.ours_to_hf(first)})")
    if missing:
        expected = fresh_state(profile, kind, num_labels)
    for k in missing:  # heads (and the pooler a QA export drops): freshly initialised
        state[k] = expected[k]
        rows.append(
            {
                "status": "missing",
                "key": k,
                "source": N.ours_to_hf(k),
                "shape": list(expected[k].shape),
                "note": "initialised (seed 0)",
            }
        )
    vocab = next((path / name for name in (SPM, VOCAB) if (path / name).is_file()), None)
    return profile, Converted(state, HeadRecord.from_dict(head), rows), vocab
