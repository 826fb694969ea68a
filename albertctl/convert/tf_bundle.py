"""Read TensorFlow checkpoints (tensor bundles) without TensorFlow.

A bundle is `PREFIX.index` plus `PREFIX.data-NNNNN-of-MMMMM` shards. The index is a LevelDB
table (the SSTable format TensorFlow's `table_builder` writes):

    [data block]* [metaindex block] [index block] [footer: 48 bytes]

- footer: two BlockHandles (varint64 offset, varint64 size: metaindex, then index), zero
  padding to 40 bytes, then the 8-byte magic 0xdb4775248b80fb57 (little-endian).
- every block is followed by a 5-byte trailer: compression type (0 none, 1 snappy) and the
  masked crc32c of the block plus that type byte.
- a block holds entries `varint shared, varint non_shared, varint value_len, key suffix,
  value`, keys prefix-compressed against the previous key, then uint32 restart offsets and
  their count (the restarts only speed up seeking; a full scan does not need them).
- the index block maps the last key of each data block to that block's handle.

Values are protobufs: under the empty key a BundleHeaderProto (num_shards = 1,
endianness = 2), under each tensor name a BundleEntryProto (dtype = 1, shape = 2,
shard_id = 3, offset = 4, size = 5, crc32c = 6 (fixed32, masked), slices = 7). They are
decoded here with a small varint reader: these few fields are all we need, and the wire
format is stable. Tensor data are raw little-endian bytes at `offset` in shard `shard_id`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import crc32c as _crc32c
import torch

from albertctl.core.errors import AlbertError
from albertctl.core.safeload import shorten

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
_MASK_DELTA = 0xA282EAD8

# tensorflow/core/framework/types.proto DataType values we read.
DTYPES: dict[int, tuple[str, torch.dtype]] = {
    1: ("float32", torch.float32),
    2: ("float64", torch.float64),
    3: ("int32", torch.int32),
    9: ("int64", torch.int64),
    14: ("bfloat16", torch.bfloat16),
    19: ("float16", torch.float16),
}
DT_STRING = 7


def unmask_crc(masked: int) -> int:
    """LevelDB's crc mask, undone: rot = masked - delta; crc = rotate_left(rot, 15)."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


class _Corrupt(Exception):
    """Internal: the bytes do not parse; turned into an AlbertError naming the file."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Corrupt("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message as (field number, value) pairs: varints as ints, the rest as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise _Corrupt("truncated protobuf message")
        out.append((number, value))
    return out


@dataclass(frozen=True)
class BundleEntry:
    """One tensor's BundleEntryProto."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored
    sliced: bool  # a partitioned variable, stored in slices (not supported)

    @property
    def dtype_name(self) -> str:
        return DTYPES[self.dtype][0] if self.dtype in DTYPES else f"DataType {self.dtype}"


def _parse_entry(buf: bytes) -> BundleEntry:
    values: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0}
    crc = None
    sliced = False
    for number, value in _fields(buf):
        if number == 1:
            values["dtype"] = value
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }
            dims = []
            for n, dim in _fields(value):  # type: ignore[arg-type]
                if n == 2:
                    size = int(dict(_fields(dim)).get(1, 0))  # type: ignore[arg-type]
                    if size >= 2**63:  # an int64 below zero (-1: unknown size), as a varint
                        raise _Corrupt(f"negative dimension {size - 2**64} in a tensor shape")
                    dims.append(size)
            values["shape"] = tuple(dims)
        elif number in (3, 4, 5):
            values[{3: "shard_id", 4: "offset", 5: "size"}[number]] = value
        elif number == 6:
            crc = int(value)  # type: ignore[arg-type]
        elif number == 7:
            sliced = True
    return BundleEntry(crc32c=crc, sliced=sliced, **values)  # type: ignore[arg-type]


def _snappy_decompress(data: bytes) -> bytes:
    """Raw snappy (the format LevelDB tables may use for blocks): a varint length, then
    literal and copy elements. TensorFlow writes bundle indexes uncompressed; this is for
    tables written with compression on."""
    length, pos = _varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            n += 1
            out += data[pos : pos + n]
            pos += n
            continue
        if kind == 1:
            n = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + 2], "little")
            pos += 2
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise _Corrupt("bad snappy copy offset")
        for _ in range(n):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != length:
        raise _Corrupt("snappy block length mismatch")
    return bytes(out)


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if end + TRAILER_SIZE > len(data):
        raise _Corrupt(f"block at byte {offset} runs past the end of the file")
    contents = data[offset:end]
    kind = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if unmask_crc(stored) != _crc32c.crc32c(data[offset : end + 1]):
        raise _Corrupt(f"checksum mismatch in the block at byte {offset}")
    if kind == 0:
        return contents
    if kind == 1:
        return _snappy_decompress(contents)
    raise _Corrupt(f"unknown block compression type {kind}")


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt("block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise _Corrupt("bad restart count")
    out: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise _Corrupt("bad block entry")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        out.append((key, block[pos : pos + value_len]))
        pos += value_len
    return out


def read_table(path: Path) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB table file, in key order, checksums verified."""
    data = Path(path).read_bytes()
    if len(data) < FOOTER_SIZE:
        raise _Corrupt(f"{len(data)} bytes, shorter than the 48-byte footer")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != TABLE_MAGIC:
        raise _Corrupt("no table magic number at the end (truncated, or not a checkpoint index)")
    _meta_offset, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    entries: list[tuple[bytes, bytes]] = []
    for _last_key, handle in _block_entries(_read_block(data, index_offset, index_size)):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        entries.extend(_block_entries(_read_block(data, offset, size)))
    return entries


class TensorBundle:
    """A checkpoint prefix opened for reading: `names`, `entries`, `read(name)`."""

    def __init__(self, prefix: Path | str) -> None:
        self.prefix = Path(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        if not self.index_path.is_file():
            raise AlbertError(f"{self.index_path}: TF checkpoint index not found")
        try:
            table = read_table(self.index_path)
            if not table or table[0][0] != b"":
                raise _Corrupt("no bundle header")
            header = dict(_fields(table[0][1]))
            self.entries = {k.decode("utf-8"): _parse_entry(v) for k, v in table[1:]}
        except (_Corrupt, UnicodeDecodeError) as err:
            raise AlbertError(f"{self.index_path}: corrupt TF checkpoint index ({err})") from None
        self.num_shards = int(header.get(1, 1))  # type: ignore[arg-type]
        if header.get(2, 0) != 0:
            raise AlbertError(f"{self.index_path}: big-endian checkpoints are not supported")

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def shard_path(self, shard_id: int) -> Path:
        return Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")

    def read(self, name: str) -> torch.Tensor:
        """One tensor, its crc32c checked. bfloat16 stays bfloat16 (numpy has no such dtype).
        Reads only this tensor's bytes: optimizer slots are never loaded."""
        entry = self.entries[name]
        if entry.sliced:
            raise AlbertError(f"{self.index_path}: {name} is a partitioned variable (not supported)")
        if entry.dtype not in DTYPES:
            raise AlbertError(f"{self.index_path}: {name} has unsupported dtype {entry.dtype_name}")
        if not 0 <= entry.shard_id < self.num_shards:
            raise AlbertError(
                f"{self.index_path}: {name} is in shard {entry.shard_id}, the index declares {self.num_shards}"
            )
        path = self.shard_path(entry.shard_id)
        # Everything is checked against the index and the shard's size before a byte is
        # allocated: a corrupt or hostile entry (size 2^62, a shape whose product overflows
        # int64) is one line, not a MemoryError. Python integers do not overflow.
        dtype = DTYPES[entry.dtype][1]
        count = math.prod(entry.shape)
        if count * dtype.itemsize != entry.size:
            raise AlbertError(
                f"{self.index_path}: {name} holds {entry.size} bytes, {dtype} shape "
                f"{shorten(str(list(entry.shape)))} needs {shorten(str(count * dtype.itemsize))}"
            )
        try:
            shard_size = path.stat().st_size
        except FileNotFoundError:
            raise AlbertError(f"{path}: TF checkpoint data shard not found") from None
        if entry.offset + entry.size > shard_size:
            raise AlbertError(
                f"{path}: truncated ({shard_size} bytes, {name} needs bytes up to {entry.offset + entry.size})"
            )
        with path.open("rb") as f:
            f.seek(entry.offset)
            raw = f.read(entry.size)
        if len(raw) < entry.size:
            raise AlbertError(f"{path}: truncated while reading {name}")
        if entry.crc32c is not None and unmask_crc(entry.crc32c) != _crc32c.crc32c(raw):
            raise AlbertError(f"{path}: corrupt data (crc32c mismatch for {name})")
        if count == 0:
            return torch.zeros(entry.shape, dtype=dtype)
        return torch.frombuffer(bytearray(raw), dtype=dtype).reshape(entry.shape)

    def read_all(self, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        return {n: self.read(n) for n in (names if names is not None else self.names)}


def find_checkpoint_prefix(path: Path) -> Path:
    """A prefix, `PREFIX.index`, or a directory holding one: prefer the `checkpoint` file's
    model_checkpoint_path, then `*-best`, then the highest step, then `variables/variables`."""
    path = Path(path)
    if str(path).endswith(".index") and path.is_file():
        return Path(str(path)[: -len(".index")])
    if Path(f"{path}.index").is_file():
        return path
    if path.is_dir():
        if (path / "variables" / "variables.index").is_file():
            return path / "variables" / "variables"
        state = path / "checkpoint"
        if state.is_file():
            for line in state.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    candidate = path / Path(name).name
                    if Path(f"{candidate}.index").is_file():
                        return candidate
        indexes = sorted(path.glob("*.index"))
        if indexes:
            best = [p for p in indexes if p.stem.endswith("-best")]

            def step(p: Path) -> int:
                tail = p.stem.rsplit("-", 1)[-1]
                return int(tail) if tail.isdigit() else -1

            chosen = best[0] if best else max(indexes, key=step)
            return Path(str(chosen)[: -len(".index")])
        raise AlbertError(f"{path}: no TF checkpoint (*.index) in this directory")
    raise AlbertError(f"{path}: no TF checkpoint found (expected PREFIX.index or a directory holding one)")
