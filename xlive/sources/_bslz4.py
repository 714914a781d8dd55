"""Bitshuffle-LZ4 in the HDF5 filter-32008 framing (= Eiger ``bsNN-lz4<`` / Stream V2 ``bslz4``)
and a Zarr v3 codec for it, so received chunks are stored as they arrive, without recompression.

Framing: uint64 BE uncompressed bytes, uint32 BE block size in bytes, then the LZ4 blocks
(formats.md B.4). The codec is registered as ``xlive.bitshuffle_lz4`` on import.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from dataclasses import dataclass

if "bitshuffle" not in sys.modules:
    # bitshuffle's bundled OpenMP runs each frame's decode on a team of threads that then
    # spin-wait: about twice the CPU per frame (EIGER 4M, uint32: 12 ms instead of 6-8 ms;
    # bench/live_lag.py --stages), while xlive already decodes one frame per worker thread.
    # One thread per decode, unless the user chose otherwise (read when the library loads).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import bitshuffle  # noqa: E402
import numcodecs
import numpy as np
from zarr.abc.codec import BytesBytesCodec
from zarr.core.buffer.cpu import as_numpy_array_wrapper
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

CODEC_NAME = "xlive.bitshuffle_lz4"
_LZ4 = numcodecs.LZ4()


def default_block_size(itemsize: int) -> int:
    """Elements per bitshuffle block: 8192 B / itemsize, a multiple of 8, at least 128."""
    return max(128, (8192 // itemsize) // 8 * 8)


def bslz4_encode(frame: np.ndarray) -> bytes:
    """Compress like the HDF5 32008 filter (12-byte header + blocks)."""
    frame = np.ascontiguousarray(frame)
    bs = default_block_size(frame.dtype.itemsize)
    body = bitshuffle.compress_lz4(frame.ravel(), bs)
    return struct.pack(">QI", frame.nbytes, bs * frame.dtype.itemsize) + body.tobytes()


def bslz4_decode(
    blob: bytes | memoryview, *, dtype: np.dtype, shape: tuple[int, ...], writable: bool = True
) -> np.ndarray:
    """Decompress an HDF5-32008-framed bitshuffle-LZ4 blob.

    ``writable=False`` (the readers' hot path) decodes with DECTRIS's own decoder
    (``dectris.compression``) into the immutable bytes it returns, so the frame is
    read-only: EIGER 4M uint16 3.4 ms of CPU against 6.7 through bitshuffle, uint32 5.7
    against 7.7 (medians of 5 rounds alternated in one process, load 7; bitshuffle 0.5 has
    only SSE2 code for 2-byte elements). Without dectris-compression, bitshuffle decodes it
    (writable). Both only after :func:`bslz4_check` (ValueError for a truncated or padded blob).
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    block_bytes = bslz4_check(blob, itemsize=dtype.itemsize, n=n)
    if not writable and _dectris() is not None:
        raw = _dectris().decompress(blob, "bslz4", elem_size=dtype.itemsize)
        if len(raw) != n * dtype.itemsize:
            raise ValueError(
                f"bitshuffle-LZ4 data gave {len(raw)} bytes, expected {n * dtype.itemsize}"
            )
        return np.frombuffer(raw, dtype).reshape(shape)
    body = np.frombuffer(blob, np.uint8, offset=12)
    return bitshuffle.decompress_lz4(body, (n,), dtype, block_bytes // dtype.itemsize).reshape(
        shape
    )


def bslz4_check(blob: bytes | memoryview | np.ndarray, *, itemsize: int, n: int) -> int:
    """Raise ValueError unless ``blob`` is a whole 32008-framed frame of ``n`` elements of
    ``itemsize`` bytes: header sizes, then each block's length within the blob and no byte
    after the last; returns the block size in bytes. Run before decoding: bitshuffle's C
    decoder reads past the end of a truncated blob (segfault) and trusts the sizes."""
    buf = np.frombuffer(blob, np.uint8) if not isinstance(blob, np.ndarray) else blob
    size = buf.size
    if size < 12:
        raise ValueError(f"bitshuffle-LZ4 frame has {size} bytes, less than its 12-byte header")
    nbytes, block_bytes = struct.unpack(">QI", buf[:12].tobytes())
    if nbytes != n * itemsize:
        raise ValueError(
            f"bitshuffle-LZ4 header says {nbytes} bytes, expected {n * itemsize} "
            f"({n} elements of {itemsize} bytes)"
        )
    if block_bytes == 0 or block_bytes % (8 * itemsize):
        raise ValueError(
            f"bitshuffle-LZ4 header gives a block size of {block_bytes} bytes, "
            f"not a positive multiple of 8 elements of {itemsize} bytes"
        )
    code, k, pos = _walk_blocks()(buf, n, itemsize, block_bytes // itemsize)
    if code == 1:
        raise ValueError(f"bitshuffle-LZ4 frame is truncated: {size} bytes, block {k} needs {pos}")
    if code == 2:
        raise ValueError(f"bitshuffle-LZ4 block {k} claims {pos} bytes, more than LZ4 can make")
    if code == 3:
        raise ValueError(
            f"bitshuffle-LZ4 frame has {size - pos} bytes after its last block ({pos} expected)"
        )
    return block_bytes


def _walk_blocks_ref(buf, n: int, itemsize: int, block: int) -> tuple[int, int, int]:
    """Walk the LZ4 blocks (4-byte big-endian length, then the data): (0, blocks, end) for a
    whole frame; (1, k, bytes needed) truncated at block k; (2, k, length) block k longer than
    LZ4's bound for its size; (3, blocks, end) bytes after the last block and raw tail."""
    size = len(buf)
    pos = 12
    k = 0
    left = n
    while left >= 8:  # full blocks, then the last one cut to a multiple of 8 elements
        m = block if left >= block else left - left % 8
        left -= m
        if pos + 4 > size:
            return 1, k, pos + 4
        # np.int64, not int: numba's int(uint8) is unsigned, and unsigned + signed is a float
        c = np.int64(buf[pos]) << 24 | np.int64(buf[pos + 1]) << 16 | np.int64(buf[pos + 2]) << 8
        c |= np.int64(buf[pos + 3])
        u = m * itemsize
        if c > u + u // 255 + 16:  # LZ4_COMPRESSBOUND
            return 2, k, c
        pos += 4 + c
        if pos > size:
            return 1, k, pos
        k += 1
    pos += left * itemsize  # the last n % 8 elements are stored raw
    if pos > size:
        return 1, k, pos
    return (3 if pos < size else 0), k, pos


@functools.cache
def _walk_blocks():
    """The numba kernel of :func:`_walk_blocks_ref`, made on first use (the stream receiver
    process imports this module and never decodes: it starts without numba)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_walk_blocks_ref)


@functools.cache
def _dectris():
    """``dectris.compression`` (a dependency of xlive), or None when it cannot be imported."""
    try:
        import dectris.compression
    except ImportError:
        return None
    return dectris.compression


def lz4_block_decode(blob: bytes | memoryview, nbytes: int) -> bytes:
    """One raw LZ4 block (Stream V1 ``lz4<``) of known uncompressed size."""
    return _LZ4.decode(struct.pack("<i", nbytes) + bytes(blob))


def lz4_block_encode(data: bytes | np.ndarray) -> bytes:
    return bytes(_LZ4.encode(np.ascontiguousarray(data)))[4:]


@dataclass(frozen=True)
class BitshuffleLZ4Codec(BytesBytesCodec):
    """Zarr v3 bytes->bytes codec for HDF5-framed bitshuffle-LZ4 chunks."""

    is_fixed_size = False
    elem_size: int = 2

    @classmethod
    def from_dict(cls, data):
        _, config = parse_named_configuration(data, CODEC_NAME)
        return cls(elem_size=int(config["elem_size"]))

    def to_dict(self):
        return {"name": CODEC_NAME, "configuration": {"elem_size": self.elem_size}}

    def _dec(self, raw: np.ndarray) -> np.ndarray:
        raw = np.ascontiguousarray(raw).view(np.uint8).ravel()
        nbytes = struct.unpack(">Q", raw[:8].tobytes())[0]
        dtype = np.dtype(f"u{self.elem_size}")
        return bslz4_decode(raw, dtype=dtype, shape=(nbytes // self.elem_size,)).view(np.uint8)

    def _enc(self, raw: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(raw).view(np.uint8).ravel().view(f"u{self.elem_size}")
        return np.frombuffer(bslz4_encode(arr), np.uint8)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return as_numpy_array_wrapper(self._dec, chunk_bytes, chunk_spec.prototype)

    async def _encode_single(self, chunk_bytes, chunk_spec):
        return as_numpy_array_wrapper(self._enc, chunk_bytes, chunk_spec.prototype)

    def compute_encoded_size(self, _input_byte_length: int, _chunk_spec) -> int:
        raise NotImplementedError


register_codec(CODEC_NAME, BitshuffleLZ4Codec)
