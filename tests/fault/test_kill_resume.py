"""Crash safety of `albertctl pretrain`: SIGKILL at seeded random moments (some while a
checkpoint is being written), `--resume` after each, and the final weights, optimiser state
and per-step losses must equal an uninterrupted run bit for bit. SIGTERM and SIGINT save a
final checkpoint and exit cleanly; a corrupt latest checkpoint is skipped on resume.

A model of ~140k parameters, batch 4, a checkpoint every step: a run takes seconds on CPU.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

STEPS = 14
SMALL = [
    "--profile", "tiny",
    "--set", "model.embedding_size=32", "--set", "model.hidden_size=32",
    "--set", "model.num_attention_heads=2", "--set", "model.intermediate_size=64",
    "--set", "model.num_hidden_layers=1",
    "--set", "train.global_batch_size=4", "--set", "train.micro_batch_size=4",
    "--set", "train.warmup_steps=4", "--set", f"train.train_steps={STEPS}",
    "--set", "train.save_every=1", "--set", "train.keep_last=2", "--set", "train.log_every=1",
]  # fmt: skip
KILL_POINTS = 5


def _env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "ALBERTCTL_NO_PROGRESS": "1", "COLUMNS": "200", "ALBERTCTL_CACHE": str(cache)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _start(cwd: Path, cache: Path, out: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "albertctl", "pretrain", *SMALL, "--out", out, *extra],
        cwd=cwd,
        env=_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _steps(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return sorted(int(p.name[5:]) for p in root.iterdir() if p.name.startswith("step-"))


def _tensors(ckpt: Path) -> dict[str, object]:
    out = {f"model/{k}": v for k, v in load_file(str(ckpt / "model" / "model.safetensors")).items()}
    out.update({f"trainer/{k}": v for k, v in load_file(str(ckpt / "trainer-rank00000.safetensors")).items()})
    return out


def _losses(run: Path) -> dict[int, float]:
    """The loss logged at each step; a resumed run appends, so the last record of a step wins."""
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "train":
            out[record["step"]] = record["loss"]
    return out


def _assert_identical(run: Path, reference: Path) -> None:
    last = f"checkpoints/step-{STEPS:08d}"
    got, want = _tensors(run / last), _tensors(reference / last)
    assert sorted(got) == sorted(want)
    different = [k for k in want if not (got[k].dtype == want[k].dtype and got[k].equal(want[k]))]
    assert different == []
    assert _losses(run) == _losses(reference)
    final = load_file(str(run / "model" / "model.safetensors"))
    assert all(final[k].equal(got[f"model/{k}"]) for k in final)  # the final model = the last checkpoint's


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache) -> Path:
    """The uninterrupted run (also prepares the built-in sample corpus into `cache`, once)."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = _start(cwd, cache, "run")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return cwd / "run"


def _wait_for(proc: subprocess.Popen, condition, timeout: float = 120, interval: float = 0.002) -> bool:
    """Poll until `condition()`; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(interval)
    return True


def test_sigkill_at_random_moments_then_resume_gives_identical_weights(tmp_path, cache, reference):
    rng = random.Random(10)
    root = tmp_path / "run" / "checkpoints"
    during_write = 0
    for i in range(KILL_POINTS):
        target = 2 * i + 1 + rng.randint(0, 1)  # kill once the run has reached about this step
        in_write = i % 2 == 0  # alternate: during a checkpoint write / at a random moment
        proc = _start(tmp_path, cache, "run", *(["--resume"] if i else []))
        reached = _wait_for(proc, lambda t=target: (s := _steps(root)) and s[-1] >= t, interval=0.05)
        assert reached, proc.stderr.read()[-3000:]
        if in_write:
            hit = _wait_for(
                proc, lambda: any(p.name.endswith(".tmp") for p in root.iterdir()), interval=0.0005
            )
            during_write += hit
            print(
                f"kill {i + 1}: step >= {target}, {'during a checkpoint write' if hit else 'after the run ended'}"
            )
        else:
            delay = rng.uniform(0.0, 0.5)
            time.sleep(delay)
            print(f"kill {i + 1}: step >= {target}, {delay:.3f} s later")
        proc.kill()
        proc.wait(timeout=60)
        proc.stderr.close()
    proc = _start(tmp_path, cache, "run", "--resume")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert during_write >= 1  # at least one kill landed while a checkpoint directory was half-written
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]
    _assert_identical(tmp_path / "run", reference)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_a_final_checkpoint_and_exits_cleanly(sig, tmp_path, cache, reference):
    root = tmp_path / "run" / "checkpoints"
    proc = _start(tmp_path, cache, "run")
    assert _wait_for(proc, lambda: (s := _steps(root)) and s[-1] >= 3, interval=0.05), proc.stderr.read()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    step = int(last.split("interrupted at step ")[1].split(";")[0])
    assert last == (
        f"error: interrupted at step {step}; checkpoint run/checkpoints/step-{step:08d} saved; "
        "continue with --resume --out run"
    )
    assert _steps(root)[-1] == step < STEPS
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]

    if sig == signal.SIGTERM:  # the interrupted run continues to the same weights
        proc = _start(tmp_path, cache, "run", "--resume")
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        _assert_identical(tmp_path / "run", reference)


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path, cache, reference):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    latest = run / "checkpoints" / f"step-{STEPS:08d}"
    weights = latest / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated, as a dying disk would leave it
    proc = _start(tmp_path, cache, "run", "--resume")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert (
        f"warning: skipping checkpoint run/checkpoints/step-{STEPS:08d}: {weights.relative_to(tmp_path)}: "
        in (stderr.replace("\n", " "))
    )
    _assert_identical(run, reference)  # retrained from step STEPS - 1 to the same weights
