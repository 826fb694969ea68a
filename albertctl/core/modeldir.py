"""The albertctl model directory, and atomic directory writes.

A model directory is what every command reads and writes:

    DIR/
      profile.yaml        the resolved profile (model, data, train, deepspeed sections)
      model.safetensors   the weights, under albertctl's module names
      spiece.model        the SentencePiece model (absent only for a model without one)
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
from typing import TYPE_CHECKING, Any

from albertctl.core.config import Profile, profile_from_yaml_file
from albertctl.core.errors import AlbertError
from albertctl.core.safeload import quote, read_json, shorten

if TYPE_CHECKING:  # torch loads only where tensors are read or written (prepare needs none)
    import torch

FORMAT = "albertctl-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
PROFILE = "profile.yaml"
SPM = "spiece.model"
MANIFEST = "manifest.json"


@dataclass
class ModelDir:
    path: Path
    profile: Profile
    state_dict: dict[str, torch.Tensor]
    spm_model: Path | None
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
        honour_umask(tmp)
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


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, without changing it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and put back at once
    os.umask(mask)
    return mask


def honour_umask(root: Path) -> None:
    """Give `root` and everything under it the modes a plain mkdir/open would have given:
    0777 / 0666 less the umask. tempfile.mkdtemp makes 0700 and safetensors writes 0600, so
    without this a team could not read a model in a shared directory (under umask 022: 0755
    directories, 0644 files)."""
    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


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


def save_model_dir(
    target: Path,
    profile: Profile,
    state_dict: dict[str, torch.Tensor],
    spm_model: Path | None,
    head: dict[str, Any] | None = None,
) -> Path:
    """Write a model directory atomically. Shared tensors are stored once per key, contiguous.
    Weights holding NaN or inf are refused before anything is written."""
    from safetensors.torch import save_file

    target = Path(target)
    check_finite(state_dict, str(target))
    with atomic_directory(target) as tmp:
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / PROFILE).write_text(profile.to_yaml(), encoding="utf-8")
        if spm_model is not None:
            shutil.copyfile(spm_model, tmp / SPM)
        write_manifest(tmp, {"head": head or {"kind": "pretraining"}})
    return target


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
    spm = path / SPM
    return ModelDir(
        path, profile, state, spm if spm.is_file() else None, manifest.get("head", {"kind": "pretraining"})
    )
