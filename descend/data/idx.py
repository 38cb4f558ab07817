"""Reader and writer for the IDX format of MNIST and Fashion-MNIST.

An IDX file (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS") is::

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    then        d big-endian uint32 sizes
    then        prod(sizes) big-endian values, row-major

so the MNIST images start with the magic number 0x00000803 (2051) and the labels
with 0x00000801 (2049). Files may be gzip-compressed (detected from the content,
not the name). Every inconsistency raises :class:`~descend.errors.DataError`
naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from descend.data.download import publish
from descend.errors import DataError

# type code -> big-endian dtype as stored in the file
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian array."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"IDX file {path} cannot be read: {exc}") from None
    return parse_idx(data, source=str(path))


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file (gzip-compressed or not)."""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"IDX file {source} is a corrupt or truncated gzip file ({exc}); delete it and fetch it again"
            ) from None
    if len(data) < 4:
        raise DataError(f"IDX file {source} is truncated: {len(data)} bytes, but the magic number alone needs 4")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        magic = int.from_bytes(data[:4], "big")
        codes = ", ".join(f"0x{c:02X} ({IDX_TYPES[c].name})" for c in IDX_TYPES)
        raise DataError(
            f"IDX file {source} has a wrong magic number 0x{magic:08X}: an IDX file starts with two zero bytes, "
            f"a type code ({codes}) and the number of dimensions, e.g. 0x00000803 for MNIST images"
        )
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    if ndim == 0:
        raise DataError(f"IDX file {source} declares 0 dimensions; it must have at least 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"IDX file {source} is truncated: {ndim} dimensions need a {header}-byte header, the file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = math.prod(shape)
    expected, actual = count * dtype.itemsize, len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "too long"
        raise DataError(
            f"IDX file {source} is {what}: its header declares shape {shape} of {dtype.name} "
            f"({expected} bytes of data), but {actual} bytes follow the header"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # a writable native-endian copy


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress`` or when the name ends in ``.gz``).

    Supported dtypes: uint8, int8, int16, int32, float32, float64. Written to a
    temporary file and renamed into place, so readers never see half a file.
    """
    path = Path(path)
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        names = ", ".join(dt.name for dt in IDX_TYPES.values())
        raise DataError(f"write_idx: dtype must be one of {names}, got {arr.dtype}")
    if not 1 <= arr.ndim <= 255 or any(s >= 2**32 for s in arr.shape):
        raise DataError(f"write_idx: shape must have 1..255 dimensions each < 2**32, got {arr.shape}")
    code = _CODE_OF[native]
    payload = (
        bytes([0, 0, code, arr.ndim])
        + struct.pack(f">{arr.ndim}I", *arr.shape)
        + np.ascontiguousarray(arr, dtype=IDX_TYPES[code]).tobytes()
    )
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
