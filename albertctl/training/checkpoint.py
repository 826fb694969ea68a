"""Training checkpoints: safetensors + YAML, written atomically, the last K kept.

    RUN_DIR/checkpoints/step-00000200/
      model/                          an albertctl model directory (finetune, eval, convert read it)
      trainer-rank00000.safetensors   this rank's optimiser tensors and RNG state; the nested
                                      structure of the optimiser state (YAML) in its metadata
      state.yaml                      step, data position, schedule, identity, best eval
      manifest.json                   every file's size and sha256 (core.modeldir format)

Nothing is pickled, which is why DeepSpeed's own `save_checkpoint` is not used. Under ZeRO 1-3
each rank saves its own partition of the fp32 master weights and optimiser moments; resuming
needs the same world size and ZeRO stage (checked). Without ZeRO the optimiser state is whole
and rank 0 saves it.

A checkpoint is written to `.step-N.tmp` and renamed when complete, so a crash or a full disk
never leaves a partial `step-N`; `--resume` also skips, with a warning, any checkpoint whose
manifest does not verify.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import _fsync_dir, _fsync_tree, honour_umask, verify_manifest, write_manifest
from albertctl.core.safeload import dump_yaml, parse_yaml, quote

STATE = "state.yaml"
MODEL = "model"
NAME = re.compile(r"^step-(\d+)$")


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
        inner = getattr(ds_optimizer, "optimizer", None)
        if isinstance(ds_optimizer, torch.optim.Optimizer) and inner is None:
            return {"optimizer": ds_optimizer.state_dict()}
        return {"optimizer": inner.state_dict(), "fp32": _fp32_master(ds_optimizer)}
    if zero_stage in (1, 2):
        return {
            "optimizer": ds_optimizer.optimizer.state_dict(),
            "fp32": list(ds_optimizer.single_partition_of_fp32_groups),
        }
    sd = ds_optimizer.state_dict()
    return {"optimizer": sd["optimizer_state_dict"], "fp32": list(sd["fp32_flat_groups"])}


def _fp32_master(ds_optimizer: Any) -> list[torch.Tensor]:
    groups = getattr(ds_optimizer, "fp32_groups_flat_partition", None) or getattr(
        ds_optimizer, "fp32_groups_flat", None
    )
    return list(groups or [])


@torch.no_grad()
def load_optimizer_state(ds_optimizer: Any, zero_stage: int, state: dict[str, Any]) -> None:
    if zero_stage == 0:
        inner = getattr(ds_optimizer, "optimizer", None)
        if isinstance(ds_optimizer, torch.optim.Optimizer) and inner is None:
            ds_optimizer.load_state_dict(state["optimizer"])
            return
        inner.load_state_dict(state["optimizer"])
        for current, saved in zip(_fp32_master(ds_optimizer), state.get("fp32", []), strict=True):
            current.copy_(saved)
        if hasattr(ds_optimizer, "update_lp_params"):
            ds_optimizer.update_lp_params()
        return
    if zero_stage in (1, 2):
        ds_optimizer.optimizer.load_state_dict(state["optimizer"])
        for current, saved in zip(ds_optimizer.single_partition_of_fp32_groups, state["fp32"], strict=True):
            current.copy_(saved)
        ds_optimizer.update_lp_params()
        return
    ds_optimizer._rigid_load_state_dict(
        {  # ZeRO-3: DeepSpeed's own restore, fed from safetensors
            "loss_scaler": ds_optimizer.loss_scaler,
            "dynamic_loss_scale": ds_optimizer.dynamic_loss_scale,
            "overflow": False,
            "optimizer_state_dict": state["optimizer"],
            "fp32_flat_groups": state["fp32"],
        }
    )


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
    save_file(
        tensors,
        str(directory / shard_name(rank)),
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
        elif "optimizer" in top and "dict" not in top["optimizer"]:
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
    write_manifest(tmp, {"kind": "training-checkpoint", "step": step})
    honour_umask(tmp)
    _fsync_tree(tmp)
    target = root / checkpoint_name(step)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    _fsync_dir(root)
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
    for name in latest_names(root)[keep_last:]:
        shutil.rmtree(root / name, ignore_errors=True)


def latest_names(root: Path) -> list[str]:
    """Complete checkpoint directory names, newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if p.is_dir() and (m := NAME.match(p.name))]
    return [name for _, name in sorted(found, reverse=True)]


# ----------------------------------------------------------------------------- resume


def find_latest_good(root: Path, warn: Callable[[str], None]) -> Path | None:
    """The newest checkpoint whose manifest verifies, whose state.yaml is sound and whose
    trainer shards hold their structure; broken newer ones are reported via `warn`."""
    for name in latest_names(root):
        path = root / name
        try:
            verify_manifest(path)
            state = read_state(path)
            if state["step"] != int(NAME.match(name).group(1)):  # type: ignore[union-attr]
                raise AlbertError(f"{path / STATE}: step {state['step']} does not match the directory name")
            shards = sorted(path.glob("trainer-rank*.safetensors"))
            if not shards:
                raise AlbertError(f"{path}: no trainer shard")
            for shard in shards:
                check_shard(shard)
        except AlbertError as err:
            warn(f"skipping checkpoint {path}: {err}")
            continue
        return path
    return None


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


def check_compatible(path: Path, state: dict[str, Any], expected: dict[str, Any]) -> None:
    """The checkpoint must come from the same kind of run (profile, shape, world size, ZeRO)."""
    saved = state.get("identity", {})
    for key, value in expected.items():
        if key not in saved or saved[key] == value:
            continue
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
