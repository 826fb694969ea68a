"""Training checkpoints: safetensors + YAML, written atomically, the last K kept.

    RUN_DIR/checkpoints/step-00000200/
      model/                          an albertctl model directory (finetune, eval, convert read it)
      trainer-rank00000.safetensors   this rank's optimiser tensors and RNG state; the nested
                                      structure of the optimiser state (YAML) in its metadata
      state.yaml                      step, data position, schedule, identity, best eval
      manifest.json                   every file's size and sha256 (core.modeldir format)

Nothing is pickled, which is why DeepSpeed's own `save_checkpoint` is not used. The optimiser
state is stored per parameter, by name ("universal", as DeepSpeed's universal checkpoints): each
rank saves the stretch of every parameter it holds (fp32 master weights, moments) with that
stretch's offset in the parameter, so a checkpoint written under ZeRO-k on N ranks resumes on M
ranks under any stage (`universal_state` / `load_universal_state`). Without ZeRO every rank holds
whole parameters and rank 0 saves them. Checkpoints written before the universal format hold each
rank's flat DeepSpeed buffers instead (`optimizer_state`); they resume on the same world size
and ZeRO stage only (checked).

A checkpoint is written to `.step-N.tmp` and renamed when complete, so a crash or a full disk
never leaves a partial `step-N`; `--resume` also skips, with a warning, any checkpoint whose
manifest does not verify.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from albertctl.core import outputs
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import MANIFEST, owns_model_dir, verify_manifest, write_manifest
from albertctl.core.outputs import fsync_dir, fsync_tree, honour_umask, manifest_owns, save_safetensors
from albertctl.core.safeload import dump_yaml, parse_yaml, quote
from albertctl.training import ds_compat

STATE = "state.yaml"
MODEL = "model"
KIND = "training-checkpoint"
METRICS = "metrics.jsonl"
NAME = re.compile(r"^step-(\d+)$")
SHARD = re.compile(r"^trainer-rank(\d{5})\.safetensors$")
UNIVERSAL = "universal"  # state.yaml's optimizer_format, and the shards' key for that state


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def shard_name(rank: int) -> str:
    return f"trainer-rank{rank:05d}.safetensors"


# ----------------------------------------------------------------------------- nested state


def flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested dict/list structure by {"tensor": key}, collecting the
    tensors in `tensors`; the rest must be plain YAML scalars."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous().clone()
        return {"tensor": prefix}
    if isinstance(obj, dict):
        return {"dict": [[k, flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {"list": [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, bool | int | float | str):
        return {"value": obj}
    if hasattr(obj, "value") and isinstance(obj.value, int | str):  # enums
        return {"value": obj.value}
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a checkpoint")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    kind, value = next(iter(skeleton.items()))
    if kind == "tensor":
        return tensors[value]
    if kind == "dict":
        return {k: unflatten(v, tensors) for k, v in value}
    if kind == "list":
        return [unflatten(v, tensors) for v in value]
    return value


# ----------------------------------------------------------------------------- optimiser state


def optimizer_state(ds_optimizer: Any, zero_stage: int) -> dict[str, Any]:
    """The parts of the (DeepSpeed-wrapped) optimiser needed to continue exactly."""
    if zero_stage == 0:
        inner = ds_compat.inner_optimizer(ds_optimizer)
        if inner is None:
            return {"optimizer": ds_optimizer.state_dict()}
        return {"optimizer": inner.state_dict(), "fp32": ds_compat.unpartitioned_masters(ds_optimizer)}
    if zero_stage in (1, 2):
        return {
            "optimizer": ds_optimizer.optimizer.state_dict(),
            "fp32": ds_compat.zero12_masters(ds_optimizer),
        }
    optimizer, fp32 = ds_compat.zero3_state(ds_optimizer)
    return {"optimizer": optimizer, "fp32": fp32}


@torch.no_grad()
def load_optimizer_state(ds_optimizer: Any, zero_stage: int, state: dict[str, Any]) -> None:
    if zero_stage == 0:
        inner = ds_compat.inner_optimizer(ds_optimizer)
        if inner is None:
            ds_optimizer.load_state_dict(state["optimizer"])
            return
        inner.load_state_dict(state["optimizer"])
        for current, saved in zip(
            ds_compat.unpartitioned_masters(ds_optimizer), state.get("fp32", []), strict=True
        ):
            current.copy_(saved)
        ds_compat.refresh_low_precision(ds_optimizer)
        return
    if zero_stage in (1, 2):
        ds_optimizer.optimizer.load_state_dict(state["optimizer"])
        for current, saved in zip(ds_compat.zero12_masters(ds_optimizer), state["fp32"], strict=True):
            current.copy_(saved)
        ds_compat.refresh_low_precision(ds_optimizer)
        return
    ds_compat.zero3_load(ds_optimizer, state["optimizer"], state["fp32"])  # fed from safetensors


# The universal optimiser state, per parameter name. A DeepSpeed wrapper hands the client
# optimiser fp32 flat tensors ("masters"): one per parameter group, whole or this rank's
# partition; `optim.flat_layouts` says which stretch of a master is which parameter. Across
# ranks a parameter's stretches come in rank order (ZeRO 1/2 split the group's buffer in rank
# order, ZeRO-3 each parameter), so a stretch's offset in its parameter is the length the lower
# ranks hold. Without a wrapper the masters are the parameters themselves.


@dataclass(frozen=True)
class _Piece:
    name: str  # the parameter's name in the module
    shape: tuple[int, ...]  # the parameter's full shape
    offset: int  # first element of the (flattened) parameter held here
    length: int
    master: torch.Tensor  # the fp32 tensor the client optimiser steps (its state is keyed by it)
    start: int  # where the stretch begins in `master` (flattened)


def _masters(ds_optimizer: Any) -> list[tuple[torch.Tensor, list[torch.Tensor]]] | None:
    """(fp32 flat master, the parameters laid out in it) per group, in `flat_layouts`'s order;
    None when the client optimiser steps the parameters themselves."""
    groups = ds_compat.master_groups(ds_optimizer)
    return None if groups is None else [(g.flat, g.params) for g in groups]


def _inner(ds_optimizer: Any) -> torch.optim.Optimizer:
    inner = ds_compat.inner_optimizer(ds_optimizer)
    return ds_optimizer if inner is None else inner


def _pieces(
    ds_optimizer: Any,
    module: torch.nn.Module,
    layouts: Mapping[int, Any],
    rank: int,
    world_size: int,
    reduce: Callable[[list[float]], list[float]],
) -> tuple[list[_Piece], bool]:
    """The stretches of parameters this rank holds, and whether they are partitioned over the
    ranks (False: every rank holds every parameter whole). Collective when partitioned."""
    names = {id(p): n for n, p in module.named_parameters()}
    masters = _masters(ds_optimizer)
    if masters is None:  # the client optimiser steps the parameters, or per-parameter fp32 copies
        copies = ds_compat.unfused_copies(ds_optimizer)
        out = []
        for group in _inner(ds_optimizer).param_groups:
            for p in group["params"]:
                name = names[id(copies.get(id(p), p))]
                out.append(_Piece(name, tuple(p.shape), 0, p.numel(), p, 0))
        return out, False
    partitioned = any(layouts[id(flat)].group is not None for flat, _ in masters)
    held = []  # (group, parameter number, its slice) for every slice of this rank
    for i, (flat, _) in enumerate(masters):
        held += [(i, j, (start, length)) for start, length, j in layouts[id(flat)].slices]
    sizes = [len(params) for _, params in masters]
    first = [sum(sizes[:i]) for i in range(len(sizes))]
    before = [0] * sum(sizes)
    if partitioned:  # every rank's lengths, to place each stretch in its parameter
        table = [0.0] * (world_size * sum(sizes))
        for i, j, (_, length) in held:
            table[rank * sum(sizes) + first[i] + j] = float(length)
        table = reduce(table)
        for r in range(rank):
            for k in range(sum(sizes)):
                before[k] += int(table[r * sum(sizes) + k])
    out = []
    for i, j, (start, length) in held:
        flat, params = masters[i]
        p = params[j]
        shape = ds_compat.full_shape(p)
        out.append(_Piece(names[id(p)], shape, before[first[i] + j], length, flat, start))
    return out, partitioned


def universal_state(
    ds_optimizer: Any,
    module: torch.nn.Module,
    layouts: Mapping[int, Any],
    rank: int,
    world_size: int,
    reduce: Callable[[list[float]], list[float]],
) -> dict[str, Any] | None:
    """This rank's part of the universal optimiser state: per parameter name its offset, full
    shape and the stretches of the fp32 master weights and of every per-element optimiser
    state (moments); the scalar state (step) once. None on ranks with nothing to add (without
    ZeRO only rank 0 saves). Collective under ZeRO: every rank must call it."""
    pieces, partitioned = _pieces(ds_optimizer, module, layouts, rank, world_size, reduce)
    if not partitioned and rank != 0:
        return None
    state = _inner(ds_optimizer).state
    params: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for piece in pieces:
        entry: dict[str, Any] = {"offset": piece.offset, "shape": list(piece.shape)}
        entry["fp32"] = _stretch(piece.master, piece)
        for key, value in state.get(piece.master, {}).items():
            if isinstance(value, torch.Tensor) and value.numel() == piece.master.numel() and value.dim():
                entry[key] = _stretch(value, piece)
            else:
                scalars.setdefault(key, value)
        params[piece.name] = entry
    return {"params": params, "scalars": scalars}


def _stretch(tensor: torch.Tensor, piece: _Piece) -> torch.Tensor:
    return tensor.detach().reshape(-1).narrow(0, piece.start, piece.length).float()


@torch.no_grad()
def load_universal_state(
    ds_optimizer: Any,
    zero_stage: int,
    module: torch.nn.Module,
    layouts: Mapping[int, Any],
    rank: int,
    world_size: int,
    reduce: Callable[[list[float]], list[float]],
    saved: list[dict[str, Any]],
    where: str,
) -> None:
    """Fill this rank's masters and optimiser state from the universal states of every rank of
    a checkpoint (`saved`, any world size and ZeRO stage). AlbertError (naming `where`) when a
    parameter of this model is missing, has another shape or is not covered."""
    whole: dict[str, dict[str, torch.Tensor]] = {}
    covered: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}
    scalars: dict[str, Any] = {}
    for part in saved:
        scalars = {**part.get("scalars", {}), **scalars}
        for name, entry in part["params"].items():
            shape = [int(x) for x in entry["shape"]]
            if shapes.setdefault(name, shape) != shape:
                raise AlbertError(f"{where}: the ranks disagree on the shape of {name}")
            numel = math.prod(shape)
            fields = whole.setdefault(name, {})
            offset = int(entry["offset"])
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    if offset < 0 or offset + value.numel() > numel:
                        raise AlbertError(f"{where}: a stretch of {name} lies outside its shape {shape}")
                    fields.setdefault(key, torch.zeros(numel)).narrow(0, offset, value.numel()).copy_(value)
            covered[name] = covered.get(name, 0) + entry["fp32"].numel()
    pieces, _ = _pieces(ds_optimizer, module, layouts, rank, world_size, reduce)
    state = _inner(ds_optimizer).state
    for piece in pieces:
        if piece.name not in whole:
            raise AlbertError(f"{where}: the optimiser state lacks parameter {piece.name}")
        if shapes[piece.name] != list(piece.shape):
            raise AlbertError(
                f"{where}: {piece.name} has shape {tuple(shapes[piece.name])}, this model {piece.shape}"
            )
        if covered[piece.name] != math.prod(piece.shape):
            raise AlbertError(f"{where}: the optimiser state covers only part of {piece.name}")
        fields = whole[piece.name]
        own = state[piece.master]
        for key, value in fields.items():
            if key == "fp32":
                target = piece.master
            else:
                if key not in own:
                    own[key] = torch.zeros_like(piece.master, dtype=torch.float32)
                target = own[key]
            target.view(-1).narrow(0, piece.start, piece.length).copy_(
                value.narrow(0, piece.offset, piece.length)
            )
        if len(fields) > 1:
            for key, value in scalars.items():
                own[key] = value.clone() if isinstance(value, torch.Tensor) else value
    if zero_stage == 3:  # DeepSpeed's own path copies the fp32 partitions into the parameters
        inner_state = ds_compat.zero3_inner_state(ds_optimizer)
        ds_compat.zero3_load(
            ds_optimizer, inner_state, [flat.clone() for flat, _ in _masters(ds_optimizer) or []]
        )
    else:
        ds_compat.refresh_low_precision(ds_optimizer)


def rng_state() -> dict[str, torch.Tensor]:
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state()
    return out


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ----------------------------------------------------------------------------- save


def write_shard(directory: Path, rank: int, trainer_state: dict[str, Any]) -> None:
    """One rank's optimiser and RNG tensors in safetensors; their structure in the metadata."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(trainer_state, "s", tensors)
    save_safetensors(  # a full disk raises an OSError (WriteError), as every other write here
        tensors,
        directory / shard_name(rank),
        metadata={"format": "albertctl-trainer", "structure": dump_yaml(skeleton)},
    )


def read_shard(directory: Path, rank: int) -> dict[str, Any]:
    path = directory / shard_name(rank)
    skeleton = check_shard(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as err:
        raise AlbertError(f"{path}: unreadable checkpoint shard ({err})") from None
    return unflatten(skeleton, tensors)


def check_shard(path: Path) -> Any:
    """A trainer shard's structure, checked without loading its tensors: the metadata says
    albertctl-trainer, the structure is a well-formed skeleton (what `flatten` writes) whose
    every tensor is in the file, and it holds the RNG state."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as err:
        raise AlbertError(f"{path}: unreadable checkpoint shard ({err})") from None
    if meta.get("format") != "albertctl-trainer" or "structure" not in meta:
        raise AlbertError(f"{path}: not an albertctl trainer shard (no structure in its metadata)")
    skeleton = parse_yaml(meta["structure"], f"{path} (structure)")
    problem = _skeleton_problem(skeleton, keys)
    if problem is None:
        top = dict(skeleton["dict"]) if "dict" in skeleton else {}
        rng = top.get("rng", {}).get("dict", [])
        if not any(k == "torch" for k, _ in rng):
            problem = "no RNG state"
        elif any(k in top and "dict" not in top[k] for k in ("optimizer", "universal")):
            problem = "the optimiser state is not a mapping"
    if problem is not None:
        raise AlbertError(f"{path}: corrupt trainer shard structure ({problem})")
    return skeleton


def _skeleton_problem(node: Any, keys: set[str]) -> str | None:
    """What is wrong with a flattened structure, or None: every node is a one-key mapping
    {tensor: key in the file} | {value: scalar} | {list: [nodes]} | {dict: [[key, node]]}."""
    stack = [node]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or len(node) != 1:
            return f"expected a one-key mapping, got {quote(node)}"
        kind, value = next(iter(node.items()))
        if kind == "tensor":
            if value not in keys:
                return f"tensor {quote(value)} is not in the file"
        elif kind == "value":
            if not (value is None or isinstance(value, bool | int | float | str)):
                return f"value {quote(value)} is not a scalar"
        elif kind == "list" and isinstance(value, list):
            stack.extend(value)
        elif kind == "dict" and isinstance(value, list):
            for pair in value:
                if not (isinstance(pair, list) and len(pair) == 2):
                    return f"dict entry {quote(pair)} is not a [key, value] pair"
                stack.append(pair[1])
        else:
            return f"unknown node {quote(node)}"
    return None


def begin(root: Path, step: int) -> Path:
    """Rank 0: a fresh temporary directory for checkpoint `step`."""
    tmp = root / f".{checkpoint_name(step)}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def finish(root: Path, tmp: Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Rank 0, after every rank wrote its shard: state.yaml, manifest, rename, prune."""
    (tmp / STATE).write_text(dump_yaml(state), encoding="utf-8")
    write_manifest(tmp, {"kind": KIND, "step": step})
    honour_umask(tmp)
    fsync_tree(tmp)
    target = root / checkpoint_name(step)
    if target.exists():  # a broken checkpoint of this step that --resume skipped
        if not owns_checkpoint(target):
            raise AlbertError(f"{target} exists and is not an albertctl checkpoint; move it out of {root}")
        shutil.rmtree(target)
    os.replace(tmp, target)
    fsync_dir(root)
    prune(root, keep_last)
    return target


def abandon(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)


def disk_error(err: OSError, step: int, root: Path) -> AlbertError:
    previous = latest_names(root)
    kept = f"; the last good checkpoint {root / previous[0]} is intact" if previous else ""
    reason = "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return AlbertError(f"could not save the checkpoint for step {step} under {root}: {reason}{kept}")


def prune(root: Path, keep_last: int) -> None:
    """Remove all but the newest `keep_last` checkpoints; never a directory albertctl did not write."""
    for name in latest_names(root)[keep_last:]:
        if owns_checkpoint(root / name):
            shutil.rmtree(root / name, ignore_errors=True)


def owns_checkpoint(path: Path) -> bool:
    return manifest_owns(path, lambda m: m.get("kind") == KIND, MANIFEST)


def latest_names(root: Path) -> list[str]:
    """Complete checkpoint directory names, newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if p.is_dir() and (m := NAME.match(p.name))]
    return [name for _, name in sorted(found, reverse=True)]


# ----------------------------------------------------------------------------- resume


def find_latest_good(root: Path, warn: Callable[[str], None]) -> Path | None:
    """The newest checkpoint that passes `check_checkpoint`; broken newer ones are reported
    via `warn`."""
    for name in latest_names(root):
        path = root / name
        try:
            check_checkpoint(path)
        except AlbertError as err:
            warn(f"skipping checkpoint {path}: {err}")
            continue
        return path
    return None


def check_checkpoint(path: Path) -> Path:
    """`path` if it is a complete training checkpoint: its manifest verifies, its state.yaml is
    sound (and its step matches a step-N name) and its trainer shards hold their structure.
    AlbertError otherwise, pointing at a run directory's checkpoints when given one."""
    if not path.is_dir():
        raise AlbertError(f"{path}: no such checkpoint directory")
    if not (path / STATE).is_file():
        if (path / "checkpoints").is_dir():
            raise AlbertError(
                f"{path} is a run directory, not a checkpoint: pass one of {path / 'checkpoints'}/step-N, "
                f"or --resume --out {path} for its latest"
            )
        raise AlbertError(f"{path}: not a training checkpoint (no {STATE}; expected RUN/checkpoints/step-N)")
    verify_manifest(path)
    state = read_state(path)
    named = NAME.match(path.name)
    if named and state["step"] != int(named.group(1)):
        raise AlbertError(f"{path / STATE}: step {state['step']} does not match the directory name")
    ranks = shard_ranks(path)
    if not ranks:
        raise AlbertError(f"{path}: no trainer shard")
    for rank in ranks:
        check_shard(path / shard_name(rank))
    return path


def shard_ranks(path: Path) -> list[int]:
    """The ranks whose trainer shards checkpoint `path` holds, in order."""
    return sorted(int(m.group(1)) for p in path.iterdir() if (m := SHARD.match(p.name)))


def read_state(path: Path) -> dict[str, Any]:
    """state.yaml, with `step` a non-negative integer and the rest mappings where expected."""
    try:
        text = (path / STATE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AlbertError(f"{path / STATE}: unreadable ({err})") from None
    state = parse_yaml(text, str(path / STATE))
    if not isinstance(state, dict) or "step" not in state:
        raise AlbertError(f"{path / STATE}: not a training state file")
    step = state["step"]
    if type(step) is not int or step < 0:
        raise AlbertError(f"{path / STATE}: step must be a non-negative integer, got {quote(step)}")
    for key in ("identity", "best"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            raise AlbertError(f"{path / STATE}: {key} must be a mapping, got {quote(state[key])}")
    return state


# What a universal checkpoint may change on resume (the old format may not).
LAYOUT_KEYS = ("world_size", "zero_stage")


def check_compatible(path: Path, state: dict[str, Any], expected: dict[str, Any]) -> None:
    """The checkpoint must come from the same kind of run (profile, shape; the world size and
    ZeRO stage too unless its optimiser state is universal)."""
    saved = state.get("identity", {})
    universal = state.get("optimizer_format") == UNIVERSAL
    for key, value in expected.items():
        if key not in saved or saved[key] == value or (universal and key in LAYOUT_KEYS):
            continue
        if key in LAYOUT_KEYS:
            raise AlbertError(
                f"{path} was written before per-parameter (universal) optimiser state, on world_size="
                f"{saved.get('world_size')} with zero_stage={saved.get('zero_stage')}: resume it with "
                f"those (this run: world_size={expected.get('world_size')}, "
                f"zero_stage={expected.get('zero_stage')})"
            )
        old = saved[key]
        if isinstance(value, dict) and isinstance(old, dict):
            diff = [k for k in sorted(set(old) | set(value)) if old.get(k) != value.get(k)]
            were = ", ".join(f"{key}.{k}={old.get(k)}" for k in diff)
            now = ", ".join(f"{key}.{k}={value.get(k)}" for k in diff)
        else:
            were, now = f"{key}={old}", f"{key}={value}"
        raise AlbertError(
            f"{path} was written by a different run ({were}; this run: {now}); "
            f"use a new --out or the matching profile"
        )


def with_suppressed(fn: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):
        fn()


# ----------------------------------------------------------------------------- the run directory


@contextlib.contextmanager
def run_directory(
    out: Path, replaced: Sequence[str] = (), inputs: Iterable[Path | str | None] = (), hold: bool = True
) -> Iterator[None]:
    """Check and lock a run directory for the whole run (`hold`: rank 0).

    The run adds checkpoints/, metrics.jsonl and tensorboard/ to `out` and replaces the model
    directories named in `replaced` (pretrain: model, finetune: best); those must be absent,
    empty or albertctl model directories, and no input may be `out` or lie in what is replaced.
    A second process on the same `out` gets one line. Stale `.step-N.tmp` of a killed run are
    removed. A run that fails leaves no directory it created behind, if it wrote nothing."""
    out = Path(out)
    inputs = list(inputs)
    check_run_directory(out, replaced, inputs)
    if not hold:
        yield
        return
    made = outputs.make_dirs(out)
    try:
        with outputs.lock(out / outputs.RUN_LOCK, out):
            check_run_directory(out, replaced, inputs)
            root = out / "checkpoints"
            if root.is_dir():
                for tmp in root.glob(".step-*.tmp"):
                    shutil.rmtree(tmp, ignore_errors=True)
            yield
    except OSError as err:  # metrics.jsonl, tensorboard/ or model/ on a full or read-only disk
        outputs.remove_empty(made)
        if isinstance(err, outputs.WriteError):
            raise
        raise outputs.write_error(out, err) from None
    except BaseException:
        outputs.remove_empty(made)
        raise


def check_run_directory(out: Path, replaced: Sequence[str], inputs: Iterable[Path | str | None]) -> None:
    """The one-line refusals of `run_directory`, without locking (quick, before any work)."""
    inputs = list(inputs)
    outputs.check_output(out, None, "", inputs=inputs)
    for name in replaced:
        outputs.check_output(out / name, owns_model_dir, "an albertctl model directory", inputs=inputs)
    metrics = out / METRICS
    if metrics.is_file() and not _is_metrics_log(metrics):
        raise AlbertError(f"{metrics} exists and is not an albertctl metrics log; choose another --out")


def _is_metrics_log(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline(1 << 16)
        return first == "" or isinstance(json.loads(first).get("event"), str)
    except (OSError, ValueError, AttributeError):
        return False
