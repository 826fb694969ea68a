"""The one training loop on synthetic MLM + SOP batches: resume, interrupts, bad states."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pretrain_synthetic as S
import pytest
import torch
from safetensors.torch import load_file

from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import load_model_dir
from albertctl.training import checkpoint as ckpt
from albertctl.training import loop
from albertctl.training.batches import IndexedBatches

# First losses of the synthetic run (fp32, CPU, LAMB as the original). Re-record only in a commit that changes
# numerics on purpose (last: the original's LAMB, and the SOP head without dropout).
EXPECTED_LOSSES = [4.85401725769043, 4.837192535400391, 4.8832173347473145]


def weights(run: Path) -> dict[str, torch.Tensor]:
    latest = ckpt.latest_names(run / "checkpoints")[0]
    return load_file(str(run / "checkpoints" / latest / "model" / "model.safetensors"))


def losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [e["loss"] for e in map(json.loads, lines) if e["event"] == "train"]


def test_run_writes_checkpoints_metrics_and_model_dir(tmp_path):
    p = S.profile(save_every=2, keep_last=2)
    result = loop.train(S.spec(p, tmp_path), p.train, p.deepspeed)
    assert (result.global_step, result.stopped) == (6, "finished")
    assert ckpt.latest_names(tmp_path / "checkpoints") == ["step-00000006", "step-00000004"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    assert losses(tmp_path)[:3] == pytest.approx(EXPECTED_LOSSES, rel=1e-4)
    model_dir = load_model_dir(result.checkpoint / "model")
    assert model_dir.profile.name == "synthetic"
    ckpt.verify_manifest(result.checkpoint)


def test_resume_after_interrupt_is_bit_identical(tmp_path):
    p = S.profile(save_every=100)
    straight = tmp_path / "straight"
    loop.train(S.spec(p, straight), p.train, p.deepspeed)

    split = tmp_path / "split"
    base = S.spec(p, split)

    def interrupting(model, batch):  # Ctrl-C during step 3
        if base.batches.calls == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return base.loss(model, batch)

    base.batches.calls = 0
    original = base.batches.micro_batch

    def counting(i):
        base.batches.calls += 1
        return original(i)

    base.batches.micro_batch = counting
    first = loop.train(S.spec(p, split, loss=interrupting, batches=base.batches), p.train, p.deepspeed)
    assert (first.global_step, first.stopped) == (3, "interrupted")
    assert first.checkpoint.name == "step-00000003"

    second = loop.train(S.spec(p, split, resume=True), p.train, p.deepspeed)
    assert (second.global_step, second.stopped) == (6, "finished")
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert losses(split) == losses(straight)


def test_unpad_setting_reaches_the_model_and_keeps_the_losses(tmp_path):
    """train.unpad runs the token-wise layers on real tokens only (the synthetic batches are
    padded): the same losses up to float rounding, and the setting is what the model runs with."""
    runs = {}
    for unpad in (False, True):
        p = S.profile(save_every=100, unpad=unpad)
        spec = S.spec(p, tmp_path / str(unpad))
        loop.train(spec, p.train, p.deepspeed)
        assert spec.model.albert.encoder.unpad is unpad
        runs[unpad] = losses(tmp_path / str(unpad))
    assert len(runs[True]) == 6
    assert runs[True] == pytest.approx(runs[False], rel=1e-5)


def test_non_finite_loss_stops_before_the_step(tmp_path):
    p = S.profile(save_every=1)
    base = S.spec(p, tmp_path)
    calls = []

    def exploding(model, batch):
        calls.append(1)
        out = base.loss(model, batch)
        return out._replace(loss=out.loss * float("nan")) if len(calls) == 3 else out

    with pytest.raises(
        AlbertError,
        match=r"non-finite loss \(nan\) at step 3; stopped before the optimizer step, "
        r"the last good checkpoint is .*step-00000002",
    ):
        loop.train(S.spec(p, tmp_path, loss=exploding), p.train, p.deepspeed)
    assert ckpt.latest_names(tmp_path / "checkpoints") == ["step-00000002", "step-00000001"]


def test_full_disk_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    p = S.profile(save_every=3)
    real = ckpt.write_shard
    calls = []

    def full(directory, rank, state):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(directory, rank, state)

    monkeypatch.setattr(ckpt, "write_shard", full)
    with pytest.raises(AlbertError) as err:
        loop.train(S.spec(p, tmp_path), p.train, p.deepspeed)
    assert str(err.value) == (
        f"could not save the checkpoint for step 6 under {tmp_path / 'checkpoints'}: no space left on device; "
        f"the last good checkpoint {tmp_path / 'checkpoints' / 'step-00000003'} is intact"
    )
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000003"]


def test_bf16_without_zero_checkpoints_and_resumes_like_an_uninterrupted_run(tmp_path):
    """bf16 under ZeRO 0 (on a CPU DeepSpeed's unfused wrapper: one fp32 copy per parameter, which
    the optimiser steps) saves the optimiser state under the parameters' names, and a run resumed
    from step 3 ends where the uninterrupted one does."""
    p = S.profile(precision="bf16", optimizer="lamb", save_every=3)
    straight = tmp_path / "straight"
    loop.train(S.spec(p, straight), p.train, p.deepspeed)
    step3 = straight / "checkpoints" / ckpt.checkpoint_name(3)
    saved = ckpt.read_shard(step3, 0)[ckpt.UNIVERSAL]["params"]
    names = {n for n, _ in S.model(p).named_parameters()}
    assert set(saved) == names and all({"fp32", "exp_avg", "exp_avg_sq"} <= set(e) for e in saved.values())
    resumed = tmp_path / "resumed"
    result = loop.train(S.spec(p, resumed, resume_from=step3), p.train, p.deepspeed)
    assert result.global_step == 6
    want, got = S.load_weights(straight, 6), S.load_weights(resumed, 6)
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_resume_refuses_a_checkpoint_of_another_profile(tmp_path):
    p = S.profile()
    loop.train(S.spec(p, tmp_path), p.train, p.deepspeed)
    other = S.spec(p, tmp_path, resume=True, identity={"profile": "base"})
    with pytest.raises(
        AlbertError,
        match=r"step-00000006 was written by a different run \(profile=synthetic; "
        r"this run: profile=base\)",
    ):
        loop.train(other, p.train, p.deepspeed)


def test_resume_skips_a_corrupt_latest_checkpoint(tmp_path):
    p = S.profile(train_steps=6, save_every=3)
    loop.train(S.spec(p, tmp_path), p.train, p.deepspeed)
    shard = tmp_path / "checkpoints" / "step-00000006" / ckpt.shard_name(0)
    shard.write_bytes(shard.read_bytes()[:100])  # truncated by a crash
    warnings = []
    p2 = S.profile(train_steps=7, save_every=3)
    result = loop.train(
        S.spec(p2, tmp_path, resume=True),
        p2.train,
        p2.deepspeed,
        progress=lambda e: warnings.append(e["message"]) if e["event"] == "warning" else None,
    )
    assert result.global_step == 7
    assert len(warnings) == 1 and "skipping checkpoint" in warnings[0] and "step-00000006" in warnings[0]


def test_existing_run_needs_resume(tmp_path):
    p = S.profile(train_steps=1)
    loop.train(S.spec(p, tmp_path), p.train, p.deepspeed)
    with pytest.raises(AlbertError, match="already holds checkpoints; pass --resume"):
        loop.train(S.spec(p, tmp_path), p.train, p.deepspeed)


def test_indexed_batches_split_over_ranks_like_accumulation():
    fetch = lambda idx: [{"i": torch.tensor(i)} for i in idx]  # noqa: E731
    collate = lambda ex, g: {"i": torch.stack([e["i"] for e in ex])}  # noqa: E731
    one = IndexedBatches(10, fetch, collate, 2, 0, 1, seed=3)
    two = [IndexedBatches(10, fetch, collate, 2, r, 2, seed=3) for r in range(2)]
    for step in range(7):  # crosses epochs
        single = torch.cat([one.micro_batch(step * 2 + k)["i"] for k in range(2)])
        split = torch.cat([two[r].micro_batch(step)["i"] for r in range(2)])
        assert torch.equal(single, split)


def test_accumulation_steps_must_divide():
    p = S.profile(global_batch_size=8, micro_batch_size=4)
    assert loop.accumulation_steps(p.train, 1) == 2
    assert loop.accumulation_steps(p.train, 2) == 1
    with pytest.raises(
        AlbertError, match=r"must be a multiple of train.micro_batch_size x world size \(4 x 3 = 12\)"
    ):
        loop.accumulation_steps(p.train, 3)
