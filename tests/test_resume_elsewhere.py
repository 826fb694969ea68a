"""Resuming from a named checkpoint, under another ZeRO stage (one process; the launcher test
covers other world sizes): the optimiser state is stored per parameter, so any layout reloads
it and ends where the uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pretrain_synthetic as S
import pytest
import torch

from albertctl.core.errors import AlbertError
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
