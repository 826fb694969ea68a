"""The albertctl model directory, and atomic directory writes.

A model directory is what every command reads and writes:

    DIR/
      profile.yaml        the resolved profile (model, data, train, deepspeed sections)
      model.safetensors   the weights, under albertctl's module names
      spiece.model        the SentencePiece model (absent only for a model without one),
      vocab.txt           or instead a WordPiece vocabulary (the Chinese models)
      manifest.json       format, head description, and each file's size and sha256

Directories are written through `core.outputs.atomic_directory`: to a temporary sibling,
loaded back, and renamed into place, so a crash never leaves a half-written model behind under
the final name, and only a model directory (or an empty one) is ever replaced.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albertctl.core.config import Profile, profile_from_yaml_file
from albertctl.core.errors import AlbertError
from albertctl.core.outputs import (
    atomic_directory,
    check_output,
    check_safetensors,
    manifest_owns,
    save_safetensors,
)
from albertctl.core.safeload import quote, read_json, shorten

if TYPE_CHECKING:  # torch loads only where tensors are read or written (prepare needs none)
    import torch

FORMAT = "albertctl-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
PROFILE = "profile.yaml"
SPM = "spiece.model"
VOCAB = "vocab.txt"  # a WordPiece vocabulary takes this name in place of spiece.model
MANIFEST = "manifest.json"
MODEL_DIR = "an albertctl model directory"


HEAD_FIELDS = ("kind", "task", "num_labels", "labels", "task_config")


@dataclass(frozen=True, eq=False)
class HeadRecord(Mapping[str, Any]):
    """The `head` of a model directory's manifest, typed: which head the weights carry and,
    fine-tuned, the task, its labels and settings. Keys this record does not name (`source`,
    `converted_from`, `pretraining_data`, `global_step`, own-data `data`, ...) stay in `extra`.
    `from_dict(d).to_dict() == d`, key order included, so the manifest on disk is unchanged.

    Code reads the attributes; the record also reads as the manifest's mapping (`head["task"]`,
    `head.get("data")`, `head == {...}`), as a `Result` reads as its `--json` dict."""

    kind: str = "pretraining"  # pretraining, classify, regress, span, squad2-beam, choice
    task: str | None = None  # the task fine-tuned on
    num_labels: int | None = None
    labels: list[str] | None = None
    task_config: dict[str, Any] | None = None  # the TaskConfig it was fine-tuned with
    extra: dict[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=("kind",), repr=False)  # keys as read, in order

    @classmethod
    def from_dict(cls, head: Mapping[str, Any]) -> HeadRecord:
        known = {k: head[k] for k in HEAD_FIELDS if k in head}
        extra = {k: v for k, v in head.items() if k not in HEAD_FIELDS}
        return cls(**known, extra=extra, order=tuple(head))

    def to_dict(self) -> dict[str, Any]:
        values = {k: getattr(self, k) for k in HEAD_FIELDS} | self.extra
        keys = [k for k in self.order if k in values] + [k for k in values if k not in self.order]
        return {k: values[k] for k in keys if k in self.order or k in self.extra or values[k] is not None}

    def updated(self, values: Mapping[str, Any]) -> HeadRecord:
        """This record with `values` set, as `dict.update` would: a key already there keeps its
        place, a new one goes last."""
        return HeadRecord.from_dict({**self.to_dict(), **values})

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass
class ModelDir:
    path: Path
    profile: Profile
    state_dict: dict[str, torch.Tensor]
    spm_model: Path | None  # the vocabulary file: spiece.model, or vocab.txt for WordPiece
    head: HeadRecord = field(default_factory=HeadRecord)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, extra: dict[str, Any]) -> None:
    files = {
        p.relative_to(directory).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, **extra, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def verify_manifest(directory: Path, checksums: bool = True) -> dict[str, Any]:
    """Check every file the manifest lists: present, the right size and (optionally) sha256.
    Only files inside `directory` are ever looked at: a name that leaves it is refused."""
    path = directory / MANIFEST
    try:
        manifest = read_json(path, "corrupt manifest")
    except FileNotFoundError:
        raise AlbertError(f"{directory}: not an albertctl model directory (no {MANIFEST})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AlbertError(f"{path}: not an albertctl manifest (format should be '{FORMAT}')")
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise AlbertError(f"{path}: corrupt manifest ('files' must map file names to size and sha256)")
    head = manifest.get("head", {"kind": "pretraining"})
    if not isinstance(head, dict) or not isinstance(head.get("kind"), str):
        raise AlbertError(
            f"{path}: corrupt manifest ('head' must be a mapping with a 'kind', got {quote(head)})"
        )
    for name, meta in files.items():
        f = _member(directory, name, path)
        if not (
            isinstance(meta, dict)
            and type(meta.get("bytes")) is int
            and meta["bytes"] >= 0
            and isinstance(meta.get("sha256"), str)
        ):
            raise AlbertError(
                f"{path}: corrupt manifest (entry {quote(name)} must be {{bytes: integer, sha256: text}}, "
                f"got {quote(meta)})"
            )
        if not f.is_file():
            raise AlbertError(f"{f}: listed in {MANIFEST} but missing")
        if f.stat().st_size != meta["bytes"]:
            raise AlbertError(
                f"{f}: corrupt or truncated ({f.stat().st_size} bytes, manifest says {meta['bytes']})"
            )
        if checksums and sha256_file(f) != meta["sha256"]:
            raise AlbertError(f"{f}: corrupt (sha256 differs from {MANIFEST})")
    return manifest


def _member(directory: Path, name: object, manifest: Path) -> Path:
    """`directory / name` for a manifest entry, refused unless it names a file strictly inside
    `directory` (relative, no `..`, no link leading out)."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise AlbertError(f"{manifest}: corrupt manifest (bad file name {quote(name)})")
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise AlbertError(f"{manifest}: corrupt manifest (file name {quote(name)} leaves the directory)")
    f = directory.joinpath(*parts)
    if not f.resolve().is_relative_to(directory.resolve()):
        raise AlbertError(f"{manifest}: corrupt manifest ({shorten(name)} resolves outside the directory)")
    return f


def check_finite(state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Refuse to save weights holding NaN or inf: such a model only ever predicts garbage."""
    import torch

    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise AlbertError(
                f"{what}: not saved, {key} holds {bad} non-finite values (NaN or inf); "
                "lower train.learning_rate or check the data"
            )


def owns_model_dir(path: Path) -> bool:
    """A model directory albertctl wrote: its manifest, and no file the manifest does not list."""
    return manifest_owns(path, lambda m: m.get("format") == FORMAT and "kind" not in m, MANIFEST)


def check_model_dir_output(
    target: Path, inputs: Iterable[Path | str | None] = (), flag: str = "--out"
) -> None:
    """Before hours of work: may `save_model_dir(target)` replace what is there? (one line if not)"""
    check_output(target, owns_model_dir, MODEL_DIR, inputs=inputs, flag=flag)


def validate_model_dir(path: Path) -> None:
    """A written model directory loads back: sizes match the manifest, the profile parses and
    the weights' header fits the file."""
    verify_manifest(path, checksums=False)
    profile_from_yaml_file(path / PROFILE)
    check_safetensors(path / WEIGHTS)


def save_model_dir(
    target: Path,
    profile: Profile,
    state_dict: dict[str, torch.Tensor],
    spm_model: Path | None,
    head: HeadRecord | None = None,
    inputs: Iterable[Path | str | None] = (),
) -> Path:
    """Write a model directory atomically, replacing only an earlier model directory (or an
    empty one) that is not one of `inputs`. Shared tensors are stored once per key, contiguous.
    Weights holding NaN or inf are refused before anything is written."""
    target = Path(target)
    check_finite(state_dict, str(target))
    with atomic_directory(
        target, owns_model_dir, MODEL_DIR, inputs=inputs, validate=validate_model_dir
    ) as tmp:
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
        save_safetensors(tensors, tmp / WEIGHTS, metadata={"format": FORMAT})
        (tmp / PROFILE).write_text(profile.to_yaml(), encoding="utf-8")
        if spm_model is not None:
            shutil.copyfile(spm_model, tmp / vocab_name(spm_model))
        write_manifest(tmp, {"head": (head if head is not None else HeadRecord()).to_dict()})
    return target


def vocab_name(vocab_file: Path | str) -> str:
    """The name a vocabulary file takes in a model directory: WordPiece `*.txt` -> vocab.txt."""
    return VOCAB if Path(vocab_file).suffix == ".txt" else SPM


def load_model_dir(path: Path, checksums: bool = True) -> ModelDir:
    """Read a model directory, refusing a corrupt one with a one-line error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise AlbertError(f"model directory {path} not found")
    if not path.is_dir():
        raise AlbertError(f"{path}: expected an albertctl model directory, got a file")
    manifest = verify_manifest(path, checksums)
    profile = profile_from_yaml_file(path / PROFILE)
    try:
        state = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise AlbertError(f"{path / WEIGHTS}: unreadable safetensors file ({err})") from None
    spm = path / SPM if (path / SPM).is_file() or not (path / VOCAB).is_file() else path / VOCAB
    head = HeadRecord.from_dict(manifest.get("head", {"kind": "pretraining"}))
    return ModelDir(path, profile, state, spm if spm.is_file() else None, head)
