"""Starting DeepSpeed's communication, and the few collectives the loop and evaluation need.

Under a launcher (`deepspeed`, `torchrun`) the environment already says who this process is
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and nothing here changes it. Without
one, DeepSpeed still reads them while it starts (its process group, the engine's device):
`single_process_env` supplies them for exactly that long and then puts the environment back, so
a later subprocess never mistakes itself for a launched rank or reuses a port this process
holds. LOCAL_RANK alone stays set ("0", as a launcher sets it for one rank per node): ZeRO-3 reads
it on every forward pass, not only while starting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from albertctl.core.net import free_port

_LAUNCH_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int


def launched() -> bool:
    """True when a launcher started this process as one rank of several (or of one)."""
    return "RANK" in os.environ


def current() -> Distributed:
    """This process's rank, world size and local rank (rank 0 of 1 without a launcher)."""
    if not launched():
        return Distributed(0, 1, 0)
    env = os.environ
    return Distributed(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))


@contextlib.contextmanager
def single_process_env() -> Iterator[None]:
    """While DeepSpeed starts in a process no launcher started: RANK=0, WORLD_SIZE=1,
    LOCAL_RANK=0 and a free MASTER_PORT on 127.0.0.1 (a MASTER_ADDR/MASTER_PORT already set
    is kept). The variables are restored on exit. Under a launcher: nothing changes."""
    if launched():
        yield
        return
    saved = {key: os.environ.get(key) for key in _LAUNCH_KEYS}
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def init_distributed() -> Distributed:
    """Start DeepSpeed's communication once per process (later calls only return who we are),
    on the CPU accelerator when there is no GPU."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported
    if not launched():
        os.environ.setdefault("LOCAL_RANK", "0")  # read by ZeRO-3 in every forward pass
    import deepspeed

    if not deepspeed.comm.is_initialized():
        _skip_cpu_inference_op()
        with single_process_env(), quiet_deepspeed():
            deepspeed.init_distributed(verbose=False)
    return current()


def _skip_cpu_inference_op() -> None:
    """On the CPU accelerator DeepSpeed JIT-compiles its shared-memory all-reduce op
    (deepspeed_shm_comm) when communication starts, although only its inference all-reduce uses
    it; training reduces through torch.distributed (gloo) either way. The build costs about a
    minute on first use, and one killed half-way leaves torch's build lock behind, after which
    every later start waits on it forever. Mark the op unavailable: DeepSpeed then skips it."""
    from deepspeed import ops
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() == "cpu":
        ops.__compatible_ops__["deepspeed_shm_comm"] = False


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum a list of numbers over all ranks, in float64 (a no-op with one process)."""
    if _world_size() == 1:
        return list(values)
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    t = torch.tensor(values, dtype=torch.float64, device=get_accelerator().current_device_name())
    deepspeed.comm.all_reduce(t)
    return t.tolist()


def any_rank(value: bool) -> bool:
    """True when `value` is True on any rank (every rank must call it)."""
    return all_reduce_sum([1.0 if value else 0.0])[0] > 0


def barrier() -> None:
    if _world_size() > 1:
        import deepspeed

        deepspeed.comm.barrier()


# What DeepSpeed printed while starting (op builds, banners, warnings), kept for RUN/deepspeed.log.
_CHATTER: list[str] = []


def take_chatter() -> str:
    """What DeepSpeed printed while starting since the last call, then forget it."""
    text = "".join(_CHATTER)
    _CHATTER.clear()
    return text


@contextlib.contextmanager
def quiet_deepspeed() -> Iterator[None]:
    """DeepSpeed prints op builds, its config and ZeRO banners on every start, some from compiler
    subprocesses: catch both file descriptors, so none of it reaches the user's terminal. The text
    is kept for `take_chatter` (the loop writes it to RUN/deepspeed.log), also when starting fails."""
    logger = logging.getLogger("DeepSpeed")
    level = logger.level
    logger.setLevel(logging.WARNING)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            logger.setLevel(level)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            if text.strip():
                _CHATTER.append(text)
