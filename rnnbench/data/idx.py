"""The IDX format of MNIST (and Fashion-MNIST, EMNIST, KMNIST...), parsed with numpy.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the data in C order. Files may be
gzipped; the gzip magic bytes decide, not the name.

>>> images = parse_idx(read_maybe_gzipped(Path("train-images-idx3-ubyte.gz")), "train-images")
>>> images.shape
(60000, 28, 28)
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

# type code -> big-endian numpy dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
FIX_HINT = (
    "delete the file so that rnnbench fetches it again, or point --data-dir "
    "(or $RNNBENCH_DATA) at a folder with good copies"
)


class IdxError(ValueError):
    """A file that is not valid IDX; the message names the file and what is wrong."""


def read_maybe_gzipped(path: Path) -> bytes:
    """The content of `path`, decompressed if it is gzipped."""
    data = path.read_bytes()
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:  # truncated or corrupt stream
        raise IdxError(f"{path}: corrupt or truncated gzip data ({error}); {FIX_HINT}") from None


def parse_idx(data: bytes, source: str | Path) -> np.ndarray:
    """The array held by IDX bytes `data` (read from `source`, named in errors)."""
    if len(data) < 4 or data[:2] != b"\0\0":
        raise IdxError(
            f"{source}: not an IDX file (bad magic number {data[:4].hex() or 'none'}); {FIX_HINT}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise IdxError(f"{source}: unknown IDX type code 0x{code:02x}; {FIX_HINT}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(
            f"{source}: truncated header ({len(data)} bytes, expected {header}); {FIX_HINT}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise IdxError(
            f"{source}: {what}: {len(data)} bytes where shape {shape} needs {expected}; {FIX_HINT}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` as IDX (gzipped when the name ends in .gz); used for tests and the sample."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + np.ascontiguousarray(array, IDX_TYPES[code]).tobytes()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
