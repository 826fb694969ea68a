"""`albertctl convert`: Google's TF checkpoints and TF-Hub modules in, HF in and out.

    source (tf | tf-hub | hf | albertctl) -> profile + state dict + head + spm -> out (albertctl | hf)

A TF source may be a checkpoint prefix, a directory holding one (a released model or a
TF-Hub module: variables/variables.*, assets/), a `.tar.gz` of either, or (tf-hub) a handle
URL, downloaded. The config is `--config`, else albert_config.json beside the checkpoint or in
assets/; the SentencePiece model is `--spm`, else the one `*.model` found there, else the one
WordPiece vocabulary `vocab*.txt` (the Chinese models' vocab_chinese.txt). The output
directory is written atomically: on any error nothing is left under `--out`.
"""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

from albertctl.convert import hf as hf_io
from albertctl.convert import names as N
from albertctl.convert.tf import (
    Converted,
    check_state,
    convert_bundle,
    infer_fields,
    profile_from_fields,
    read_config_json,
)
from albertctl.convert.tf_bundle import TensorBundle, find_checkpoint_prefix
from albertctl.core import outputs
from albertctl.core.config import Profile
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import HeadRecord, check_model_dir_output, load_model_dir, save_model_dir
from albertctl.core.results import Result
from albertctl.core.safeload import quote, shorten
from albertctl.data.wordpiece import WordPieceTokenizer
from albertctl.tasks.base import Task, get_task, load_task_config

SOURCES = ("tf", "tf-hub", "hf", "albertctl")
TARGETS = ("albertctl", "hf")
HEADS = ("pretraining", "classify", "regress", "choice", "span")


@dataclass(frozen=True)
class ConvertResult(Result):
    """What `albertctl convert` prints; `to_dict()` is its --json output ("from" for `from_`)."""

    from_: str  # tf, tf-hub, hf or albertctl
    source: str
    to: str
    out: str
    head: HeadRecord  # the head written into the manifest
    model: dict[str, Any]  # the model section of the profile
    counts: dict[str, int]  # loaded / skipped / missing
    rows: list[dict[str, Any]]  # one per variable: status, key, source, shape, note
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["head"] = self.head.to_dict()
        return {("from" if k == "from_" else k): v for k, v in out.items()}


def run(
    source_kind: str,
    source: str,
    out: Path,
    to: str = "albertctl",
    config: Path | None = None,
    spm_model: Path | None = None,
    head: str | None = None,
    task: str | None = None,
) -> ConvertResult:
    check_arguments(source_kind, to, head, out)
    inputs = [source, config, spm_model]
    if to == "hf":  # before reading anything: may the output be replaced?
        hf_io.check_hf_output(out, inputs)
    else:
        check_model_dir_output(out, inputs)
    fine_tuned_on = resolve_task(task, source_kind)
    if fine_tuned_on is not None and head is None and source_kind in ("tf", "tf-hub"):
        # [1, H] output weights are a regression or a multiple-choice head: the task says which
        head = fine_tuned_on.head if fine_tuned_on.head in ("regress", "choice") else None
    # SIGTERM while extracting or writing: the work directory and the temporary are removed
    with outputs.sigterm_interrupts(), tempfile.TemporaryDirectory(prefix="albertctl-convert-") as work:
        if source_kind in ("tf", "tf-hub"):
            local = localise(source, Path(work), source_kind)
            profile, converted, spm_path, notes = read_tf(local, config, spm_model, head)
            converted.head = converted.head.updated({"source": source})
        elif source_kind == "hf":
            profile, converted, spm_path = hf_io.read_hf_dir(Path(source))
            spm_path, notes = spm_model or spm_path, []
        else:
            model = load_model_dir(Path(source))
            rows = [
                {"status": "loaded", "key": k, "source": k, "shape": list(v.shape), "note": ""}
                for k, v in model.state_dict.items()
            ]
            profile, converted = model.profile, Converted(model.state_dict, model.head, rows)
            spm_path, notes = spm_model or model.spm_model, []
        if spm_path is None:
            raise AlbertError(
                f"{source}: no SentencePiece model or WordPiece vocab.txt found; pass --spm FILE"
            )
        if fine_tuned_on is not None:
            converted.head = task_head(fine_tuned_on, converted.head)
        check_spm(spm_path, profile)
        check_state(converted.state_dict, profile, converted.head, str(source))
        if to == "hf":
            hf_io.write_hf_dir(out, profile, converted.state_dict, spm_path, converted.head, inputs)
        else:
            save_model_dir(out, profile, converted.state_dict, spm_path, converted.head, inputs)
    counts = {s: sum(r["status"] == s for r in converted.rows) for s in ("loaded", "skipped", "missing")}
    return ConvertResult(
        from_=source_kind,
        source=str(source),
        to=to,
        out=str(out),
        head=converted.head,
        model=profile.to_dict()["model"],
        counts=counts,
        rows=converted.rows,
        notes=notes,
    )


def check_arguments(source_kind: str, to: str, head: str | None, out: Path) -> None:
    if source_kind not in SOURCES:
        raise AlbertError(f"--from {source_kind!r}: expected one of {', '.join(SOURCES)}")
    if to not in TARGETS:
        raise AlbertError(f"--to {to!r}: expected one of {', '.join(TARGETS)}")
    if source_kind == "albertctl" and to == "albertctl":
        raise AlbertError(
            "--from albertctl needs --to hf (the source already is an albertctl model directory)"
        )
    if head is not None and head not in HEADS:
        raise AlbertError(f"--head {head!r}: expected one of {', '.join(HEADS)}")
    if head is not None and source_kind not in ("tf", "tf-hub"):
        raise AlbertError("--head applies to TF checkpoints only (other sources record their head)")


def resolve_task(name: str | None, source_kind: str) -> Task | None:
    if name is None:
        return None
    if source_kind == "albertctl":
        raise AlbertError(
            "--task applies to TF and HF sources (an albertctl model directory records its task)"
        )
    task = get_task(name)
    if task.train_split is None:
        raise AlbertError(f"--task {task.name}: predict-only; convert the model of {task.model_from} instead")
    return task


def task_head(task: Task, head: HeadRecord) -> HeadRecord:
    """The manifest head of a model fine-tuned on `task`, so `eval TASK` and `finetune TASK`
    take it as their own; refused when the converted head cannot be that task's."""
    kind = head.kind
    kinds = {task.head, *task.span_heads.values()}
    if kind not in kinds:
        raise AlbertError(
            f"--task {task.name}: the checkpoint's head is {kind}, the task needs {' or '.join(sorted(kinds))}"
        )
    if kind == "classify" and head.num_labels != task.num_labels:
        raise AlbertError(
            f"--task {task.name}: the checkpoint's classifier has {head.num_labels} outputs, "
            f"the task has {task.num_labels} labels ({', '.join(task.labels)})"
        )
    span_head = next((key for key, value in task.span_heads.items() if value == kind), None)
    config = load_task_config(task)
    if span_head:  # squad2: the checkpoint's span head picks the task's setting
        config = dataclasses.replace(config, span_head=span_head)
    return head.updated(
        {
            "task": task.name,
            "num_labels": task.num_labels,
            "labels": list(task.labels),
            "task_config": dataclasses.asdict(config),
        }
    )


def localise(source: str, work: Path, kind: str) -> Path:
    """A local directory or prefix for `source`: URLs downloaded, tarballs extracted."""
    if source.startswith(("http://", "https://")):
        if kind != "tf-hub":
            raise AlbertError(f"{source}: URLs are accepted with --from tf-hub only")
        source = str(download_hub_module(source, work))
    path = Path(source)
    if path.name.endswith((".tar.gz", ".tgz", ".tar")) and path.is_file():
        return extract(path, work / "extracted")
    if not path.exists() and not Path(f"{path}.index").is_file():
        raise AlbertError(f"{path}: not found (expected a checkpoint prefix, a directory or a .tar.gz)")
    return path


def download_hub_module(handle: str, work: Path) -> Path:
    """A TF-Hub handle (tfhub.dev, or Kaggle where it now redirects) as a compressed tarball."""
    url = handle if "tf-hub-format=" in handle else handle.rstrip("/") + "?tf-hub-format=compressed"
    target = work / "module.tar.gz"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as f:
            shutil.copyfileobj(response, f)
    except (urllib.error.URLError, OSError) as err:
        raise AlbertError(f"{handle}: download failed ({getattr(err, 'reason', err)})") from None
    return target


# A released ALBERT tarball is at most ~1 GB (xxlarge: 0.9 GB of weights) in ~10 files.
MAX_EXTRACTED_BYTES = 8 * 2**30
MAX_MEMBERS = 10_000


def extract(archive: Path, target: Path) -> Path:
    """Extract regular files and directories only. Every member is checked before anything is
    written: a relative name with no `..`, staying inside `target`; links, devices and FIFOs
    are refused (a checkpoint has no use for them), as is an archive declaring more than
    MAX_EXTRACTED_BYTES or MAX_MEMBERS. We do not rely on tarfile's `data` filter, which
    symlink chains defeat on older Pythons (CVE-2025-4517)."""
    try:
        with tarfile.open(archive) as tar:
            members = check_members(archive, tar)
            root = target.resolve()
            for member in members:
                dest = root.joinpath(*member.name.split("/"))
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.parent.resolve().is_relative_to(root) or dest.is_symlink():
                    raise AlbertError(
                        f"{archive}: member {quote(member.name)} leaves the extraction directory"
                    )
                source = tar.extractfile(member)
                if source is None:
                    raise AlbertError(f"{archive}: member {quote(member.name)} is not a regular file")
                with source, dest.open("xb") as out:
                    copied = _copy_at_most(source, out, member.size)
                if copied != member.size:
                    raise AlbertError(
                        f"{archive}: member {quote(member.name)} is truncated ({copied} of {member.size} bytes)"
                    )
    except (tarfile.TarError, OSError, EOFError) as err:
        first = str(err).splitlines()[0].rstrip(":") if str(err) else type(err).__name__
        raise AlbertError(f"{archive}: unreadable archive ({shorten(first, 160)})") from None
    return target


def check_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members if every one is a safe regular file or directory, within limits."""
    members: list[tarfile.TarInfo] = []
    total = 0
    seen: set[str] = set()
    for member in tar:  # iterating reads headers only, and stops early on a bad one
        members.append(member)
        if len(members) > MAX_MEMBERS:
            raise AlbertError(
                f"{archive}: more than {MAX_MEMBERS} members (the limit for a checkpoint archive)"
            )
        name = member.name
        label = f"{archive}: member {quote(name)}"
        if not (member.isfile() or member.isdir()):
            kind = (
                "a symbolic link" if member.issym() else "a hard link" if member.islnk()
                else "a FIFO" if member.isfifo() else "a device" if member.isdev() else "not a regular file"
            )  # fmt: skip
            raise AlbertError(f"{label} is {kind}; only regular files and directories are extracted")
        parts = name.rstrip("/").split("/")
        if not name or name.startswith("/") or "\\" in name or "\0" in name or ".." in parts:
            raise AlbertError(f"{label}: absolute paths and '..' are not allowed")
        clean = "/".join(p for p in parts if p not in ("", "."))
        if member.isfile() and clean in seen:
            raise AlbertError(f"{label} appears twice")
        seen.add(clean)
        member.name = clean or "."
        total += member.size if member.isfile() else 0
        if total > MAX_EXTRACTED_BYTES:
            raise AlbertError(
                f"{archive}: members declare more than {MAX_EXTRACTED_BYTES // 2**30} GiB "
                f"(the limit for a checkpoint archive); extract it yourself and pass the directory"
            )
    return members


def _copy_at_most(source: Any, out: Any, size: int, chunk: int = 1 << 20) -> int:
    copied = 0
    while copied < size:
        block = source.read(min(chunk, size - copied))
        if not block:
            break
        out.write(block)
        copied += len(block)
    return copied


def locate(path: Path) -> Path:
    """The directory holding the checkpoint inside an extracted tarball (one level down, often)."""
    if path.is_dir() and not list(path.glob("*.index")) and not (path / "variables").is_dir():
        found = sorted(p for p in path.rglob("*.index"))
        if found:
            top = found[0].parent
            return top.parent if top.name == "variables" else top
    return path


def read_tf(
    source: Path, config: Path | None, spm_model: Path | None, head: str | None
) -> tuple[Profile, Converted, Path | None, list[str]]:
    source = locate(source)
    prefix = find_checkpoint_prefix(source)
    bundle = TensorBundle(prefix)
    home = prefix.parent.parent if prefix.parent.name == "variables" else prefix.parent
    search = [home, home / "assets"]
    notes = []
    if config is None:
        config = next(
            (d / "albert_config.json" for d in search if (d / "albert_config.json").is_file()), None
        )
    if config is not None:
        fields = N.model_fields_from_config(read_config_json(config), str(config), "tf")
        label = str(config)
    else:
        fields, note = infer_fields(bundle)
        notes.append(note)
        label = str(prefix)
    profile, base = profile_from_fields(fields, label)
    notes.append(f"config from {label}; data/train sections from the built-in {base} profile")
    if spm_model is None:
        found = sorted(p for d in search if d.is_dir() for p in d.glob("*.model"))
        if not found:  # the Chinese models: BERT's WordPiece vocabulary instead
            found = sorted(p for d in search if d.is_dir() for p in d.glob("vocab*.txt"))
        if len(found) > 1:
            raise AlbertError(
                f"{home}: several vocabularies ({', '.join(p.name for p in found)}); pass --spm FILE"
            )
        if not found:
            raise AlbertError(
                f"{home}: no SentencePiece model (*.model) or WordPiece vocabulary (vocab*.txt) "
                "beside the checkpoint; pass --spm FILE"
            )
        spm_model = found[0]
    converted = convert_bundle(bundle, profile, head)
    return profile, converted, spm_model, notes


def check_spm(path: Path, profile: Profile) -> None:
    path = Path(path)
    if path.suffix == ".txt":  # WordPiece: one-line errors for a file that is not such a vocabulary
        size, what = WordPieceTokenizer(path).vocab_size, "WordPiece vocabulary"
    else:
        if not path.is_file():
            raise AlbertError(f"{path}: SentencePiece model not found")
        try:
            size, what = (
                spm.SentencePieceProcessor(model_file=str(path)).get_piece_size(),
                "SentencePiece model",
            )
        except (RuntimeError, OSError) as err:
            raise AlbertError(f"{path}: not a SentencePiece model ({str(err).splitlines()[0]})") from None
    if size != profile.model.vocab_size:
        raise AlbertError(
            f"{path}: {what} has {size} pieces but vocab_size in the config is {profile.model.vocab_size}"
        )
