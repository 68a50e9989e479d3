"""Convert released ALBERT checkpoints into our model, without TensorFlow.

Two parts:

1. A pure-Python reader and writer of TensorFlow's checkpoint format (the "tensor bundle"):
   `PREFIX.index` is a LevelDB-format sorted table whose values are serialized
   `BundleEntryProto` messages (dtype, shape, shard, offset, size, crc32c), and
   `PREFIX.data-NNNNN-of-NNNNN` shards hold the raw little-endian tensor bytes.
2. Explicit name tables from brightmart's and Google's TF variable names to our state-dict
   names (HuggingFace transformers' ALBERT names), and `convert()`, which detects the format
   and layout, checks every shape, and writes a `save_pretrained` directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import struct
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from albert_zh import checkpoint
from albert_zh.model import PRESETS, AlbertConfig, AlbertForPreTraining

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A TF checkpoint that cannot be read: missing, truncated or corrupted files."""


# --------------------------------------------------------------------------------------
# crc32c (Castagnoli), as LevelDB blocks and tensor bundles use it, "masked" on disk.
# --------------------------------------------------------------------------------------

def _make_crc_table() -> list[int]:
    poly = 0x82F63B78  # reflected Castagnoli polynomial
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _make_crc_table()
_CRC_TABLE_NP = np.array(_CRC_TABLE, dtype=np.uint32)
_CRC_MASK_DELTA = 0xA282EAD8
_CRC_CHUNKS = 4096  # lanes for the vectorised crc; see _crc32c_numpy


def _crc_register_py(reg: int, data: bytes) -> int:
    table = _CRC_TABLE
    for b in data:
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def _zero_shift_tables(length: int) -> list[list[int]]:
    """Tables for the linear map "feed `length` zero bytes into the register".

    The map is linear over GF(2), so it is the xor of its values on the four bytes of the
    register: table[j][b] = shift(b << 8j).
    """
    reg = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None])
    reg = reg.ravel()
    for _ in range(length):
        reg = _CRC_TABLE_NP[reg & 0xFF] ^ (reg >> 8)
    return [t.tolist() for t in reg.reshape(4, 256)]


def _crc32c_numpy(data: np.ndarray) -> int:
    """crc32c of a large uint8 array in ~0.1 s per 20 MB.

    The byte loop runs over equal-length chunks side by side (one numpy op per byte
    position, on all chunks at once); the chunk registers are then chained with the
    zero-shift map. Two facts make this exact: the register update is linear, so a chunk's
    contribution is its register from zero shifted by the bytes after it; and a CRC's
    initial value 0xFFFFFFFF is the same as xoring it into the first four message bytes.
    Leading zero bytes leave a zero register unchanged, which pads the front.
    """
    n = data.size
    lanes = _CRC_CHUNKS
    length = -(-n // lanes)
    padded = np.zeros(lanes * length, dtype=np.uint8)
    padded[lanes * length - n:] = data
    padded[lanes * length - n: lanes * length - n + 4] ^= 0xFF
    columns = np.ascontiguousarray(padded.reshape(lanes, length).T)
    reg = np.zeros(lanes, dtype=np.uint32)
    for column in columns:
        reg = _CRC_TABLE_NP[(reg ^ column) & 0xFF] ^ (reg >> 8)
    t0, t1, t2, t3 = _zero_shift_tables(length)
    total = 0
    for chunk_reg in reg.tolist():
        total = (t0[total & 0xFF] ^ t1[(total >> 8) & 0xFF] ^ t2[(total >> 16) & 0xFF]
                 ^ t3[total >> 24] ^ chunk_reg)
    return total ^ 0xFFFFFFFF


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """The crc32c (Castagnoli) checksum of `data`."""
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data).view(np.uint8).ravel()
    else:
        arr = None
    size = arr.size if arr is not None else len(data)
    if size < 1 << 16:
        raw = arr.tobytes() if arr is not None else bytes(data)
        return _crc_register_py(0xFFFFFFFF, raw) ^ 0xFFFFFFFF
    if arr is None:
        arr = np.frombuffer(bytes(data), dtype=np.uint8)
    return _crc32c_numpy(arr)


def _mask_crc(crc: int) -> int:
    # LevelDB stores a rotated, offset crc so that crcs of data holding crcs stay useful.
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _unmask_crc(masked: int) -> int:
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------
# Protobuf wire format, by hand: the two bundle messages are small and fixed.
# --------------------------------------------------------------------------------------

def _read_varint(buf: bytes, pos: int, what: str = "varint") -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError(f"truncated {what}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError(f"malformed {what} (more than 10 bytes)")


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # protobuf encodes negative int64 as ten-byte two's complement
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _parse_proto(buf: bytes) -> dict[int, list]:
    """Fields of one message: number -> values (ints for varint/fixed, bytes for length)."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos, "protobuf tag")
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos, "protobuf varint")
        elif wire == 1:
            if pos + 8 > len(buf):
                raise CheckpointError("truncated protobuf fixed64")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos, "protobuf length")
            if pos + length > len(buf):
                raise CheckpointError("truncated protobuf bytes field")
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise CheckpointError("truncated protobuf fixed32")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire} (field {number})")
        fields.setdefault(number, []).append(value)
    return fields


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _proto_varint_field(number: int, value: int) -> bytes:
    return _encode_varint(number << 3) + _encode_varint(value)


def _proto_bytes_field(number: int, value: bytes) -> bytes:
    return _encode_varint((number << 3) | 2) + _encode_varint(len(value)) + value


def _proto_fixed32_field(number: int, value: int) -> bytes:
    return _encode_varint((number << 3) | 5) + struct.pack("<I", value)


# --------------------------------------------------------------------------------------
# Snappy decompression (LevelDB may compress table blocks with it).
# --------------------------------------------------------------------------------------

def snappy_decompress(buf: bytes) -> bytes:
    """Decode one raw snappy block (varint length, then literal and copy elements)."""
    expected, pos = _read_varint(buf, 0, "snappy length")
    out = bytearray()
    n = len(buf)
    while pos < n:
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal; lengths over 60 are stored in 1-4 extra bytes
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                if pos + extra > n:
                    raise CheckpointError("truncated snappy literal length")
                length = int.from_bytes(buf[pos:pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > n:
                raise CheckpointError("truncated snappy literal")
            out += buf[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            if pos + 1 > n:
                raise CheckpointError("truncated snappy copy")
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            if pos + width > n:
                raise CheckpointError("truncated snappy copy")
            length = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise CheckpointError(f"snappy copy offset {offset} outside the output")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:  # overlapping copy repeats the last `offset` bytes
            for i in range(length):
                out.append(out[start + i])
    if len(out) != expected:
        raise CheckpointError(f"snappy block decoded to {len(out)} bytes, header says {expected}")
    return bytes(out)


# --------------------------------------------------------------------------------------
# LevelDB sorted table (the `.index` file).
# --------------------------------------------------------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
_BLOCK_TRAILER = 5  # compression type byte + masked crc32c
_NO_COMPRESSION, _SNAPPY = 0, 1


def _read_block(data: bytes, handle: bytes | tuple[int, int], path: Path) -> bytes:
    if isinstance(handle, bytes):
        offset, pos = _read_varint(handle, 0, "block handle")
        size, _ = _read_varint(handle, pos, "block handle")
    else:
        offset, size = handle
    end = offset + size + _BLOCK_TRAILER
    if end > len(data):
        raise CheckpointError(
            f"{path}: corrupted index: block at {offset}+{size} runs past the end of the "
            f"file ({len(data)} bytes)")
    contents = data[offset:offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    actual = _crc_register_py(0xFFFFFFFF, contents + bytes([kind])) ^ 0xFFFFFFFF
    if _unmask_crc(stored) != actual:
        raise CheckpointError(f"{path}: corrupted index: checksum mismatch in block at {offset}")
    if kind == _NO_COMPRESSION:
        return contents
    if kind == _SNAPPY:
        return snappy_decompress(contents)
    raise CheckpointError(f"{path}: corrupted index: unknown block compression type {kind}")


def _block_entries(block: bytes, path: Path) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise CheckpointError(f"{path}: corrupted index: block of {len(block)} bytes")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise CheckpointError(f"{path}: corrupted index: bad restart count {num_restarts}")
    entries = []
    key = b""
    pos = 0
    try:
        while pos < limit:
            shared, pos = _read_varint(block, pos)
            non_shared, pos = _read_varint(block, pos)
            value_len, pos = _read_varint(block, pos)
            if shared > len(key) or pos + non_shared + value_len > limit:
                raise CheckpointError("entry out of bounds")
            key = key[:shared] + block[pos:pos + non_shared]
            pos += non_shared
            entries.append((key, block[pos:pos + value_len]))
            pos += value_len
    except CheckpointError as err:
        raise CheckpointError(f"{path}: corrupted index: bad block entry ({err})") from None
    return entries


def read_table(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table file, in key order."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _FOOTER_SIZE:
        raise CheckpointError(f"{path}: corrupted index: {len(data)} bytes is too short")
    footer = data[-_FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != _TABLE_MAGIC:
        raise CheckpointError(f"{path}: corrupted index: bad magic number {magic:#x}")
    try:
        _, pos = _read_varint(footer, 0)  # metaindex offset (unused: no filters needed)
        _, pos = _read_varint(footer, pos)
        index_offset, pos = _read_varint(footer, pos)
        index_size, _ = _read_varint(footer, pos)
    except CheckpointError:
        raise CheckpointError(f"{path}: corrupted index: bad footer") from None
    index = _block_entries(_read_block(data, (index_offset, index_size), path), path)
    entries = []
    for _, handle in index:
        entries.extend(_block_entries(_read_block(data, handle, path), path))
    return entries


def _build_block(entries: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out = bytearray()
    restarts = []
    previous = b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            limit = min(len(previous), len(key))
            while shared < limit and previous[shared] == key[shared]:
                shared += 1
        out += _encode_varint(shared) + _encode_varint(len(key) - shared)
        out += _encode_varint(len(value)) + key[shared:] + value
        previous = key
    if not restarts:
        restarts.append(0)
    for r in restarts:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts))
    return bytes(out)


def write_table(path: str | os.PathLike, entries: list[tuple[bytes, bytes]],
                block_size: int = 4096) -> None:
    """Write sorted (key, value) pairs as an uncompressed LevelDB-format table."""
    keys = [k for k, _ in entries]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
        raise ValueError("table keys must be unique and sorted")
    out = bytearray()

    def emit(block: bytes) -> bytes:
        handle = _encode_varint(len(out)) + _encode_varint(len(block))
        kind = bytes([_NO_COMPRESSION])
        crc = _crc_register_py(0xFFFFFFFF, block + kind) ^ 0xFFFFFFFF
        out.extend(block + kind + struct.pack("<I", _mask_crc(crc)))
        return handle

    index = []
    pending: list[tuple[bytes, bytes]] = []
    pending_size = 0
    for key, value in entries:
        pending.append((key, value))
        pending_size += len(key) + len(value) + 6
        if pending_size >= block_size:
            # The block's last key is a valid separator from the next block's keys.
            index.append((key, emit(_build_block(pending, 16))))
            pending, pending_size = [], 0
    if pending:
        index.append((pending[-1][0], emit(_build_block(pending, 16))))
    metaindex_handle = emit(_build_block([], 1))
    index_handle = emit(_build_block(index, 1))
    footer = (metaindex_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", _TABLE_MAGIC)
    out += footer
    Path(path).write_bytes(bytes(out))


# --------------------------------------------------------------------------------------
# Tensor bundle: the checkpoint itself.
# --------------------------------------------------------------------------------------

# TF DataType enum -> numpy dtype (little-endian). bfloat16 has no numpy dtype: read as
# uint16 and widened to float32 (exactly representable).
_DTYPES = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"),
    5: np.dtype("<i2"), 6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"),
    14: np.dtype("<u2"), 17: np.dtype("<u2"), 19: np.dtype("<f2"), 22: np.dtype("<u4"),
    23: np.dtype("<u8"),
}
_DT_BFLOAT16 = 14
_DTYPE_NAMES = {7: "string", 20: "resource", 21: "variant"}
_NUMPY_TO_TF = {np.dtype(v).newbyteorder("<"): k for k, v in _DTYPES.items() if k not in (14, 17)}
_NUMPY_TO_TF[np.dtype("<u2")] = 17


@dataclass
class BundleEntry:
    """One `BundleEntryProto`: where a tensor lives and what it is."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None  # unmasked; stored masked on disk
    has_slices: bool = False

    @classmethod
    def parse(cls, name: str, buf: bytes) -> BundleEntry:
        f = _parse_proto(buf)
        shape: list[int] = []
        for shape_msg in f.get(2, []):
            for dim in _parse_proto(shape_msg).get(2, []):
                shape.append(_signed64(_parse_proto(dim).get(1, [0])[-1]))
        return cls(
            name=name,
            dtype=f.get(1, [0])[-1],
            shape=tuple(shape),
            shard_id=f.get(3, [0])[-1],
            offset=_signed64(f.get(4, [0])[-1]),
            size=_signed64(f.get(5, [0])[-1]),
            crc32c=_unmask_crc(f[6][-1]) if 6 in f else None,
            has_slices=7 in f,
        )

    def serialize(self) -> bytes:
        shape = b"".join(_proto_bytes_field(2, _proto_varint_field(1, d) if d else b"")
                         for d in self.shape)
        out = _proto_varint_field(1, self.dtype) + _proto_bytes_field(2, shape)
        if self.shard_id:
            out += _proto_varint_field(3, self.shard_id)
        if self.offset:
            out += _proto_varint_field(4, self.offset)
        if self.size:
            out += _proto_varint_field(5, self.size)
        if self.crc32c is not None:
            out += _proto_fixed32_field(6, _mask_crc(self.crc32c))
        return out


@dataclass
class Bundle:
    """A parsed `.index`: the header fields and one entry per tensor name."""

    prefix: Path
    num_shards: int
    big_endian: bool
    entries: dict[str, BundleEntry] = field(default_factory=dict)

    def shard_path(self, shard_id: int) -> Path:
        return Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")


def resolve_checkpoint_prefix(path: str | os.PathLike) -> Path:
    """The `PREFIX` of a checkpoint given a folder (with `checkpoint`), a prefix or `.index`."""
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            match = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"',
                              state.read_text(encoding="utf-8", errors="replace"), re.M)
            if not match:
                raise CheckpointError(f"{state}: no model_checkpoint_path line")
            named = Path(match.group(1))
            # Released archives often carry the absolute path of the machine that wrote them.
            for candidate in (path / named, path / named.name):
                if Path(f"{candidate}.index").is_file():
                    return candidate
            raise CheckpointError(
                f"{state} names {named}, but {path / named.name}.index does not exist")
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        if not indexes:
            raise CheckpointError(f"{path}: no TF checkpoint here (no `checkpoint` or *.index file)")
        raise CheckpointError(
            f"{path}: several checkpoints ({', '.join(p.name for p in indexes)}) and no "
            f"`checkpoint` file to choose; pass the prefix of one")
    if path.suffix == ".index":
        path = path.with_suffix("")
    elif re.search(r"\.data-\d{5}-of-\d{5}$", path.name):
        path = path.with_name(path.name.rsplit(".data-", 1)[0])
    if Path(f"{path}.index").is_file():
        return path
    raise CheckpointError(f"no TF checkpoint at {path} ({path}.index does not exist)")


def read_bundle_index(path: str | os.PathLike) -> Bundle:
    """Parse a checkpoint's `.index` file into a `Bundle` (no tensor data is read)."""
    prefix = resolve_checkpoint_prefix(path)
    index_path = Path(f"{prefix}.index")
    pairs = read_table(index_path)
    if not pairs or pairs[0][0] != b"":
        raise CheckpointError(f"{index_path}: corrupted index: no bundle header entry")
    try:
        header = _parse_proto(pairs[0][1])
        bundle = Bundle(prefix=prefix, num_shards=header.get(1, [1])[-1],
                        big_endian=header.get(2, [0])[-1] == 1)
        for key, value in pairs[1:]:
            # Slices of partitioned variables have binary keys; keep them printable.
            name = key.decode("utf-8", errors="backslashreplace")
            bundle.entries[name] = BundleEntry.parse(name, value)
    except CheckpointError as err:
        raise CheckpointError(f"{index_path}: corrupted index: {err}") from None
    return bundle


def _decode_tensor(entry: BundleEntry, raw: bytes, big_endian: bool) -> np.ndarray:
    dtype = _DTYPES[entry.dtype]
    if big_endian:
        dtype = dtype.newbyteorder(">")
    count = int(np.prod(entry.shape, dtype=np.int64))
    if min(entry.shape, default=0) < 0 or len(raw) != count * dtype.itemsize:
        raise CheckpointError(
            f"tensor {entry.name}: {entry.size} bytes do not hold shape {list(entry.shape)}")
    arr = np.frombuffer(raw, dtype=dtype)
    arr = arr.reshape(entry.shape).astype(dtype.newbyteorder("="), copy=True)
    if entry.dtype == _DT_BFLOAT16:
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def read_tf_checkpoint(path: str | os.PathLike, names=None, verify: bool = True) -> dict[str, np.ndarray]:
    """Read a TF checkpoint's numeric tensors into numpy arrays, without TensorFlow.

    `path` is a folder holding a `checkpoint` file, or a checkpoint prefix such as
    `albert_model.ckpt` (with `.index` and `.data-NNNNN-of-NNNNN` beside it). `names`
    restricts the read to those variables. String and resource tensors are skipped with a
    logged note; bfloat16 is widened to float32. With `verify`, each tensor's crc32c is
    checked against the index.
    """
    return read_bundle_tensors(read_bundle_index(path), names, verify)


def read_bundle_tensors(bundle: Bundle, names=None, verify: bool = True) -> dict[str, np.ndarray]:
    """The tensors of `bundle` (all, or those in `names`), read from its data shards."""
    wanted = bundle.entries if names is None else {n: bundle.entries[n] for n in names}
    shard_sizes: dict[int, int] = {}
    handles = {}
    tensors: dict[str, np.ndarray] = {}
    try:
        for name, entry in wanted.items():
            if entry.has_slices:
                raise CheckpointError(
                    f"{bundle.prefix}: variable {name} is saved in slices (a partitioned "
                    f"variable); reading those is not supported")
            if entry.dtype not in _DTYPES:
                kind = _DTYPE_NAMES.get(entry.dtype, f"dtype {entry.dtype}")
                logger.info("skipping %s: %s tensors are not model weights", name, kind)
                continue
            shard = bundle.shard_path(entry.shard_id)
            if entry.shard_id not in handles:
                if not shard.is_file():
                    raise CheckpointError(f"{shard}: data shard is missing (needed for {name})")
                handles[entry.shard_id] = open(shard, "rb")
                shard_sizes[entry.shard_id] = shard.stat().st_size
            end = entry.offset + entry.size
            if end > shard_sizes[entry.shard_id]:
                raise CheckpointError(
                    f"{shard}: truncated data shard: tensor {name} needs bytes "
                    f"{entry.offset}..{end}, the file has {shard_sizes[entry.shard_id]}")
            fh = handles[entry.shard_id]
            fh.seek(entry.offset)
            raw = fh.read(entry.size)
            if verify and entry.crc32c is not None:
                if crc32c(np.frombuffer(raw, dtype=np.uint8)) != entry.crc32c:
                    raise CheckpointError(
                        f"{shard}: corrupted data: checksum mismatch for tensor {name}")
            try:
                tensors[name] = _decode_tensor(entry, raw, bundle.big_endian)
            except CheckpointError as err:
                raise CheckpointError(f"{bundle.prefix}.index: corrupted index: {err}") from None
    finally:
        for fh in handles.values():
            fh.close()
    return tensors


def list_tf_variables(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a checkpoint's variables, from its `.index` alone."""
    return {name: e.shape for name, e in read_bundle_index(path).entries.items()}


def write_tf_checkpoint(prefix: str | os.PathLike, tensors: dict[str, np.ndarray]) -> Path:
    """Write `tensors` as a single-shard TF checkpoint at `prefix` (plus a `checkpoint` file).

    TensorFlow's `tf.train.load_checkpoint` reads the result; our tests use it to build
    fixtures without TensorFlow.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    offset = 0
    with open(f"{prefix}.data-00000-of-00001", "wb") as data:
        for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
            arr = np.asarray(tensors[name])
            little = arr.dtype.newbyteorder("<")
            if little not in _NUMPY_TO_TF:
                raise ValueError(f"tensor {name}: dtype {arr.dtype} has no TF equivalent here")
            raw = np.ascontiguousarray(arr, dtype=little).tobytes()
            entry = BundleEntry(name=name, dtype=_NUMPY_TO_TF[little], shape=arr.shape,
                                offset=offset, size=len(raw), crc32c=crc32c(raw))
            entries.append((name.encode("utf-8"), entry.serialize()))
            data.write(raw)
            offset += len(raw)
    header = _proto_varint_field(1, 1) + _proto_bytes_field(3, _proto_varint_field(1, 1))
    write_table(f"{prefix}.index", [(b"", header)] + entries)
    (prefix.parent / "checkpoint").write_text(
        f'model_checkpoint_path: "{prefix.name}"\n'
        f'all_model_checkpoint_paths: "{prefix.name}"\n', encoding="utf-8")
    return prefix


# --------------------------------------------------------------------------------------
# Name tables: TF variable -> our state-dict name (HuggingFace transformers' ALBERT names).
# A `Target` says where a TF tensor goes and whether it is transposed: TF dense kernels
# are [in, out], torch nn.Linear weights are [out, in].
# --------------------------------------------------------------------------------------


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message lists every problem found."""


@dataclass(frozen=True)
class Target:
    name: str
    transpose: bool = False


# Variables both layouts store under the same names.
COMMON_WEIGHTS = {
    "bert/embeddings/word_embeddings": Target("albert.embeddings.word_embeddings.weight"),
    "bert/embeddings/position_embeddings": Target("albert.embeddings.position_embeddings.weight"),
    "bert/embeddings/token_type_embeddings": Target("albert.embeddings.token_type_embeddings.weight"),
    "bert/embeddings/LayerNorm/gamma": Target("albert.embeddings.LayerNorm.weight"),
    "bert/embeddings/LayerNorm/beta": Target("albert.embeddings.LayerNorm.bias"),
    "bert/pooler/dense/kernel": Target("albert.pooler.weight", transpose=True),
    "bert/pooler/dense/bias": Target("albert.pooler.bias"),
    "cls/predictions/transform/dense/kernel": Target("predictions.dense.weight", transpose=True),
    "cls/predictions/transform/dense/bias": Target("predictions.dense.bias"),
    "cls/predictions/transform/LayerNorm/gamma": Target("predictions.LayerNorm.weight"),
    "cls/predictions/transform/LayerNorm/beta": Target("predictions.LayerNorm.bias"),
    "cls/predictions/output_bias": Target("predictions.bias"),
    # Already [2, H]: the original code multiplies by its transpose.
    "cls/seq_relationship/output_weights": Target("sop_classifier.classifier.weight"),
    "cls/seq_relationship/output_bias": Target("sop_classifier.classifier.bias"),
}

GOOGLE_WEIGHTS = {
    "bert/encoder/embedding_hidden_mapping_in/kernel":
        Target("albert.encoder.embedding_hidden_mapping_in.weight", transpose=True),
    "bert/encoder/embedding_hidden_mapping_in/bias":
        Target("albert.encoder.embedding_hidden_mapping_in.bias"),
}

BRIGHTMART_WEIGHTS = {
    # [E, H] in TF; our projection is nn.Linear(E, H, bias=False), weight [H, E].
    "bert/embeddings/word_embeddings_2":
        Target("albert.embeddings.embedding_projection.weight", transpose=True),
}

# Google: inside bert/encoder/transformer/group_{g}/inner_group_{i}/ -> inside one AlbertLayer.
GOOGLE_LAYER = {
    "attention_1/self/query/kernel": Target("attention.query.weight", transpose=True),
    "attention_1/self/query/bias": Target("attention.query.bias"),
    "attention_1/self/key/kernel": Target("attention.key.weight", transpose=True),
    "attention_1/self/key/bias": Target("attention.key.bias"),
    "attention_1/self/value/kernel": Target("attention.value.weight", transpose=True),
    "attention_1/self/value/bias": Target("attention.value.bias"),
    "attention_1/output/dense/kernel": Target("attention.dense.weight", transpose=True),
    "attention_1/output/dense/bias": Target("attention.dense.bias"),
    "LayerNorm/gamma": Target("attention.LayerNorm.weight"),
    "LayerNorm/beta": Target("attention.LayerNorm.bias"),
    "ffn_1/intermediate/dense/kernel": Target("ffn.weight", transpose=True),
    "ffn_1/intermediate/dense/bias": Target("ffn.bias"),
    "ffn_1/intermediate/output/dense/kernel": Target("ffn_output.weight", transpose=True),
    "ffn_1/intermediate/output/dense/bias": Target("ffn_output.bias"),
    "LayerNorm_1/gamma": Target("full_layer_layer_norm.weight"),
    "LayerNorm_1/beta": Target("full_layer_layer_norm.bias"),
}

# brightmart: a layer is three scopes (attention, intermediate, output); which of them are
# shared decides their names, see BRIGHTMART_SCOPES. Pre-LN uses the same names.
BRIGHTMART_LAYER = {
    "attention": {
        "self/query/kernel": Target("attention.query.weight", transpose=True),
        "self/query/bias": Target("attention.query.bias"),
        "self/key/kernel": Target("attention.key.weight", transpose=True),
        "self/key/bias": Target("attention.key.bias"),
        "self/value/kernel": Target("attention.value.weight", transpose=True),
        "self/value/bias": Target("attention.value.bias"),
        "output/dense/kernel": Target("attention.dense.weight", transpose=True),
        "output/dense/bias": Target("attention.dense.bias"),
        "output/LayerNorm/gamma": Target("attention.LayerNorm.weight"),
        "output/LayerNorm/beta": Target("attention.LayerNorm.bias"),
    },
    "intermediate": {
        "dense/kernel": Target("ffn.weight", transpose=True),
        "dense/bias": Target("ffn.bias"),
    },
    "output": {
        "dense/kernel": Target("ffn_output.weight", transpose=True),
        "dense/bias": Target("ffn_output.bias"),
        "LayerNorm/gamma": Target("full_layer_layer_norm.weight"),
        "LayerNorm/beta": Target("full_layer_layer_norm.bias"),
    },
}

# Scope of each part of layer {i} under bert/encoder/, per sharing mode (brightmart's
# `layer_scope`; its post-LN code names "all" and "none" the same way). A shared part is
# stored once and belongs to layer 0, as in our model (see model.SHARED_PARTS).
BRIGHTMART_SCOPES = {
    "all": {"attention": "layer_shared/attention", "intermediate": "layer_shared/intermediate",
            "output": "layer_shared/output"},
    "attention": {"attention": "layer_shared/attention",
                  "intermediate": "layer_shared/intermediate_{i}", "output": "layer_shared/output_{i}"},
    "ffn": {"attention": "layer_shared/attention_{i}",
            "intermediate": "layer_shared/intermediate", "output": "layer_shared/output"},
    "none": {"attention": "layer_{i}/attention", "intermediate": "layer_{i}/intermediate",
             "output": "layer_{i}/output"},
}

# Variables that are not model weights: dropped, and reported with the reason.
IGNORED_VARIABLES = [
    (re.compile(r"/adam_[mv]$"), "Adam optimizer slot"),
    (re.compile(r"lamb", re.I), "LAMB optimizer state"),
    (re.compile(r"^beta[12]_power$"), "Adam optimizer state"),
    (re.compile(r"^global_step$"), "training step counter"),
]


def ignore_reason(name: str) -> str | None:
    for pattern, reason in IGNORED_VARIABLES:
        if pattern.search(name):
            return reason
    return None


def _layer_prefix(group: int, inner: int = 0) -> str:
    return f"albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}."


def tf_weight_map(fmt: str, config) -> dict[str, Target]:
    """Every TF variable a checkpoint of format `fmt` ("google" or "brightmart") must hold
    for a model with `config`, mapped to our state-dict names."""
    table = dict(COMMON_WEIGHTS)
    if fmt == "google":
        table.update(GOOGLE_WEIGHTS)
        for g in range(config.num_hidden_groups):
            for i in range(config.inner_group_num):
                scope = f"bert/encoder/transformer/group_{g}/inner_group_{i}/"
                for suffix, target in GOOGLE_LAYER.items():
                    table[scope + suffix] = Target(_layer_prefix(g, i) + target.name, target.transpose)
    elif fmt == "brightmart":
        table.update(BRIGHTMART_WEIGHTS)
        scopes = BRIGHTMART_SCOPES[config.sharing]
        # Unshared models store one layer per application (model: num_hidden_groups == layers).
        layers = config.num_hidden_layers if config.sharing != "all" else 1
        for part, suffixes in BRIGHTMART_LAYER.items():
            for i in range(layers):
                if "{i}" not in scopes[part] and i > 0:
                    continue  # a shared part: stored once, for layer 0
                scope = "bert/encoder/" + scopes[part].format(i=i) + "/"
                for suffix, target in suffixes.items():
                    table[scope + suffix] = Target(_layer_prefix(i) + target.name, target.transpose)
    else:
        raise ValueError(f"no TF name table for format {fmt!r}")
    return table


# --------------------------------------------------------------------------------------
# Detection: format and layout from the variable names; the config from beside them.
# --------------------------------------------------------------------------------------

FORMATS = ("auto", "brightmart", "google", "hf")
_GOOGLE_LAYER_RE = re.compile(r"^bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/")
_BRIGHTMART_LAYER_RE = re.compile(
    r"^bert/encoder/(?:layer_shared|layer_(\d+))/(attention|intermediate|output)(?:_(\d+))?/")


@dataclass
class Layout:
    """What the variable names reveal. Layer-norm placement (`ln_type`) is not among it:
    pre-LN and post-LN checkpoints use the same names, so it comes from the config."""

    fmt: str
    sharing: str = "all"
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    layers_stored: int | None = None  # layers stored one by one (unshared parts), if any

    @property
    def embedding_layout(self) -> str:
        return self.fmt


def detect_tf_format(names) -> str:
    """"google" or "brightmart", from the variable names of a TF checkpoint."""
    names = [n for n in names if ignore_reason(n) is None]
    google = [n for n in names if n.startswith(("bert/encoder/transformer/",
                                                "bert/encoder/embedding_hidden_mapping_in/"))]
    brightmart = [n for n in names
                  if n == "bert/embeddings/word_embeddings_2" or _BRIGHTMART_LAYER_RE.match(n)]
    if google and brightmart:
        raise ConversionError(
            f"unknown checkpoint format: it mixes Google names ({google[0]}) and brightmart "
            f"names ({brightmart[0]})")
    if google:
        return "google"
    if brightmart:
        return "brightmart"
    sample = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    raise ConversionError(
        f"unknown checkpoint format: no ALBERT variables found ({sample or 'no variables'}). "
        "Expected brightmart names (bert/encoder/layer_shared/..., "
        "bert/embeddings/word_embeddings_2) or Google names (bert/encoder/transformer/group_0/...)")


def detect_layout(fmt: str, names) -> Layout:
    """Sharing and groups from the layer scopes. A guess for odd name sets is fine: the
    name table built from it then reports every variable that does not fit."""
    if fmt == "google":
        found = [tuple(map(int, m.groups())) for m in map(_GOOGLE_LAYER_RE.match, names) if m]
        groups = 1 + max((g for g, _ in found), default=0)
        inner = 1 + max((i for _, i in found), default=0)
        return Layout(fmt, "all", groups, inner)
    layer_ids, shared_parts, indexed = set(), set(), set()
    for m in filter(None, map(_BRIGHTMART_LAYER_RE.match, names)):
        layer, part, part_id = m.groups()
        if layer is not None:
            layer_ids.add(int(layer))
        elif part_id is None:
            shared_parts.add("attention" if part == "attention" else "ffn")
        else:
            indexed.add(int(part_id))
    if layer_ids:
        return Layout(fmt, "none", layers_stored=1 + max(layer_ids))
    stored = 1 + max(indexed) if indexed else None
    if shared_parts == {"attention"}:
        return Layout(fmt, "attention", layers_stored=stored)
    if shared_parts == {"ffn"}:
        return Layout(fmt, "ffn", layers_stored=stored)
    return Layout(fmt, "all")


def _find_config_file(folder: Path) -> Path:
    candidates = sorted(folder.glob("albert_config*.json"))
    if not candidates:  # some releases name it otherwise (bert_config.json, config.json)
        candidates = sorted(p for p in folder.glob("*config*.json")
                            if p.name != "tokenizer_config.json")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ConversionError(
            f"no albert_config*.json beside the checkpoint in {folder}; pass the release's "
            f"config with --config (or a preset name: {', '.join(PRESETS)})")
    raise ConversionError(
        f"several configs in {folder} ({', '.join(p.name for p in candidates)}); choose one "
        f"with --config")


def _load_config_source(config, folder: Path) -> tuple[AlbertConfig | None, dict, str]:
    """(config or None, the fields it states explicitly, where it came from)."""
    if isinstance(config, AlbertConfig):
        return config, dataclasses.asdict(config), "given AlbertConfig"
    if config is None:
        path = _find_config_file(folder)
    else:
        path = Path(config)
        if not path.is_file() and str(config) in PRESETS:
            return None, {}, f"preset {config}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"config file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ConversionError(f"{path}: not a config (a JSON object is expected)")
    return None, raw, str(path)


def resolve_config(config, folder: Path, layout: Layout) -> tuple[AlbertConfig, str]:
    """The model config: the file (or preset / object) with the layout the names reveal.

    Layout fields the config states explicitly must agree with the checkpoint; those it does
    not state (brightmart's and Google's files cannot say) are taken from the names.
    """
    given, stated, source = _load_config_source(config, folder)
    detected = {"embedding_layout": layout.embedding_layout, "sharing": layout.sharing}
    if layout.fmt == "google":
        detected.update(num_hidden_groups=layout.num_hidden_groups,
                        inner_group_num=layout.inner_group_num)
    problems = [f"the config says {key}={stated[key]!r}, the checkpoint's variable names "
                f"say {value!r}" for key, value in detected.items()
                if key in stated and stated[key] != value]
    try:
        if given is not None:
            cfg = dataclasses.replace(given, **detected)
        elif source.startswith("preset "):
            cfg = AlbertConfig.preset(str(config), **detected)
        else:
            cfg = AlbertConfig.from_dict(stated, **detected)
    except (TypeError, ValueError) as err:
        problems.append(f"the config does not fit the checkpoint: {err}")
        cfg = None
    if cfg is not None and layout.layers_stored not in (None, cfg.num_hidden_layers):
        problems.append(
            f"the config says num_hidden_layers={cfg.num_hidden_layers}, the checkpoint stores "
            f"{layout.layers_stored} layers")
    if problems:
        raise ConversionError(f"config {source} disagrees with the checkpoint:\n  - "
                              + "\n  - ".join(problems))
    return cfg, source


# --------------------------------------------------------------------------------------
# convert(): SRC (TF checkpoint, HF folder, or an archive of either) -> OUT directory.
# --------------------------------------------------------------------------------------


@dataclass
class ConversionSummary:
    source: str
    out: str
    format: str
    config_source: str
    layout: dict
    parameters: int
    mapped: dict[str, str]  # source variable -> our parameter
    ignored: dict[str, str]  # source variable -> why it was dropped
    initialised: list[str] = field(default_factory=list)  # ours, absent from the source

    def __str__(self) -> str:
        layout = ", ".join(f"{k}={v}" for k, v in self.layout.items())
        lines = [
            f"converted {self.source} -> {self.out}",
            f"  format: {self.format}; config: {self.config_source}",
            f"  layout: {layout}",
            f"  parameters: {self.parameters:,}",
            f"  variables mapped: {len(self.mapped)}",
            f"  variables ignored: {len(self.ignored)}",
        ]
        reasons: dict[str, list[str]] = {}
        for name, reason in self.ignored.items():
            reasons.setdefault(reason, []).append(name)
        for reason, names in sorted(reasons.items()):
            example = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            lines.append(f"    {len(names)} x {reason}: {example}")
        if self.initialised:
            lines.append(f"  newly initialised (not in the source): {', '.join(self.initialised)}")
        return "\n".join(lines)


def _layout_of(cfg: AlbertConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("embedding_layout", "ln_type", "sharing",
                                          "num_hidden_layers", "num_hidden_groups",
                                          "inner_group_num")}


def _is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / checkpoint.CONFIG_NAME).is_file() and any(
        (path / name).is_file() for name in (checkpoint.WEIGHTS_NAME,
                                             checkpoint.WEIGHTS_NAME + ".index.json",
                                             "pytorch_model.bin"))


def _is_tf_checkpoint(path: Path) -> bool:
    try:
        resolve_checkpoint_prefix(path)
    except CheckpointError:
        return False
    return True


def _extract_archive(archive: Path, into: Path) -> Path:
    """Unpack a released zip/tar and return the folder in it that holds the model."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            root = into.resolve()
            for member in zf.namelist():  # refuse members that would land outside `into`
                if not (into / member).resolve().is_relative_to(root):
                    raise ConversionError(f"{archive}: unsafe path in archive: {member}")
            zf.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(into, filter="data")  # refuses links and paths leaving `into`
            else:  # Python < 3.11.4 has no extraction filters: check the members here
                root = into.resolve()
                for member in tf.getmembers():
                    if (member.issym() or member.islnk() or member.isdev()
                            or not (into / member.name).resolve().is_relative_to(root)):
                        raise ConversionError(f"{archive}: unsafe member in archive: {member.name}")
                tf.extractall(into)
    else:
        raise ConversionError(f"{archive}: not a checkpoint, a folder, a zip or a tar archive")
    found = sorted({p.parent for p in into.rglob("*.index")} | {p.parent for p in into.rglob("checkpoint")}
                   | {p.parent for p in into.rglob(checkpoint.CONFIG_NAME) if _is_hf_dir(p.parent)})
    found = [p for p in found if "__MACOSX" not in p.parts]
    if len(found) != 1:
        where = ", ".join(str(p.relative_to(into)) for p in found)
        what = f"{len(found)} models ({where})" if found else "no model"
        raise ConversionError(f"{archive}: expected one checkpoint in the archive, found {what}")
    return found[0]


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConversionError(f"{out} already exists and is not an empty folder; choose another OUT")


def _save_atomically(model: AlbertForPreTraining, out: Path, vocab_file: Path | None,
                     extra_files: dict[str, str]) -> None:
    """Write OUT complete or not at all: save into a hidden sibling, then rename it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        model.save_pretrained(tmp, vocab_file=vocab_file)
        for name, text in extra_files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked before converting
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _vocab_file(folder: Path, vocab_size: int) -> Path | None:
    """The release's vocab.txt if it ships one, else None (the bundled one), checked."""
    path = folder / checkpoint.VOCAB_NAME
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n != vocab_size:
            raise ConversionError(
                f"{path} has {n} tokens but the config says vocab_size={vocab_size}")
        return path
    bundled = resources.files("albert_zh") / "resources" / checkpoint.VOCAB_NAME
    with bundled.open(encoding="utf-8") as f:
        n = sum(1 for _ in f)
    if n != vocab_size:
        raise ConversionError(
            f"no vocab.txt beside the checkpoint in {folder}, and the bundled Chinese "
            f"vocabulary has {n} tokens, not vocab_size={vocab_size}; put the release's "
            f"vocab.txt there")
    logger.info("no vocab.txt beside the checkpoint: using the bundled Chinese vocabulary")
    return None


def _empty_model(cfg: AlbertConfig) -> AlbertForPreTraining:
    """The model with uninitialised storage: every parameter is overwritten from the
    checkpoint (checked by the caller), and random init of a large model takes seconds."""
    with torch.device("meta"):
        model = AlbertForPreTraining(cfg)
    if any(True for _ in model.buffers()):  # buffers would need their real values
        return AlbertForPreTraining(cfg)
    return model.to_empty(device="cpu")


def load_tf_model(src, config=None, fmt: str = "auto") -> tuple[AlbertForPreTraining, ConversionSummary]:
    """Our pretraining model with the weights of TF checkpoint `src`, every name and shape
    checked first; raises ConversionError listing all problems."""
    bundle = read_bundle_index(src)
    names = list(bundle.entries)
    detected = detect_tf_format(names)
    if fmt not in ("auto", detected):
        raise ConversionError(
            f"--format {fmt} was asked for, but {bundle.prefix} has {detected}-style names")
    layout = detect_layout(detected, names)
    cfg, config_source = resolve_config(config, bundle.prefix.parent, layout)
    table = tf_weight_map(detected, cfg)

    model = _empty_model(cfg)
    # named_parameters() lists a shared module once: under layer 0, as the tables do.
    params = dict(model.named_parameters())
    targets = {t.name for t in table.values()}
    if targets != set(params):  # the tables and model.py disagree: a bug here, not in SRC
        raise RuntimeError(
            f"name table out of step with the model: unmapped parameters "
            f"{sorted(set(params) - targets)}, unknown targets {sorted(targets - set(params))}")

    ignored = {n: r for n in names if (r := ignore_reason(n)) is not None}
    problems = []
    unplaceable = [n for n in names if n not in table and n not in ignored]
    if unplaceable:
        problems.append(f"{len(unplaceable)} variables that cannot be placed in a "
                        f"{detected}-layout model with this config:\n      "
                        + "\n      ".join(f"{n} {list(bundle.entries[n].shape)}" for n in unplaceable))
    missing = [n for n in table if n not in bundle.entries]
    if missing:
        problems.append(f"{len(missing)} variables the model needs are missing:\n      "
                        + "\n      ".join(missing))
    for tf_name, target in table.items():
        if tf_name not in bundle.entries:
            continue
        shape = bundle.entries[tf_name].shape
        ours = tuple(reversed(shape)) if target.transpose else shape
        expected = tuple(params[target.name].shape)
        if ours != expected:
            note = f" (transposed: {list(ours)})" if target.transpose else ""
            problems.append(f"shape mismatch: {tf_name} is {list(shape)}{note} in the "
                            f"checkpoint, the config makes {target.name} {list(expected)}")
    if problems:
        raise ConversionError(f"cannot convert {bundle.prefix} (config {config_source}):\n  - "
                              + "\n  - ".join(problems))

    tensors = read_bundle_tensors(bundle, table)
    with torch.no_grad():
        for tf_name, target in table.items():
            arr = tensors[tf_name]
            arr = np.ascontiguousarray(arr.T if target.transpose else arr)
            params[target.name].copy_(torch.from_numpy(arr))
    summary = ConversionSummary(
        source=str(bundle.prefix), out="", format=detected, config_source=config_source,
        layout=_layout_of(cfg), parameters=model.num_parameters(),
        mapped={n: t.name for n, t in table.items()}, ignored=ignored)
    return model, summary


def load_hf_model(src: Path, config=None) -> tuple[AlbertForPreTraining, ConversionSummary]:
    """Our pretraining model from a HuggingFace ALBERT folder (e.g. voidful/albert_chinese_*)."""
    if config is None:
        model = AlbertForPreTraining.from_pretrained(src)
        config_source = str(src / checkpoint.CONFIG_NAME)
    else:
        given, stated, config_source = _load_config_source(config, src)
        cfg = given or (AlbertConfig.preset(str(config)) if config_source.startswith("preset ")
                        else AlbertConfig.from_dict(stated))
        model = AlbertForPreTraining(cfg)
        checkpoint.load_into(model, src)
    found = list(checkpoint.read_weights(src))
    params = {n for n, _ in model.named_parameters()}

    def full(key: str) -> str:  # AlbertModel / AlbertForMaskedLM save without "albert."
        return key if key.startswith(("albert.",) + checkpoint.HEAD_PREFIXES) else "albert." + key

    mapped = {k: full(k) for k in found if full(k) in params}
    ignored = {k: "derived from other weights (tied or a buffer)" if k.endswith(checkpoint.DERIVED_KEYS)
               else "not part of the pretraining model" for k in found if full(k) not in params}
    summary = ConversionSummary(
        source=str(src), out="", format="hf", config_source=config_source,
        layout=_layout_of(model.config), parameters=model.num_parameters(), mapped=mapped,
        ignored=ignored, initialised=sorted(params - set(mapped.values())))
    return model, summary


def convert(src, out, config=None, fmt: str = "auto", to: str = "ours") -> ConversionSummary:
    """Convert a released checkpoint into a `save_pretrained` directory OUT.

    src: a TF checkpoint (folder with `checkpoint`, or a `*.ckpt` prefix) in brightmart or
        Google naming, a HuggingFace ALBERT folder, or a release's zip/tar of either.
    config: the release's albert_config*.json (default: the one beside the checkpoint), a
        preset name, or an AlbertConfig. `ln_type` (pre/post-LN) can only come from here.
    fmt: "auto", "brightmart", "google" or "hf"; anything but "auto" is checked.
    to: "ours", or "hf" to insist on a layout transformers' AlbertModel computes exactly,
        and to add a tokenizer_config.json naming BertTokenizer (the Chinese releases use
        BERT's WordPiece vocabulary, not AlbertTokenizer's sentencepiece).
    Nothing is written unless every variable is placed and every shape checked.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if to not in ("ours", "hf"):
        raise ValueError(f"to must be 'ours' or 'hf', got {to!r}")
    src, out = Path(src), Path(out)
    _prepare_out(out)
    with tempfile.TemporaryDirectory(prefix="albert_zh_convert_") as scratch:
        if src.is_file() and not _is_tf_checkpoint(src):
            src = _extract_archive(src, Path(scratch))
        if not src.exists() and not _is_tf_checkpoint(src):
            raise ConversionError(f"{src} does not exist")
        if fmt == "hf" or (fmt == "auto" and _is_hf_dir(src)):
            if not _is_hf_dir(src):
                raise ConversionError(f"--format hf: {src} is not a folder with config.json "
                                      f"and model.safetensors or pytorch_model.bin")
            model, summary = load_hf_model(src, config)
            folder = src
        elif _is_hf_dir(src) and not _is_tf_checkpoint(src):
            raise ConversionError(f"--format {fmt}: {src} is a HuggingFace folder, not a TF "
                                  f"checkpoint; use --format hf or auto")
        elif _is_tf_checkpoint(src):
            model, summary = load_tf_model(src, config, fmt)
            folder = resolve_checkpoint_prefix(src).parent
        else:
            raise ConversionError(
                f"unknown format: {src} is neither a TF checkpoint (a folder with a "
                f"`checkpoint` or *.index file, or a *.ckpt prefix) nor a HuggingFace folder "
                f"(config.json + model.safetensors / pytorch_model.bin)")
        vocab = _vocab_file(folder, model.config.vocab_size)
        extra = {}
        if to == "hf":
            if not model.config.hf_compatible:
                raise ConversionError(
                    f"--to hf: transformers' AlbertModel cannot compute this model "
                    f"(embedding_layout={model.config.embedding_layout}, ln_type="
                    f"{model.config.ln_type}, sharing={model.config.sharing}); only Google's "
                    f"layout with post-LN converts. Use the default output with albert_zh.")
            extra["tokenizer_config.json"] = json.dumps(
                {"tokenizer_class": "BertTokenizer", "do_lower_case": True,
                 "model_max_length": model.config.max_position_embeddings}, indent=2) + "\n"
        _save_atomically(model, out, vocab, extra)
    summary.out = str(out)
    logger.info("%s", summary)
    return summary
