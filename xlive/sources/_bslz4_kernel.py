"""Bitshuffle-LZ4 decoding of 16-bit frames in one numba pass, into the caller's array.

``bitshuffle.decompress_lz4`` spends about two thirds of an EIGER 4M uint16 frame's decode in
its bit un-transpose: for 2-byte elements bitshuffle 0.5 has only the SSE2 version (its AVX2 and
AVX-512 ones need 4-byte elements). Here the LZ4 blocks are still decompressed by LZ4's own
``LZ4_decompress_safe`` (the copy bundled in bitshuffle's extension, called from compiled code),
each into an 8 kB scratch block that stays in L1, and the un-transpose is a numba loop over
64-bit words that the compiler vectorises: 3.4-3.9 ms against 4.2-4.4 per frame through
bitshuffle on this machine (``/tmp/live20/fused3.py`` in the live20 note). Nothing else
installed decodes this format into a given array; bitshuffle stays the reference
(tests/sources/test_bslz4_kernel.py) and the path for other element sizes.

Layout (HDF5 filter 32008 / bitshuffle): after the 12-byte header, blocks of ``block`` elements
(the last one ``n % block`` rounded down to a multiple of 8), each a 4-byte big-endian
compressed size and one LZ4 block of the bit-transposed elements; then the ``n % 8`` last
elements raw. Inside a block of ``m`` elements, bit row ``8 k + i`` (``m / 8`` bytes) holds bit
``i`` of byte ``k`` of the elements, element ``8 j + e`` at bit ``e`` of byte ``j``.
"""

from __future__ import annotations

import ctypes

import numba as nb
import numpy as np
from llvmlite import binding as llvm
from numba.core import cgutils, types
from numba.extending import intrinsic

#: the name LZ4's decoder is registered under for compiled code
_SYMBOL = "xlive_bitshuffle_LZ4_decompress_safe"


def _bind_lz4() -> bool:
    """Make bitshuffle's bundled ``LZ4_decompress_safe`` callable from numba (by symbol name,
    so cached kernels find it again in a new process). False when it cannot be found."""
    try:
        import bitshuffle.ext

        fn = ctypes.CDLL(bitshuffle.ext.__file__).LZ4_decompress_safe
    except (ImportError, OSError, AttributeError):
        return False
    llvm.add_symbol(_SYMBOL, ctypes.cast(fn, ctypes.c_void_p).value)
    return True


AVAILABLE = _bind_lz4()

_lz4_decompress_safe = types.ExternalFunction(
    _SYMBOL, types.int32(types.voidptr, types.voidptr, types.int32, types.int32)
)


@intrinsic
def _address(typingctx, arr, offset):
    """``void *`` to byte ``offset`` of a contiguous uint8 array."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.gep(builder.bitcast(ary.data, cgutils.voidptr_t), [args[1]])

    return types.voidptr(arr, offset), codegen


_U8 = np.uint64(8)


@nb.njit(cache=True, nogil=True, inline="always")
def _transpose8(x):
    """8 x 8 bit matrix in a uint64 (byte r, bit c) -> its transpose (byte c, bit r)."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return x ^ t ^ (t << np.uint64(28))


@nb.njit(cache=True, nogil=True, inline="always")
def _spread(x):
    """Bytes 0-3 of ``x`` to bytes 0, 2, 4, 6 (the others zero)."""
    x = x & np.uint64(0xFFFFFFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    return (x | (x << _U8)) & np.uint64(0x00FF00FF00FF00FF)


@nb.njit(cache=True, nogil=True)
def untranspose16(src, out, start, m):
    """Un-bitshuffle one block of ``m`` (a multiple of 8) uint16 elements from ``src`` (uint8,
    ``2 m`` bytes) into ``out[start : start + m]`` (uint16, ``start`` a multiple of 4)."""
    rows = m // 8
    out64 = out[start : start + m].view(np.uint64)
    for j in range(rows):
        lo = np.uint64(0)
        hi = np.uint64(0)
        for i in range(8):
            lo |= np.uint64(src[i * rows + j]) << np.uint64(8 * i)
            hi |= np.uint64(src[(8 + i) * rows + j]) << np.uint64(8 * i)
        lo = _transpose8(lo)
        hi = _transpose8(hi)
        out64[2 * j] = _spread(lo) | (_spread(hi) << _U8)
        out64[2 * j + 1] = _spread(lo >> np.uint64(32)) | (_spread(hi >> np.uint64(32)) << _U8)


@nb.njit(cache=True, nogil=True)
def decode16(body, out, block):
    """Decode bitshuffle-LZ4 ``body`` (uint8, after the 12-byte header; ``block`` elements per
    block, a multiple of 8) into ``out`` (contiguous uint16, the frame's elements).

    Returns 0, or -1 for a truncated or corrupt stream (``out`` then partly written)."""
    n = out.size
    scratch = np.empty(2 * block, np.uint8)
    pos = 0
    start = 0
    while n - start >= 8:
        m = min(block, (n - start) // 8 * 8)
        if pos + 4 > body.size:
            return -1
        size = (
            (np.int64(body[pos]) << 24)
            | (np.int64(body[pos + 1]) << 16)
            | (np.int64(body[pos + 2]) << 8)
            | np.int64(body[pos + 3])
        )
        pos += 4
        if size <= 0 or pos + size > body.size:
            return -1
        got = _lz4_decompress_safe(
            _address(body, pos), _address(scratch, 0), np.int32(size), np.int32(2 * m)
        )
        if got != 2 * m:
            return -1
        pos += size
        untranspose16(scratch, out, start, m)
        start += m
    # the last n % 8 elements are stored raw (little endian)
    if pos + 2 * (n - start) > body.size:
        return -1
    for k in range(n - start):
        out[start + k] = np.uint16(body[pos + 2 * k]) | (np.uint16(body[pos + 2 * k + 1]) << 8)
    return 0


def untranspose16_ref(src: np.ndarray, m: int) -> np.ndarray:
    """numpy reference of :func:`untranspose16` (returns the ``m`` elements)."""
    bits = np.unpackbits(src.reshape(16, m // 8), axis=1, bitorder="little")  # (16, m)
    weights = (1 << np.arange(16, dtype=np.uint32))[:, None]
    return (bits.astype(np.uint32) * weights).sum(axis=0).astype(np.uint16)
