"""Model directories, prepared data, checkpoints and the sample corpus honour the user's umask
(issue 22): tempfile makes 0700 directories and safetensors 0600 files, unreadable for a team."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from albertctl.core.config import load_profile
from albertctl.core.modeldir import save_model_dir
from albertctl.core.outputs import current_umask
from albertctl.training import checkpoint


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _modes(root):
    return {
        p.relative_to(root).as_posix() or ".": stat.S_IMODE(p.stat().st_mode)
        for p in [root, *sorted(root.rglob("*"))]
    }


def test_model_directory_modes_follow_the_umask(tmp_path, umask):
    assert current_umask() == umask
    target = save_model_dir(
        tmp_path / "shared" / "model", load_profile("tiny"), {"w": torch.ones(2, 2)}, None
    )
    modes = _modes(target)
    assert modes == {
        ".": 0o777 & ~umask,
        "manifest.json": 0o666 & ~umask,
        "model.safetensors": 0o666 & ~umask,
        "profile.yaml": 0o666 & ~umask,
    }
    if umask == 0o022:
        assert set(modes.values()) == {0o755, 0o644}


def test_checkpoint_modes_follow_the_umask(tmp_path, umask):
    tmp = checkpoint.begin(tmp_path, 3)
    (tmp / "model").mkdir()
    (tmp / "model" / "weights.bin").write_bytes(b"x")
    os.chmod(tmp / "model" / "weights.bin", 0o600)  # as safetensors writes them
    target = checkpoint.finish(tmp_path, tmp, 3, {"step": 3}, keep_last=2)
    modes = _modes(target)
    assert {k: v for k, v in modes.items() if k in (".", "model")} == {
        ".": 0o777 & ~umask,
        "model": 0o777 & ~umask,
    }
    assert {v for k, v in modes.items() if k not in (".", "model")} == {0o666 & ~umask}
