"""IDX reader/writer: round trips against hand-built bytes, and every kind of corrupt file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from descend.data import parse_idx, read_idx, write_idx
from descend.errors import DataError, DescendError
from tests.data.helpers import idx_bytes

CASES = [
    (np.uint8, 0x08, "u1", (3, 28, 28)),
    (np.int8, 0x09, "i1", (5,)),
    (np.int16, 0x0B, ">i2", (2, 3)),
    (np.int32, 0x0C, ">i4", (4, 1, 2)),
    (np.float32, 0x0D, ">f4", (6, 2)),
    (np.float64, 0x0E, ">f8", (2, 2, 2, 2)),
]


@pytest.mark.parametrize(("dtype", "code", "be", "shape"), CASES)
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_matches_hand_built_bytes(tmp_path, dtype, code, be, shape, compress):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, arr)
    on_disk = path.read_bytes()
    assert (gzip.decompress(on_disk) if compress else on_disk) == idx_bytes(arr, code, be)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, arr)
    back[...] = 0  # a writable copy, not a view of the file's bytes


def test_mnist_magic_numbers(tmp_path):
    write_idx(tmp_path / "img", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "lab", np.zeros(2, np.uint8))
    assert int.from_bytes((tmp_path / "img").read_bytes()[:4], "big") == 2051
    assert int.from_bytes((tmp_path / "lab").read_bytes()[:4], "big") == 2049


def test_gzip_is_detected_from_content_not_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "plain.gz").write_bytes(idx_bytes(arr, 0x08, "u1"))  # .gz name, raw content
    (tmp_path / "packed").write_bytes(gzip.compress(idx_bytes(arr, 0x08, "u1")))  # no suffix, gzip content
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed"), arr)


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match=r"dtype must be one of uint8, int8, int16, int32, float32, float64, got int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08, "u1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"truncated: 0 bytes, but the magic number alone needs 4"),
        (b"\x00\x00\x08", r"truncated: 3 bytes"),
        (b"\x1f\x8b\x08\x00" + GOOD, r"corrupt or truncated gzip"),
        (gzip.compress(GOOD, mtime=0)[:-10], r"corrupt or truncated gzip"),
        (b"\x50\x4b\x03\x04" + GOOD[4:], r"wrong magic number 0x504B0304"),
        (b"\x00\x01" + GOOD[2:], r"wrong magic number 0x00010803"),
        (b"\x00\x00\x07\x03" + GOOD[4:], r"wrong magic number 0x00000703.*0x08 \(uint8\)"),
        (b"\x00\x00\x08\x00", r"declares 0 dimensions"),
        (GOOD[:10], r"truncated: 3 dimensions need a 16-byte header, the file has 10"),
        (GOOD[:-1], r"truncated: its header declares shape \(2, 3, 4\) of uint8 \(24 bytes of data\), but 23"),
        (GOOD + b"\x00\x00", r"too long: .* \(24 bytes of data\), but 26 bytes"),
        (idx_bytes(np.zeros(3, np.float32), 0x0D, ">f4")[:-2], r"shape \(3,\) of float32 \(12 bytes of data\), but 10"),
    ],
    ids=[
        "empty",
        "three-bytes",
        "bad-gzip-stream",
        "truncated-gzip",
        "zip-magic",
        "nonzero-second-byte",
        "unknown-type-code",
        "zero-dimensions",
        "truncated-header",
        "truncated-data",
        "trailing-bytes",
        "truncated-float-data",
    ],
)
def test_corrupt_files(tmp_path, data, message):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, DescendError) and isinstance(info.value, ValueError)


def test_corrupt_gzip_wrapper_of_truncated_idx(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(GOOD[:-5]))  # valid gzip, truncated IDX inside
    with pytest.raises(DataError, match=r"is truncated: .* but 19 bytes follow"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"IDX file .*nope does not exist"):
        read_idx(tmp_path / "nope")


def test_parse_idx_names_its_source():
    with pytest.raises(DataError, match=r"IDX file <bytes> has a wrong magic number"):
        parse_idx(b"\xff\xff\xff\xff")
