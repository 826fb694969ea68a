"""`albertctl finetune --num-gpus 2` through DeepSpeed's launcher on CPU: two ranks with
micro-batch 4 take the same steps as one rank accumulating two micro-batches of 4 (global
batch 8), so the dev metrics and the weights agree to fp32 tolerance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from glue_fixtures import task_world, write_glue
from safetensors.torch import load_file

from albertctl.pipelines import finetune

pytestmark = pytest.mark.launcher

SETTINGS = [
    "task.max_seq_length=32",
    "task.train_steps=3",
    "task.batch_size=8",
    "task.micro_batch_size=4",
    "task.warmup_steps=1",
    "task.eval_batch_size=5",
]


@pytest.mark.skipif(not (Path(sys.executable).parent / "deepspeed").exists(), reason="no deepspeed launcher")
def test_finetune_on_two_ranks_equals_one_rank_with_the_same_global_batch(tmp_path, run_cli):
    world = task_world(tmp_path / "world")
    glue = write_glue(tmp_path / "glue_data")
    [one] = finetune.run("rte", world["model"], tmp_path / "one", glue, SETTINGS)
    sets = [x for s in SETTINGS for x in ("--set", s)]
    argv = ["finetune", "rte", "--model", str(world["model"]), "--data", str(glue), *sets]
    two = run_cli(
        [*argv, "--out", str(tmp_path / "two"), "--num-gpus", "2", "--json"],
        env={"PYTHONPATH": str(Path(__file__).parents[1]), "DS_ACCELERATOR": "cpu"},
    )
    assert two.exit_code == 0, two.stdout[-3000:] + two.stderr[-3000:]
    # DeepSpeed's launcher logs its own lines on stdout around rank 0's JSON (the only JSON printed).
    lines = two.stdout.splitlines()
    start = lines.index("{")
    end = len(lines) - lines[::-1].index("}")
    [result] = json.loads("\n".join(lines[start:end]))["results"]
    assert result["steps"] == one.steps == 3
    assert result["metrics"] == pytest.approx(one.metrics, abs=1e-6)
    state = (tmp_path / "two/checkpoints/step-00000003/state.yaml").read_text()
    assert "world_size: 2" in state and "accumulation: 1" in state
    last = "checkpoints/step-00000003/model/model.safetensors"
    a, b = load_file(str(tmp_path / "one" / last)), load_file(str(tmp_path / "two" / last))
    assert a.keys() == b.keys()
    moved = load_file(str(world["model"] / "model.safetensors"))
    assert any(not torch.equal(a[k], moved[k]) for k in a if k in moved)  # it trained
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
