"""The machine a run trains on: its name, memory and a quickly measured matmul peak.

Used to say, before a run starts, how long a step should take (FLOPs per step over the peak)
and whether the model fits; nothing here knows about ALBERT.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" | "cpu"
    name: str  # "NVIDIA H100 80GB HBM3", "AMD EPYC 7B13 (2 threads)"
    memory_bytes: int  # the GPU's memory, or the machine's RAM (shared by every CPU rank)


def current(local_rank: int = 0) -> Device:
    """This process's training device: GPU `local_rank` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        index = local_rank % torch.cuda.device_count()
        props = torch.cuda.get_device_properties(index)
        return Device("cuda", props.name, int(props.total_memory))
    name = _cpuinfo("model name") or "CPU"
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 0
    return Device("cpu", f"{name} ({torch.get_num_threads()} threads)", int(ram))


# CPU instructions that run a precision natively; without them its matmuls are emulated (an AMD
# EPYC without AVX-512 took 40x fp32's time for a bf16 linear layer's forward and backward).
NATIVE_CPU_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def _cpuinfo(field: str) -> str | None:
    """The first `field` of /proc/cpuinfo (e.g. "model name", "flags"); None when unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo); empty when unknown."""
    return frozenset((_cpuinfo("flags") or "").split())


def cpu_emulates(precision: str) -> bool:
    """True when this CPU has none of `NATIVE_CPU_FLAGS[precision]` (bf16/fp16); False for fp32
    and when the flags are unknown."""
    need = NATIVE_CPU_FLAGS.get(precision)
    flags = cpu_flags()
    return bool(need and flags and not flags & set(need))


def matmul_peak(
    kind: str, precision: str = "fp32", n: int | None = None, repeats: int = 3, cpu_in_precision: bool = False
) -> float:
    """FLOP/s of a square matmul, best of `repeats`: the device's practical peak. On a GPU in the
    run's precision, 4096 wide (the kernel, not its launch, is timed); on a CPU in fp32, 1024 wide
    (CPUs without bf16 instructions take seconds for one bf16 matmul). A fraction of a second.
    `cpu_in_precision` times the CPU in `precision` too (bench/, on CPUs with bf16 units)."""
    device = torch.device(kind)
    dtype = _DTYPES[precision] if kind == "cuda" or cpu_in_precision else torch.float32
    n = n or (4096 if kind == "cuda" else 1024)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    a @ b  # warm-up: kernel selection, first-touch allocation
    _sync(kind)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _sync(kind)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / max(best, 1e-9)


def _sync(kind: str) -> None:
    if kind == "cuda":
        torch.cuda.synchronize()
