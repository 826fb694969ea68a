"""Resuming from a named checkpoint, under another ZeRO stage (one process; the launcher test
covers other world sizes): the optimiser state is stored per parameter, so any layout reloads
it and ends where the uninterrupted run ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pretrain_synthetic as S
import pytest
import torch

from albertctl.core.errors import AlbertError
from albertctl.core.net import free_port
from albertctl.training import checkpoint as ckpt
from albertctl.training import loop

NO_DROPOUT = {"classifier_dropout_prob": 0.0}


def run(tmp: Path, name: str, stage: int, **kw) -> Path:
    p = S.profile(NO_DROPOUT, save_every=3).replace(deepspeed={"zero_stage": stage})
    loop.train(S.spec(p, tmp / name, **kw), p.train, p.deepspeed)
    return tmp / name


@pytest.mark.parametrize(("before", "after"), [(0, 2), (2, 3)])
def test_resume_from_a_named_checkpoint_under_another_zero_stage(tmp_path, before, after):
    straight = run(tmp_path, "straight", before)
    middle = straight / "checkpoints" / ckpt.checkpoint_name(3)
    assert "optimizer_format: universal" in (middle / ckpt.STATE).read_text()
    resumed = run(tmp_path, "resumed", after, resume_from=middle)
    assert ckpt.latest_names(resumed / "checkpoints") == ["step-00000006"]  # it started at step 3
    a, b = S.load_weights(straight, 6), S.load_weights(resumed, 6)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    # Without the optimiser state (moments restarted) the weights would differ far more.
    moved = max(float((S.load_weights(straight, 3)[k] - a[k]).abs().max()) for k in a)
    assert moved > 1e-3


def test_resume_from_refuses_what_is_not_a_checkpoint(tmp_path):
    straight = run(tmp_path, "straight", 0)
    p = S.profile(NO_DROPOUT)
    cases = [
        (tmp_path / "nowhere", "nowhere: no such checkpoint directory"),
        (straight, "is a run directory, not a checkpoint: pass one of"),
        (straight / "checkpoints", "not a training checkpoint (no state.yaml"),
    ]
    for path, message in cases:
        with pytest.raises(AlbertError, match=message.replace("(", r"\(")):
            loop.train(S.spec(p, tmp_path / "new", resume_from=path), p.train, p.deepspeed)


def test_universal_checkpoints_may_change_world_size_and_stage_but_old_ones_may_not(tmp_path):
    identity = {"profile": "tiny", "world_size": 1, "zero_stage": 0}
    saved = {"profile": "tiny", "world_size": 2, "zero_stage": 2}
    ckpt.check_compatible(tmp_path, {"identity": saved, "optimizer_format": "universal"}, identity)
    with pytest.raises(AlbertError, match="written before per-parameter .* world_size=2 with zero_stage=2"):
        ckpt.check_compatible(tmp_path, {"identity": saved}, identity)
    with pytest.raises(AlbertError, match="different run .profile=base"):
        ckpt.check_compatible(
            tmp_path, {"identity": {**saved, "profile": "base"}, "optimizer_format": "universal"}, identity
        )


def _launch(runs: list[dict]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(Path(__file__).parents[1])}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "MASTER_ADDR"):
        env.pop(key, None)
    launcher = Path(sys.executable).parent / "deepspeed"
    port = ["--master_port", str(free_port())]
    script = str(Path(__file__).parent / "launch_synthetic.py")
    args = [str(launcher), "--num_gpus", "2", *port, script, *(json.dumps(r) for r in runs)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.launcher
@pytest.mark.skipif(not (Path(sys.executable).parent / "deepspeed").exists(), reason="no deepspeed launcher")
def test_checkpoints_move_between_two_ranks_zero2_and_one_rank(tmp_path):
    """Global batch 8 throughout: 2 ranks x micro-batch 4 under ZeRO-2, or 1 rank x 4 x 2
    accumulation. Checkpoint at step 3 of 6; each resumed run ends where the 1-rank run ends."""
    train = {"global_batch_size": 8, "micro_batch_size": 4, "train_steps": 6, "save_every": 3}
    one = S.profile(NO_DROPOUT, **train)
    single = tmp_path / "single"
    loop.train(S.spec(one, single), one.train, one.deepspeed)  # ZeRO 0, 1 rank
    z2 = {"train": train, "deepspeed": {"zero_stage": 2}, "model": NO_DROPOUT}
    proc = _launch(
        [
            {**z2, "out": str(tmp_path / "two")},
            {
                **z2,
                "out": str(tmp_path / "from-one"),
                "resume_from": str(single / "checkpoints/step-00000003"),
            },
        ]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "finished " + str(tmp_path / "from-one") + " 6" in proc.stdout
    two_ranks_state = (tmp_path / "two/checkpoints/step-00000003" / ckpt.STATE).read_text()
    assert "world_size: 2" in two_ranks_state and "zero_stage: 2" in two_ranks_state
    z1 = one.replace(deepspeed={"zero_stage": 1})
    from_two = tmp_path / "from-two"
    loop.train(
        S.spec(z1, from_two, resume_from=tmp_path / "two/checkpoints/step-00000003"), z1.train, z1.deepspeed
    )
    want = S.load_weights(single, 6)
    for name in ("two", "from-one", "from-two"):
        got = S.load_weights(tmp_path / name, 6)
        assert got.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(
                got[k], want[k], rtol=0, atol=1e-5, msg=lambda m, k=k, name=name: f"{name} {k}: {m}"
            )


def test_a_checkpoint_of_the_old_format_resumes_on_its_own_layout_only(tmp_path, monkeypatch):
    """Before the universal format a shard held the DeepSpeed optimiser's own state dict."""
    with monkeypatch.context() as m:
        m.setattr(ckpt, "UNIVERSAL", "optimizer")  # the old key; state.yaml then says no "universal"
        m.setattr(ckpt, "universal_state", lambda ds_optimizer, *rest: ckpt.optimizer_state(ds_optimizer, 1))
        old = run(tmp_path, "old", 1)
    middle = old / "checkpoints" / ckpt.checkpoint_name(3)
    assert "optimizer_format: universal" not in (middle / ckpt.STATE).read_text()
    resumed = run(tmp_path, "resumed", 1, resume_from=middle)
    a, b = S.load_weights(old, 6), S.load_weights(resumed, 6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(AlbertError, match="written before per-parameter .* resume it with those"):
        run(tmp_path, "elsewhere", 2, resume_from=middle)
