"""Shared helpers for the bench scripts: machine description, weight copying, output.

Benchmarks time albertctl and a peer (transformers) in the same process, alternating runs,
and report ratios; absolute numbers depend on the machine and what else runs on it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

from albertctl.core.config import ModelConfig


def machine() -> dict:
    info = {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": "cpu",
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    else:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def alternate(
    runs: dict[str, Callable[[], None]], rounds: int, device: torch.device
) -> dict[str, list[float]]:
    """Time each callable `rounds` times, interleaved (a, b, a, b, ...), in seconds."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in runs.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def hf_config(cfg: ModelConfig):
    """The transformers config of `cfg`: the fields `albertctl convert --to hf` writes."""
    import transformers

    from albertctl.convert.names import CONFIG_FIELDS

    return transformers.AlbertConfig(**{k: getattr(cfg, k) for k in CONFIG_FIELDS}, hidden_act=cfg.hidden_act)


def copy_weights(ours: torch.nn.Module, hf: torch.nn.Module) -> None:
    """Our state dict uses the reference port's key names; only the tied decoder differs."""
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("predictions.decoder") for k in missing), missing


def peak_memory(device: torch.device) -> int:
    """Peak memory of this process so far: resident set on CPU, allocator peak on GPU (bytes)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across fork+exec
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child_peak_memory(script: Path, args: list[str]) -> int:
    """Run `script --child ...` in a fresh process (so peaks don't mix) and read its JSON line."""
    out = subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True, text=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_memory"])


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
