"""Starting DeepSpeed without a launcher leaves the environment as it found it."""

from __future__ import annotations

import os

import pretrain_synthetic as S
import pytest

from albertctl.training import distributed, loop

KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_launcher(monkeypatch):
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)


def test_single_process_env_is_set_inside_and_restored_after(no_launcher, monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "10.1.2.3")
    with distributed.single_process_env():
        inside = {key: os.environ[key] for key in KEYS}
        assert distributed.current() == distributed.Distributed(0, 1, 0)
    assert {k: v for k, v in inside.items() if k != "MASTER_PORT"} == {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "10.1.2.3",
    }
    assert 0 < int(inside["MASTER_PORT"]) < 65536
    assert {key: os.environ.get(key) for key in KEYS} == dict.fromkeys(KEYS) | {"MASTER_ADDR": "10.1.2.3"}


def test_a_launched_rank_keeps_the_launcher_env(no_launcher, monkeypatch):
    launcher = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "29500"}
    for key, value in launcher.items():
        monkeypatch.setenv(key, value)
    with distributed.single_process_env():
        assert {key: os.environ[key] for key in KEYS} == launcher
    assert distributed.current() == distributed.Distributed(3, 4, 1)


def test_in_process_training_leaves_only_local_rank_set(no_launcher, tmp_path):
    p = S.profile(train_steps=1, save_every=1)
    loop.train(S.spec(p, tmp_path), p.train, p.deepspeed)
    assert {key: os.environ[key] for key in KEYS if key in os.environ} == {"LOCAL_RANK": "0"}
    assert distributed.all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]  # one process: the values themselves
    assert distributed.any_rank(True) and not distributed.any_rank(False)
