"""The albertctl model directory, and atomic directory writes.

A model directory is what every command reads and writes:

    DIR/
      profile.yaml        the resolved profile (model, data, train, deepspeed sections)
      model.safetensors   the weights, under albertctl's module names
      spiece.model        the SentencePiece model (absent only for a model without one),
      vocab.txt           or instead a WordPiece vocabulary (the Chinese models)
      manifest.json       format, head description, and each file's size and sha256

Directories are written to a temporary sibling and renamed into place, so a crash never
leaves a half-written model behind under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from albertctl.core.config import Profile, profile_from_yaml_file
from albertctl.core.errors import AlbertError

FORMAT = "albertctl-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
PROFILE = "profile.yaml"
SPM = "spiece.model"
VOCAB = "vocab.txt"  # a WordPiece vocabulary takes this name in place of spiece.model
MANIFEST = "manifest.json"


@dataclass
class ModelDir:
    path: Path
    profile: Profile
    state_dict: dict[str, torch.Tensor]
    spm_model: Path | None  # the vocabulary file: spiece.model, or vocab.txt for WordPiece
    head: dict[str, Any] = field(default_factory=lambda: {"kind": "pretraining"})


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; on success it replaces `target` whole.
    On any exception the temporary directory is removed and `target` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_manifest(directory: Path, extra: dict[str, Any]) -> None:
    files = {
        p.relative_to(directory).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, **extra, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def verify_manifest(directory: Path, checksums: bool = True) -> dict[str, Any]:
    """Check every file the manifest lists: present, the right size and (optionally) sha256."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlbertError(f"{directory}: not an albertctl model directory (no {MANIFEST})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AlbertError(f"{path}: corrupt manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AlbertError(f"{path}: not an albertctl manifest (format should be '{FORMAT}')")
    for name, meta in manifest.get("files", {}).items():
        f = directory / name
        if not f.is_file():
            raise AlbertError(f"{f}: listed in {MANIFEST} but missing")
        if f.stat().st_size != meta["bytes"]:
            raise AlbertError(
                f"{f}: corrupt or truncated ({f.stat().st_size} bytes, manifest says {meta['bytes']})"
            )
        if checksums and sha256_file(f) != meta["sha256"]:
            raise AlbertError(f"{f}: corrupt (sha256 differs from {MANIFEST})")
    return manifest


def save_model_dir(
    target: Path,
    profile: Profile,
    state_dict: dict[str, torch.Tensor],
    spm_model: Path | None,
    head: dict[str, Any] | None = None,
) -> Path:
    """Write a model directory atomically. Shared tensors are stored once per key, contiguous."""
    target = Path(target)
    with atomic_directory(target) as tmp:
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / PROFILE).write_text(profile.to_yaml(), encoding="utf-8")
        if spm_model is not None:
            shutil.copyfile(spm_model, tmp / vocab_name(spm_model))
        write_manifest(tmp, {"head": head or {"kind": "pretraining"}})
    return target


def vocab_name(vocab_file: Path | str) -> str:
    """The name a vocabulary file takes in a model directory: WordPiece `*.txt` -> vocab.txt."""
    return VOCAB if Path(vocab_file).suffix == ".txt" else SPM


def load_model_dir(path: Path, checksums: bool = True) -> ModelDir:
    """Read a model directory, refusing a corrupt one with a one-line error."""
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
    return ModelDir(
        path, profile, state, spm if spm.is_file() else None, manifest.get("head", {"kind": "pretraining"})
    )
