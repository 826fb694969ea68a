"""Several processes through DeepSpeed's launcher, for every command that trains.

`albertctl pretrain|finetune --num-gpus N [--num-nodes M --hostfile H] ...` re-runs itself as
`deepspeed ... --module albertctl pretrain|finetune ...` (without the launcher options) with
ALBERTCTL_LAUNCHED=1 set; each rank then runs the command as one process of the job, and the
training loop (training/loop.py) reads its rank and world size from the launcher's environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from albertctl.core.errors import AlbertError
from albertctl.core.net import free_port

LAUNCHED = "ALBERTCTL_LAUNCHED"
OPTIONS = ("--num-gpus", "--num-nodes", "--hostfile")


def launched() -> bool:
    """Whether this process is one rank of a job that `relaunch` started."""
    return os.environ.get(LAUNCHED) == "1"


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size(num_gpus: int | None, num_nodes: int | None) -> int:
    """The job's world size: the launcher's, inside a launched rank; else what the options ask."""
    if launched():
        return int(os.environ.get("WORLD_SIZE", "1"))
    return (num_gpus or 1) * (num_nodes or 1)


def wanted(num_gpus: int | None, num_nodes: int | None, hostfile: Path | None) -> bool:
    """Whether the options ask for the launcher (and this process is not one of its ranks)."""
    return not launched() and ((num_gpus or 1) > 1 or num_nodes is not None or hostfile is not None)


def relaunch_if_wanted(
    num_gpus: int | None, num_nodes: int | None, hostfile: Path | None, check: Callable[[int], object]
) -> int | None:
    """When the options ask for the launcher: `check(world_size)` (user errors before any process
    starts), then this command again on every rank; the launcher's exit status. None: run here."""
    if not wanted(num_gpus, num_nodes, hostfile):
        return None
    check(world_size(num_gpus, num_nodes))
    return relaunch(sys.argv[1:], num_gpus, num_nodes, hostfile)


def relaunch(argv: list[str], num_gpus: int | None, num_nodes: int | None, hostfile: Path | None) -> int:
    """Run `albertctl ARGV` on every rank through DeepSpeed's launcher; its exit status."""
    cmd = launcher_command(argv, num_gpus, num_nodes, hostfile)
    env = {**os.environ, LAUNCHED: "1"}
    try:
        import torch

        if not torch.cuda.is_available():
            env.setdefault("DS_ACCELERATOR", "cpu")
    except ImportError:
        pass
    return subprocess.call(cmd, env=env)


def launcher_command(
    argv: list[str], num_gpus: int | None, num_nodes: int | None, hostfile: Path | None
) -> list[str]:
    """`deepspeed [--num_gpus N] [--num_nodes M] [--hostfile H] --module albertctl ARGV` with our
    launcher options removed from ARGV (every rank then runs `albertctl ARGV`)."""
    launcher = shutil.which("deepspeed") or str(Path(sys.executable).parent / "deepspeed")
    if not Path(launcher).exists():
        raise AlbertError("--num-gpus/--num-nodes/--hostfile need DeepSpeed's launcher (`deepspeed`) on PATH")
    if hostfile is not None and not hostfile.is_file():
        raise AlbertError(f"--hostfile {hostfile} not found")
    cmd = [launcher]
    if num_gpus is not None:
        cmd += ["--num_gpus", str(num_gpus)]
    if num_nodes is not None:
        cmd += ["--num_nodes", str(num_nodes)]
    if hostfile is not None:
        cmd += ["--hostfile", str(hostfile)]
    cmd += ["--master_port", str(free_port()), "--no_local_rank", "--module", "albertctl"]
    return cmd + strip_launcher_options(argv)


def strip_launcher_options(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out
