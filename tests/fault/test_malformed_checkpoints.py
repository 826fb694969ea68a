"""Checkpoints that verify against their manifest but are malformed inside: `--resume` skips
them with a warning, as it skips corrupt ones, and takes the previous one. And weights holding
NaN or inf are never saved as a model directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from albertctl.core.config import load_profile
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import save_model_dir, write_manifest
from albertctl.training import checkpoint as ckpt


def _checkpoint(root: Path, step: int) -> Path:
    tmp = ckpt.begin(root, step)
    weights = torch.arange(6, dtype=torch.float32).reshape(2, 3) * step
    ckpt.write_shard(tmp, 0, {"rng": ckpt.rng_state(), "optimizer": {"state": {0: {"m": weights}}}})
    return ckpt.finish(root, tmp, step, {"step": step, "identity": {"world_size": 1}, "best": None}, 5)


def _rewrite(path: Path, name: str, text: str | None = None, shard: bool = False) -> None:
    """Change one file and re-write the manifest, so the checkpoint still verifies."""
    if shard:
        save_file({"s.rng.torch": torch.zeros(3)}, str(path / name), metadata={"format": "albertctl-trainer"})
    else:
        (path / name).write_text(text or "", encoding="utf-8")
    (path / "manifest.json").unlink()
    write_manifest(path, {"kind": "training-checkpoint"})


@pytest.mark.parametrize(
    ("name", "text", "shard", "reason"),
    [
        ("state.yaml", "step: abc\n", False, "step must be a non-negative integer, got 'abc'"),
        ("state.yaml", "step: -3\n", False, "step must be a non-negative integer, got -3"),
        ("state.yaml", "step: 7\n", False, "step 7 does not match the directory name"),
        ("state.yaml", "step: &s 20\nagain: *s\n", False, "YAML anchors and aliases"),
        ("state.yaml", "step: 20\nidentity: [1]\n", False, "identity must be a mapping"),
        ("trainer-rank00000.safetensors", None, True, "no structure in its metadata"),
    ],
    ids=["step-text", "step-negative", "step-mismatch", "alias", "identity-list", "shard-no-structure"],
)
def test_resume_skips_malformed_and_uses_previous(tmp_path, name, text, shard, reason):
    root = tmp_path / "checkpoints"
    _checkpoint(root, 10)
    newest = _checkpoint(root, 20)
    _rewrite(newest, name, text, shard)
    warnings: list[str] = []
    assert ckpt.find_latest_good(root, warnings.append) == root / "step-00000010"
    assert len(warnings) == 1 and warnings[0].startswith(f"skipping checkpoint {newest}: ")
    assert reason in warnings[0]
    state = ckpt.read_state(root / "step-00000010")
    assert state["step"] == 10
    restored = ckpt.read_shard(root / "step-00000010", 0)
    assert torch.equal(restored["optimizer"]["state"][0]["m"], torch.arange(6.0).reshape(2, 3) * 10)


@pytest.mark.parametrize(
    "structure",
    [
        "[1, 2]",  # not a node
        "dict: [[rng, {tensor: s.nothere}]]",  # a tensor the file lacks
        "dict: [[rng, {dict: [[cuda, {value: 1}]]}]]",  # no torch RNG state
        "dict: [[rng, {dict: [[torch, {tensor: s.rng.torch}]]}], [optimizer, {value: 3}]]",  # optimiser not a map
        "dict: [[rng, {weird: 1}]]",  # an unknown kind of node
    ],
)
def test_shard_structure_is_checked_before_use(tmp_path, structure):
    path = tmp_path / ckpt.shard_name(0)
    save_file(
        {"s.rng.torch": torch.zeros(3)},
        str(path),
        metadata={"format": "albertctl-trainer", "structure": structure},
    )
    with pytest.raises(AlbertError, match=r"corrupt trainer shard structure"):
        ckpt.check_shard(path)


def test_written_yaml_has_no_aliases_even_for_shared_objects(tmp_path):
    shared = {"lr": 0.1}
    root = tmp_path / "c"
    tmp = ckpt.begin(root, 1)
    ckpt.write_shard(tmp, 0, {"rng": ckpt.rng_state()})
    path = ckpt.finish(root, tmp, 1, {"step": 1, "identity": {"a": shared, "b": shared}}, 2)
    assert "&" not in (path / "state.yaml").read_text() and ckpt.read_state(path)["identity"]["b"] == shared


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_model_is_never_saved(tmp_path, bad):
    profile = load_profile("tiny")
    target = tmp_path / "model"
    weights = {"a.weight": torch.ones(2, 2), "b.bias": torch.tensor([0.0, bad, bad])}
    with pytest.raises(AlbertError) as err:
        save_model_dir(target, profile, weights, None)
    assert str(err.value) == (
        f"{target}: not saved, b.bias holds 2 non-finite values (NaN or inf); "
        "lower train.learning_rate or check the data"
    )
    assert list(tmp_path.iterdir()) == []
