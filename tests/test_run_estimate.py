"""`pretrain --dry-run` and the start of every run: device, world size, time per step and for the
run (training FLOPs over a measured matmul peak), and a warning when a profile is far too big."""

from __future__ import annotations

import json

import pytest

from albertctl.core.config import load_profile
from albertctl.pipelines import pretrain
from albertctl.pipelines import profile as profile_summary
from albertctl.training import device

GIB = 1024**3


@pytest.fixture
def machine(monkeypatch):
    """A CPU machine with 8 GiB of RAM, a 100 GFLOP/s matmul peak and bf16 instructions."""
    monkeypatch.setattr(device, "current", lambda local_rank=0: device.Device("cpu", "test CPU", 8 * GIB))
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    monkeypatch.setattr(device, "matmul_peak", lambda kind, precision="fp32": 1e11)


def test_time_is_flops_per_step_over_the_peak(machine):
    prof = load_profile("tiny")
    s = profile_summary.summary(prof, 1)
    est = pretrain.estimate(prof, 1)
    per_step = s["training_flops_per_token"] * 16 * 64 / 1e11
    assert est["estimated_seconds_per_step"] == pytest.approx(per_step, rel=1e-12)
    assert est["estimated_run_seconds"] == pytest.approx(per_step * 6000, rel=1e-12)
    assert (est["device"], est["world_size"], est["warnings"]) == ("cpu: test CPU", 1, [])
    line = pretrain.estimate_line(est, 6000)
    assert line.startswith(
        "cpu: test CPU, world size 1: estimated 0.0201 s per step, 2.01 min for 6000 steps"
    )


def test_xxlarge_on_a_cpu_warns_time_and_memory(machine):
    prof = load_profile("xxlarge", ["train.micro_batch_size=64"])
    warnings = pretrain.estimate(prof, 1)["warnings"]
    assert len(warnings) == 2
    # 13,812,390,912 FLOPs per token x 4096 x 512 tokens per step / 1e11 FLOP/s = 289,668 s a step
    assert warnings[0] == (
        "profile 'xxlarge' is far too big for this machine: 125000 steps take at least 1.15e+03 years "
        "on 1 CPU process(es) (3.35 days per step at the measured matmul peak); "
        "use more GPUs (--num-gpus, --num-nodes) or a smaller profile"
    )
    assert warnings[1].startswith("profile 'xxlarge' needs about ")
    assert "this machine has 8.0 GiB of RAM" in warnings[1]


def test_bf16_on_a_cpu_without_bf16_instructions_warns(machine, monkeypatch):
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    warnings = pretrain.estimate(load_profile("tiny", ["train.precision=bf16"]), 1)["warnings"]
    assert warnings == [
        "train.precision is bf16, but this CPU has no bf16 instructions (avx512_bf16 or amx_bf16): its "
        "matmuls are emulated, tens of times slower than fp32; use --set train.precision=fp32"
    ]
    assert pretrain.estimate(load_profile("tiny"), 1)["warnings"] == []  # fp32
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert pretrain.estimate(load_profile("tiny", ["train.precision=bf16"]), 1)["warnings"] == []
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset())  # unknown: no guess
    assert pretrain.estimate(load_profile("tiny", ["train.precision=bf16"]), 1)["warnings"] == []


def test_gpus_divide_the_step(monkeypatch):
    monkeypatch.setattr(device, "current", lambda local_rank=0: device.Device("cuda", "test GPU", 80 * GIB))
    monkeypatch.setattr(device, "matmul_peak", lambda kind, precision="fp32": 1e15)
    prof = load_profile("base")
    one, eight = pretrain.estimate(prof, 1), pretrain.estimate(prof, 8)
    assert eight["estimated_seconds_per_step"] == pytest.approx(one["estimated_seconds_per_step"] / 8)
    assert eight["warnings"] == []


def test_matmul_peak_is_measured_quickly():
    assert device.matmul_peak("cpu", n=128, repeats=1) > 0
    assert device.current().kind in ("cpu", "cuda")


def test_dry_run_says_device_and_time(run_cli, tmp_path):
    result = run_cli(["pretrain", "--profile", "tiny", "--dry-run", "--json"], cwd=tmp_path, timeout=60)
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["device"].split(":")[0] in ("cpu", "cuda") and plan["world_size"] == 1
    assert plan["estimated_run_seconds"] == pytest.approx(plan["estimated_seconds_per_step"] * 6000)
    assert plan["matmul_peak_flops"] > 0 and plan["warnings"] == []
    assert list(tmp_path.iterdir()) == []


def test_xxlarge_dry_run_on_this_machine_warns(run_cli, tmp_path):
    result = run_cli(["pretrain", "--profile", "xxlarge", "--dry-run"], cwd=tmp_path, timeout=60)
    assert result.exit_code == 0, result.stderr
    assert "estimated_seconds_per_step" in result.stdout and "device" in result.stdout
    # on a CPU: years; on one H100 too (2.9e16 FLOPs a step at ~7e14 FLOP/s: ~60 days)
    assert "warning: profile 'xxlarge' is far too big for this machine" in result.stderr
