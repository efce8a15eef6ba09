"""Read and write IDX files, the MNIST / Fashion-MNIST container format.

Layout: two zero bytes, a dtype code, the number of dimensions, then one big-endian
uint32 per dimension, then the data in C order (multi-byte values big-endian).
"""
from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

# IDX dtype code -> big-endian numpy dtype.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[str, int] = {dt.newbyteorder("=").str[1:]: code for code, dt in _DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path_or_bytes: str | Path | bytes | bytearray | memoryview,
             *, name: str | None = None) -> np.ndarray:
    """Parse an IDX file (path or raw bytes, optionally gzipped) into a native-endian array.

    `name` labels in-memory data in error messages (defaults to the path, or "<bytes>").
    """
    if isinstance(path_or_bytes, (str, Path)):
        label = name or str(path_or_bytes)
        data = Path(path_or_bytes).read_bytes()
    else:
        label = name or "<bytes>"
        data = bytes(path_or_bytes)
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)

    if len(data) < 4:
        raise ValueError(f"{label}: not an IDX file (only {len(data)} bytes, need a 4-byte magic)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise ValueError(f"{label}: bad IDX magic {data[:4].hex()} "
                         f"(expected 0000 + dtype code in {sorted(hex(c) for c in _DTYPES)} + ndim >= 1)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{label}: truncated IDX header ({len(data)} bytes, need {header_len} for {ndim} dims)")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _DTYPES[code]
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "trailing bytes in"
        raise ValueError(f"{label}: {kind} IDX file: shape {shape} of {dtype.newbyteorder('=')} "
                         f"needs {expected} bytes, got {len(data)}")
    # astype copies into a writable native-endian array (frombuffer over bytes is read-only).
    return np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape).astype(dtype.newbyteorder("="))


def encode_idx(array: np.ndarray) -> bytes:
    """Serialise an array to IDX bytes (the inverse of `read_idx`)."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in _CODES:
        raise ValueError(f"dtype {array.dtype} cannot be stored in IDX (allowed: {sorted(_CODES)})")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {array.ndim}")
    code = _CODES[key]
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
