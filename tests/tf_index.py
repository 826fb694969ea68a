"""Write TF tensor-bundle indexes (LevelDB tables) in tests, to plant hostile entries.

A table here is one data block of (key, value) entries, an index block pointing at it, an
empty metaindex block and the 48-byte footer; every block ends with its compression byte (0,
none) and the masked crc32c, as TensorFlow writes them (albertctl/convert/tf_bundle.py reads
them back).
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c

from albertctl.convert.tf_bundle import TABLE_MAGIC, _fields, mask_crc, read_table


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode(fields: list[tuple[int, int | bytes]]) -> bytes:
    """A protobuf message from (field number, value): ints as varints (field 6, the crc32c,
    as fixed32), bytes length-delimited."""
    out = b""
    for number, value in fields:
        if isinstance(value, bytes):
            out += varint(number << 3 | 2) + varint(len(value)) + value
        elif number == 6:
            out += varint(number << 3 | 5) + struct.pack("<I", value)
        else:
            out += varint(number << 3) + varint(value)
    return out


def shape(*dims: int) -> bytes:
    return encode([(2, encode([(1, d)])) for d in dims])


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(varint(0) + varint(len(k)) + varint(len(v)) + k + v for k, v in entries)
    body += struct.pack("<II", 0, 1)  # one restart point, at 0
    return body + b"\x00" + struct.pack("<I", mask_crc(crc32c.crc32c(body + b"\x00")))


def write_table(path: Path, entries: list[tuple[bytes, bytes]]) -> None:
    data = _block(entries)
    index = _block([(entries[-1][0], varint(0) + varint(len(data) - 5))])
    meta = _block([])
    handles = (
        varint(len(data) + len(index)) + varint(len(meta) - 5) + varint(len(data)) + varint(len(index) - 5)
    )
    footer = handles.ljust(40, b"\x00") + struct.pack("<Q", TABLE_MAGIC)
    Path(path).write_bytes(data + index + meta + footer)


def replace_entry(index: Path, name: str, **changes: int | bytes) -> None:
    """Rewrite one tensor's BundleEntryProto in `index`: dtype=1, shape=2, shard_id=3,
    offset=4, size=5 (keyword names below) replaced by the given values."""
    numbers = {"dtype": 1, "shape": 2, "shard_id": 3, "offset": 4, "size": 5}
    entries = read_table(index)
    out = []
    for key, value in entries:
        if key == name.encode():
            fields = dict(_fields(value))
            fields.update({numbers[k]: v for k, v in changes.items()})
            value = encode(sorted(fields.items()))
        out.append((key, value))
    write_table(index, out)
