"""The pure-Python TF checkpoint reader and writer: crc32c, protobuf, snappy, LevelDB tables,
tensor bundles; and the reference checkpoints written by the original TF code."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from albert_zh.tf_checkpoint import (
    BundleEntry,
    TFCheckpointError,
    crc32c,
    list_tf_variables,
    read_table,
    read_tf_checkpoint,
    snappy_decompress,
    write_table,
    write_tf_checkpoint,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "tf_checkpoints"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"reference TF checkpoints not present at {REFERENCE}")

# ---- crc32c, protobuf, snappy, table ------------------------------------------------------

def test_crc32c_known_value_and_vectorised_path_agree():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C
    assert crc32c(b"") == 0
    data = np.random.default_rng(0).integers(0, 256, 300_001, dtype=np.uint8)
    small = [crc32c(data[:n]) for n in (1, 4, 5, 65535)]
    assert small == [crc32c(data[:n].tobytes()) for n in (1, 4, 5, 65535)]

    def slow(buf: bytes) -> int:  # bit-by-bit definition, independent of the tables
        crc = 0xFFFFFFFF
        for b in buf:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        return crc ^ 0xFFFFFFFF

    sample = data[:70_000]  # above the vectorised threshold
    assert crc32c(sample) == slow(sample.tobytes())
    assert crc32c(data) == crc32c(bytearray(data.tobytes()))


def test_bundle_entry_round_trip():
    entry = BundleEntry(name="x", dtype=1, shape=(3, 0, 7), shard_id=2, offset=1 << 40,
                        size=12345, crc32c=0xDEADBEEF)
    assert BundleEntry.parse("x", entry.serialize()) == entry


def _snappy_literal(data: bytes) -> bytes:
    """A valid snappy stream made of one literal (enough to exercise compressed blocks)."""
    n = len(data)
    out = bytearray()
    v = n
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    if n - 1 < 60:
        out.append((n - 1) << 2)
    else:
        out.append(61 << 2)  # length - 1 in the next two bytes
        out += (n - 1).to_bytes(2, "little")
    return bytes(out + data)


def test_snappy_literals_and_copies():
    # "abcd" then copy(offset 4, len 8) -> "abcdabcdabcd", then an overlapping 2-byte-offset
    # copy(offset 1, len 3) -> "ddd", then literal "xy".
    stream = bytes([17, 3 << 2]) + b"abcd" + bytes([((8 - 4) << 2) | 1, 4])
    stream += bytes([((3 - 1) << 2) | 2]) + (1).to_bytes(2, "little")
    stream += bytes([1 << 2]) + b"xy"
    assert snappy_decompress(stream) == b"abcdabcdabcdddd" + b"xy"
    assert snappy_decompress(_snappy_literal(b"q" * 300)) == b"q" * 300
    with pytest.raises(TFCheckpointError, match="offset"):
        snappy_decompress(bytes([8, ((8 - 4) << 2) | 1, 4]))


def test_table_round_trip_with_many_blocks(tmp_path):
    entries = [(f"key/{i:05d}".encode(), bytes([i % 256]) * (i % 50)) for i in range(700)]
    write_table(tmp_path / "t", entries, block_size=512)
    assert read_table(tmp_path / "t") == entries


def test_table_reads_snappy_compressed_blocks(tmp_path):
    """LevelDB may snappy-compress blocks: a table built by hand with every block compressed."""
    from albert_zh.tf_checkpoint import _build_block, _encode_varint, _mask_crc

    entries = [(f"k{i:03d}".encode(), b"v" * i) for i in range(40)]
    table = bytearray()

    def emit(block: bytes) -> bytes:
        body = _snappy_literal(block)
        handle = _encode_varint(len(table)) + _encode_varint(len(body))
        table.extend(body + b"\x01" + struct.pack("<I", _mask_crc(crc32c(body + b"\x01"))))
        return handle

    index = [(entries[19][0], emit(_build_block(entries[:20], 16))),
             (entries[-1][0], emit(_build_block(entries[20:], 16)))]
    handles = emit(_build_block([], 1)) + emit(_build_block(index, 1))
    table += handles.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    (tmp_path / "t").write_bytes(bytes(table))
    assert read_table(tmp_path / "t") == entries


# ---- checkpoint reader and writer ---------------------------------------------------------

def test_checkpoint_round_trip_all_dtypes(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {
        "a/float32": rng.standard_normal((3, 5)).astype(np.float32),
        "a/float16": rng.standard_normal((4,)).astype(np.float16),
        "a/float64": rng.standard_normal((2, 2, 2)),
        "b/int32": rng.integers(-9, 9, (6,), dtype=np.int32),
        "b/int64": np.array([-(1 << 40), 7], dtype=np.int64),
        "b/uint8": np.arange(5, dtype=np.uint8),
        "b/bool": np.array([True, False]),
        "global_step": np.array(123, dtype=np.int64),  # a scalar
        "empty": np.zeros((0, 3), dtype=np.float32),
        "big": rng.standard_normal((300, 300)).astype(np.float32),  # vectorised crc path
    }
    tensors.update({f"many/v{i}": np.full((2,), i, np.float32) for i in range(200)})
    write_tf_checkpoint(tmp_path / "model.ckpt", tensors)
    for where in (tmp_path, tmp_path / "model.ckpt", tmp_path / "model.ckpt.index"):
        back = read_tf_checkpoint(where)
        assert set(back) == set(tensors)
        for name, arr in tensors.items():
            assert back[name].dtype == arr.dtype and back[name].shape == arr.shape, name
            np.testing.assert_array_equal(back[name], arr)
    assert list_tf_variables(tmp_path)["big"] == (300, 300)
    assert set(read_tf_checkpoint(tmp_path, names=["big"])) == {"big"}


def test_bfloat16_is_widened_to_float32(tmp_path):
    """numpy has no bfloat16: the bundle's upper float32 halves come back as float32."""
    values = np.array([1.5, -2.0, 3.140625], np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    (tmp_path / "m.data-00000-of-00001").write_bytes(raw)
    entry = BundleEntry(name="b", dtype=14, shape=(3,), size=len(raw), crc32c=crc32c(raw))
    header = bytes([0x08, 0x01])  # num_shards = 1
    write_table(tmp_path / "m.index", [(b"", header), (b"b", entry.serialize())])
    back = read_tf_checkpoint(tmp_path / "m")["b"]
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, values)


def test_checkpoint_file_with_absolute_path_of_another_machine(tmp_path):
    write_tf_checkpoint(tmp_path / "model.ckpt-100", {"x": np.ones(2, np.float32)})
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/data/train/model.ckpt-100"\n')
    assert list(read_tf_checkpoint(tmp_path)) == ["x"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(TFCheckpointError, match="no TF checkpoint"):
        read_tf_checkpoint(tmp_path)
    with pytest.raises(TFCheckpointError, match="does not exist"):
        read_tf_checkpoint(tmp_path / "model.ckpt")


@needs_reference
@pytest.mark.parametrize("folder", ["brightmart_tiny", "brightmart_tiny_preln"])
def test_reader_lists_the_reference_variables(folder):
    expected = {}
    for line in (REFERENCE / folder / "variables.txt").read_text().splitlines():
        name, shape = line.split("\t")
        expected[name] = tuple(json.loads(shape))
    tensors = read_tf_checkpoint(REFERENCE / folder)
    assert {n: t.shape for n, t in tensors.items()} == expected
    assert all(t.dtype == np.float32 for t in tensors.values())
