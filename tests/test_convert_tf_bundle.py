"""The tensor-bundle reader against bundles TensorFlow wrote (tests/fixtures/tf, no TF needed)."""

import re
import shutil
from pathlib import Path

import crc32c
import numpy as np
import pytest
import tf_index
import torch

from albertctl.convert import tf_bundle
from albertctl.convert.tf_bundle import (
    TensorBundle,
    _snappy_decompress,
    find_checkpoint_prefix,
    mask_crc,
    unmask_crc,
)
from albertctl.core.errors import AlbertError

FIXTURES = Path(__file__).parent / "fixtures" / "tf"


def test_every_dtype_across_two_shards_matches_numpy():
    bundle = TensorBundle(FIXTURES / "dtypes" / "bundle")
    expected = np.load(FIXTURES / "dtypes" / "arrays.npz")
    assert bundle.num_shards == 2
    assert {bundle.entries[n].shard_id for n in bundle.names} == {0, 1}
    dtypes = {n: bundle.read(n).dtype for n in bundle.names}
    assert dtypes == {
        "f16": torch.float16,
        "f32": torch.float32,
        "f64": torch.float64,
        "i32": torch.int32,
        "i64": torch.int64,
        "scalar": torch.float32,
    }
    for name in bundle.names:
        got = bundle.read(name).numpy()
        assert got.shape == expected[name].shape and np.array_equal(got, expected[name]), name


def test_bfloat16_as_tensorflow_cast_it():
    tensor = TensorBundle(FIXTURES / "dtypes" / "bf16").read("bf16")
    assert tensor.dtype == torch.bfloat16
    expected = np.load(FIXTURES / "dtypes" / "arrays.npz")["bf16_as_float32"]
    assert np.array_equal(tensor.float().numpy(), expected)


def test_pretraining_checkpoint_values_slots_and_global_step():
    bundle = TensorBundle(FIXTURES / "pretrain" / "model.ckpt-7")
    arrays = np.load(FIXTURES / "pretrain" / "arrays.npz")
    for key in arrays.files:
        assert np.array_equal(bundle.read(key.replace("|", "/")).numpy(), arrays[key])
    assert bundle.read("global_step").item() == 7
    assert bundle.read("bert/pooler/dense/kernel/adam_v").unique().tolist() == [0.25]
    assert sum(n.endswith(("/adam_m", "/adam_v")) for n in bundle.names) == 2 * len(arrays.files)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("pretrain", "pretrain/model.ckpt-7"),  # via the `checkpoint` state file
        ("pretrain/model.ckpt-7.index", "pretrain/model.ckpt-7"),
        ("grouped", "grouped/model.ckpt-best"),  # no state file: the -best checkpoint
        ("hub", "hub/variables/variables"),
    ],
)
def test_find_checkpoint_prefix(given, expected):
    assert find_checkpoint_prefix(FIXTURES / given) == FIXTURES / expected


def test_crc_mask_round_trip():
    crc = crc32c.crc32c(b"albert")
    assert unmask_crc(mask_crc(crc)) == crc and mask_crc(crc) != crc


def test_snappy_literals_and_overlapping_copies():
    # "abcabcabcX": literal "abc", copy (offset 3, length 6, overlapping its output), literal "X"
    block = bytes([10, 2 << 2]) + b"abc" + bytes([((6 - 4) << 2) | 1, 3]) + bytes([0]) + b"X"
    assert _snappy_decompress(block) == b"abcabcabcX"


def _copy(tmp_path: Path, fixture: str = "pretrain") -> Path:
    target = tmp_path / fixture
    target.mkdir()
    for f in (FIXTURES / fixture).iterdir():
        if f.is_file():
            (target / f.name).write_bytes(f.read_bytes())
    return target


def test_truncated_and_corrupt_index(tmp_path):
    index = _copy(tmp_path) / "model.ckpt-7.index"
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 2])
    with pytest.raises(AlbertError, match="corrupt TF checkpoint index .no table magic number"):
        TensorBundle(index.with_suffix(""))
    index.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])
    with pytest.raises(AlbertError, match="checksum mismatch in the block at byte 0"):
        TensorBundle(index.with_suffix(""))


def test_truncated_and_corrupt_data(tmp_path):
    d = _copy(tmp_path)
    bundle = TensorBundle(d / "model.ckpt-7")
    shard = d / "model.ckpt-7.data-00000-of-00001"
    entry = bundle.entries["bert/embeddings/word_embeddings"]
    data = shard.read_bytes()
    shard.write_bytes(
        data[: entry.offset + 5] + bytes([data[entry.offset + 5] ^ 1]) + data[entry.offset + 6 :]
    )
    with pytest.raises(AlbertError, match="crc32c mismatch for bert/embeddings/word_embeddings"):
        TensorBundle(d / "model.ckpt-7").read("bert/embeddings/word_embeddings")
    shard.write_bytes(data[: entry.offset])
    with pytest.raises(AlbertError, match="truncated"):
        TensorBundle(d / "model.ckpt-7").read("bert/embeddings/word_embeddings")


def test_hostile_index_entries_are_refused_before_allocating(tmp_path):
    """A size of 2^62 or a shape whose element count overflows int64, read directly (no config
    to compare against): one AlbertError from the index and the shard's size, no MemoryError."""
    shutil.copytree(Path(__file__).parent / "fixtures" / "tf" / "classifier", tmp_path / "c")
    index, name = tmp_path / "c" / "model.ckpt-best.index", "bert/embeddings/word_embeddings"
    pristine = index.read_bytes()
    tf_index.write_table(index, tf_bundle.read_table(index))  # the writer round-trips a real index
    assert TensorBundle(tmp_path / "c" / "model.ckpt-best").read(name).shape == (80, 8)
    cases = [
        ({"size": 2**62}, "holds 4611686018427387904 bytes, torch.float32 shape [80, 8] needs 2560"),
        (
            {"shape": tf_index.shape(2**40, 2**40)},
            "shape [1099511627776, 1099511627776] needs 4835703278458516698824704",
        ),
        ({"shape": tf_index.shape(2**60), "size": 2**62}, "truncated ("),
    ]
    for change, message in cases:
        index.write_bytes(pristine)
        tf_index.replace_entry(index, name, **change)
        with pytest.raises(AlbertError, match=re.escape(message)):
            TensorBundle(tmp_path / "c" / "model.ckpt-best").read(name)
