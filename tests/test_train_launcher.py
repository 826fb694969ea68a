"""Two CPU ranks through DeepSpeed's launcher: ZeRO-2 matches one rank with accumulation, with
AdamW and with LAMB (whose trust ratios are per parameter although each rank holds half of
a flat buffer), and so does LAMB under ZeRO-3; all three equal the original optimisers'
update (tests/original_optimizers.py) to 1e-6; ZeRO-3 + bf16 trains, checkpoints and resumes.
One launch (~20 s) covers all of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import original_optimizers as O
import pretrain_synthetic as S
import pytest
import torch
from safetensors.torch import load_file

from albertctl.core.net import free_port
from albertctl.training import loop

pytestmark = pytest.mark.launcher

NO_DROPOUT = {"classifier_dropout_prob": 0.0}
SCRIPT = Path(__file__).parent / "launch_synthetic.py"


def losses(run: Path) -> list[float]:
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [e["loss"] for e in events if e["event"] == "train"]


@pytest.mark.skipif(
    shutil.which("deepspeed") is None and not (Path(sys.executable).parent / "deepspeed").exists(),
    reason="deepspeed launcher not installed",
)
def test_two_ranks_zero2_match_one_rank_with_accumulation_and_zero3_bf16_runs(tmp_path):
    runs = [
        # Dropout draws differ between one and two ranks, so the comparison runs without it.
        {
            "out": str(tmp_path / "z2"),
            "train": {"optimizer": "adamw", "global_batch_size": 8, "train_steps": 4},
            "deepspeed": {"zero_stage": 2},
            "model": NO_DROPOUT,
        },
        {
            "out": str(tmp_path / "z2-lamb"),
            "train": {"optimizer": "lamb", "global_batch_size": 8, "train_steps": 4},
            "deepspeed": {"zero_stage": 2},
            "model": NO_DROPOUT,
        },
        {
            "out": str(tmp_path / "z3-lamb"),
            "train": {"optimizer": "lamb", "global_batch_size": 8, "train_steps": 4},
            "deepspeed": {"zero_stage": 3},
            "model": NO_DROPOUT,
        },
        {
            "out": str(tmp_path / "z3"),
            "train": {"global_batch_size": 8, "train_steps": 2, "save_every": 2, "precision": "bf16"},
            "deepspeed": {"zero_stage": 3},
        },
        {
            "out": str(tmp_path / "z3"),
            "train": {"global_batch_size": 8, "train_steps": 3, "save_every": 2, "precision": "bf16"},
            "deepspeed": {"zero_stage": 3},
            "resume": True,
        },
    ]
    launcher = Path(sys.executable).parent / "deepspeed"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(Path(__file__).parents[1])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "MASTER_ADDR"):
        env.pop(key, None)
    proc = subprocess.run(
        [
            str(launcher),
            "--num_gpus",
            "2",
            "--master_port",
            str(free_port()),
            str(SCRIPT),
            *(json.dumps(r) for r in runs),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # The same global batch on one rank: micro-batch 4, accumulation 2, no ZeRO, same init.
    for optimizer, runs_on_two in (("adamw", ["z2"]), ("lamb", ["z2-lamb", "z3-lamb"])):
        p = S.profile(NO_DROPOUT, optimizer=optimizer, global_batch_size=8, train_steps=4)
        single = tmp_path / f"single-{optimizer}"
        loop.train(S.spec(p, single), p.train, p.deepspeed)
        one = losses(single)
        b = load_file(str(single / "checkpoints/step-00000004/model/model.safetensors"))
        original = O.synthetic_run(p)  # google-research/albert's LAMB / AdamWeightDecayOptimizer
        for name in runs_on_two:
            two = losses(tmp_path / name)
            assert len(two) == len(one) == 4
            assert two == pytest.approx(one, abs=1e-4, rel=1e-4), name
            a = load_file(str(tmp_path / name / "checkpoints/step-00000004/model/model.safetensors"))
            for k in a:
                torch.testing.assert_close(
                    a[k], b[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k, name=name: f"{name} {k}: {m}"
                )
            assert set(a) == set(original)
            for k in original:
                torch.testing.assert_close(
                    a[k],
                    original[k],
                    rtol=0,
                    atol=1e-6,
                    msg=lambda m, k=k, name=name: f"{name} {k} vs original: {m}",
                )

    z3 = losses(tmp_path / "z3")
    assert len(z3) == 3 and all(x == x and x < 10 for x in z3)  # 2 steps, then 1 resumed
    assert "finished " + str(tmp_path / "z3") + " 3" in proc.stdout
    state = (tmp_path / "z3/checkpoints/step-00000003/state.yaml").read_text()
    assert "zero_stage: 3" in state and "world_size: 2" in state
