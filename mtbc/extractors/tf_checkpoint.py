"""A pure-Python reader of TensorFlow checkpoint V2 bundles (no TensorFlow needed).

No library reads these files without TensorFlow itself, so this module decodes the format
directly. A V2 checkpoint ``PREFIX`` is two files:

- ``PREFIX.index``: a LevelDB-format SSTable. The last 48 bytes are the footer: two block
  handles (metaindex, index; each a varint offset and a varint size), zero padding, and the
  8-byte magic number. The index block maps separator keys to the handles of data blocks;
  every block ends with restart points and is followed by a 5-byte trailer: a compression
  byte (0 = none; anything else is refused) and the masked CRC32C of the block plus that byte.
  Keys are prefix-compressed (shared length, unshared length, value length, as varints).
  The value of the empty key is a ``BundleHeaderProto``; every other key is a tensor name and
  its value a ``BundleEntryProto``: ``dtype`` (1), ``shape`` (2, a ``TensorShapeProto`` whose
  ``dim`` (2) messages carry ``size`` (1)), ``shard_id`` (3), ``offset`` (4), ``size`` (5),
  ``crc32c`` (6, fixed32, masked).
- ``PREFIX.data-00000-of-0000N``: the tensors' raw little-endian bytes at ``offset``.

Protobuf wire format (varints, fixed32/64, length-delimited fields) is decoded by hand.
Every block CRC and every tensor CRC is checked; a mismatch raises :class:`CheckpointError`.
Only unsliced, numeric tensors are read (the kind ``tf.train.Saver`` writes for variables).

>>> tensors = read_checkpoint("path/to/model.ckpt")           # doctest: +SKIP
>>> tensors = read_checkpoint_from_zip("x.whl", "pkg/MTT/")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: LevelDB / TensorFlow table magic number (``kTableMagicNumber``), stored little-endian.
TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5

#: TF ``DataType`` enum -> numpy dtype (little-endian). Other types are refused.
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"),
    5: np.dtype("<i2"), 6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"),
    17: np.dtype("<u2"), 19: np.dtype("<f2"), 22: np.dtype("<u4"), 23: np.dtype("<u8"),
}


class CheckpointError(ValueError):
    """The checkpoint is malformed, corrupted (CRC mismatch) or uses an unsupported feature."""


# ----------------------------------------------------------------------------- CRC32C

def _crc32c_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli polynomial, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc``."""
    table = _CRC_TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB's masked CRC: rotate right by 15 bits and add a constant (mod 2**32)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- protobuf

def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``: ``(value, next_pos)``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("varint longer than 10 bytes")


def parse_message(buf: bytes) -> dict[int, list[int | bytes]]:
    """Decode protobuf wire format into ``{field number: [values]}`` (no schema needed).

    Varint fields give ints, fixed32/fixed64 give unsigned ints, length-delimited fields give
    bytes (a nested message or a packed array, for the caller to decode).
    """
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise CheckpointError("truncated fixed64 field")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > len(buf):
                raise CheckpointError("truncated length-delimited field")
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise CheckpointError("truncated fixed32 field")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire} (field {number})")
        fields.setdefault(number, []).append(value)
    return fields


@dataclass(frozen=True)
class TensorEntry:
    """One ``BundleEntryProto``: where a tensor's bytes are and how to read them."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None

    @property
    def numpy_dtype(self) -> np.dtype:
        try:
            return TF_DTYPES[self.dtype]
        except KeyError:
            raise CheckpointError(f"tensor {self.name!r}: unsupported TF dtype enum "
                                  f"{self.dtype}") from None


def _last(fields: dict, number: int, default=0):
    return fields[number][-1] if number in fields else default


def parse_entry(name: str, value: bytes) -> TensorEntry:
    """Decode a ``BundleEntryProto`` (``value``) for tensor ``name``."""
    fields = parse_message(value)
    if 7 in fields:
        raise CheckpointError(f"tensor {name!r} is stored in slices, which is not supported")
    shape: tuple[int, ...] = ()
    if 2 in fields:
        shape_msg = parse_message(fields[2][-1])
        if _last(shape_msg, 3):
            raise CheckpointError(f"tensor {name!r} has an unknown rank")
        shape = tuple(int(_last(parse_message(d), 1)) for d in shape_msg.get(2, []))
    return TensorEntry(name=name, dtype=int(_last(fields, 1)), shape=shape,
                       shard_id=int(_last(fields, 3)), offset=int(_last(fields, 4)),
                       size=int(_last(fields, 5)), crc32c=_last(fields, 6, None))


# ----------------------------------------------------------------------------- SSTable

def _read_handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(buf, pos)
    size, pos = read_varint(buf, pos)
    return (offset, size), pos


def _block(table: bytes, handle: tuple[int, int]) -> bytes:
    offset, size = handle
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(table):
        raise CheckpointError("block handle points past the end of the index file")
    compression = table[end]
    if compression != 0:
        raise CheckpointError(f"index block at offset {offset} is compressed (type "
                              f"{compression}); only uncompressed tables are supported")
    stored = struct.unpack_from("<I", table, end + 1)[0]
    actual = mask_crc(crc32c(table[offset:end + 1]))
    if stored != actual:
        raise CheckpointError(f"CRC mismatch in index block at offset {offset}: stored "
                              f"{stored:#010x}, computed {actual:#010x}")
    return table[offset:end]


def block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """All ``(key, value)`` pairs of one SSTable block, prefix compression undone."""
    if len(block) < 4:
        raise CheckpointError("block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise CheckpointError("block restart array larger than the block")
    entries = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise CheckpointError("corrupt block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def read_table(table: bytes) -> list[tuple[bytes, bytes]]:
    """Every ``(key, value)`` of an SSTable file's bytes, in key order."""
    if len(table) < FOOTER_SIZE:
        raise CheckpointError("index file shorter than an SSTable footer")
    footer = table[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)[0] != TABLE_MAGIC:
        raise CheckpointError("not an SSTable (bad magic number in the footer)")
    _metaindex, pos = _read_handle(footer, 0)
    index_handle, _ = _read_handle(footer, pos)
    out = []
    for _key, handle_bytes in block_entries(_block(table, index_handle)):
        handle, _ = _read_handle(handle_bytes, 0)
        out.extend(block_entries(_block(table, handle)))
    return out


# ----------------------------------------------------------------------------- bundle

def parse_index(index: bytes) -> tuple[dict[int, list], dict[str, TensorEntry]]:
    """Decode an ``.index`` file: ``(BundleHeaderProto fields, {name: TensorEntry})``."""
    header: dict[int, list] | None = None
    entries: dict[str, TensorEntry] = {}
    for key, value in read_table(index):
        if key == b"":
            header = parse_message(value)
        else:
            name = key.decode("utf-8")
            entries[name] = parse_entry(name, value)
    if header is None:
        raise CheckpointError("index has no BundleHeaderProto (empty key)")
    if _last(header, 2) != 0:
        raise CheckpointError("checkpoint is big-endian; only little-endian is supported")
    return header, entries


def _tensor(entry: TensorEntry, read: Callable[[int, int, int], bytes]) -> np.ndarray:
    dtype = entry.numpy_dtype
    expected = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
    if entry.size != expected:
        raise CheckpointError(f"tensor {entry.name!r}: {entry.size} bytes stored for shape "
                              f"{entry.shape} of {dtype} ({expected} bytes expected)")
    raw = read(entry.shard_id, entry.offset, entry.size)
    if len(raw) != entry.size:
        raise CheckpointError(f"tensor {entry.name!r}: data shard is truncated")
    if entry.crc32c is not None:
        actual = mask_crc(crc32c(raw))
        if actual != entry.crc32c:
            raise CheckpointError(f"CRC mismatch in tensor {entry.name!r}: stored "
                                  f"{entry.crc32c:#010x}, computed {actual:#010x}")
    return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))


def _read_bundle(index: bytes, open_shard: Callable[[int, int], bytes],
                 keep: Callable[[str], bool] | None) -> dict[str, np.ndarray]:
    header, entries = parse_index(index)
    n_shards = int(_last(header, 1, 1))
    cache: dict[int, bytes] = {}

    def read(shard: int, offset: int, size: int) -> bytes:
        if not 0 <= shard < n_shards:
            raise CheckpointError(f"shard id {shard} out of range (num_shards={n_shards})")
        if shard not in cache:
            cache[shard] = open_shard(shard, n_shards)
        return cache[shard][offset:offset + size]

    return {name: _tensor(entry, read) for name, entry in sorted(entries.items())
            if keep is None or keep(name)}


def shard_name(prefix: str, shard: int, n_shards: int) -> str:
    """``PREFIX.data-0000S-of-0000N``, TF's data shard file name."""
    return f"{prefix}.data-{shard:05d}-of-{n_shards:05d}"


def list_tensors(prefix: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (numpy dtype name, shape)}`` of the checkpoint at ``prefix`` (index only)."""
    _, entries = parse_index(Path(f"{os.fspath(prefix)}.index").read_bytes())
    return {n: (TF_DTYPES[e.dtype].name if e.dtype in TF_DTYPES else f"tf-enum-{e.dtype}",
                e.shape) for n, e in sorted(entries.items())}


def list_tensors_from_zip(archive: str | os.PathLike, prefix: str
                          ) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Like :func:`list_tensors` for a checkpoint inside a zip file (see
    :func:`read_checkpoint_from_zip`)."""
    with zipfile.ZipFile(archive) as zf:
        _, entries = parse_index(_zip_member(zf, archive, f"{prefix}.index"))
    return {n: (TF_DTYPES[e.dtype].name if e.dtype in TF_DTYPES else f"tf-enum-{e.dtype}",
                e.shape) for n, e in sorted(entries.items())}


def _zip_member(zf: zipfile.ZipFile, archive, member: str) -> bytes:
    try:
        return zf.read(member)
    except KeyError:
        raise CheckpointError(f"{archive} has no member {member}") from None


def read_checkpoint(prefix: str | os.PathLike, *,
                    keep: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """Read the tensors of the checkpoint at ``prefix`` (files ``prefix.index``, ``.data-*``).

    ``keep(name)`` selects tensors (default: all). Returns ``{name: array}`` in name order.
    """
    prefix = os.fspath(prefix)
    index = Path(f"{prefix}.index").read_bytes()
    return _read_bundle(index, lambda s, n: Path(shard_name(prefix, s, n)).read_bytes(), keep)


def read_checkpoint_from_zip(archive: str | os.PathLike, prefix: str, *,
                             keep: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """Like :func:`read_checkpoint` for a checkpoint inside a zip file (e.g. a wheel).

    ``prefix`` is the member path without the ``.index`` suffix, e.g. ``"musicnn/MTT_musicnn/"``
    for ``musicnn/MTT_musicnn/.index``.
    """
    with zipfile.ZipFile(archive) as zf:
        index = _zip_member(zf, archive, f"{prefix}.index")
        return _read_bundle(index, lambda s, n: _zip_member(zf, archive, shard_name(prefix, s, n)),
                            keep)
