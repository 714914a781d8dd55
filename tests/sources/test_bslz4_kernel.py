"""The numba bitshuffle-LZ4 decoder of 16-bit frames against bitshuffle and a numpy reference."""

from __future__ import annotations

import bitshuffle
import numpy as np
import pytest

from xlive.errors import BadFrameError
from xlive.sources import _bslz4_kernel as kernel
from xlive.sources._bslz4 import bslz4_decode, bslz4_encode

pytestmark = pytest.mark.skipif(
    not kernel.AVAILABLE, reason="bitshuffle's extension exports no LZ4_decompress_safe"
)


def detector_like(shape, rng) -> np.ndarray:
    """Mostly 0-3 photons, a few bright spots, module gaps at 65535 (an EIGER 16-bit frame)."""
    frame = rng.poisson(0.5, shape).astype(np.uint16)
    ny, nx = shape
    for y, x in rng.integers(0, (ny, nx), (20, 2)):
        frame[y, x] = rng.integers(100, 60000)
    frame[:, nx // 3 : nx // 3 + 3] = 65535
    return frame


@pytest.mark.parametrize("m", [8, 64, 4096])
def test_untranspose_matches_numpy_reference_and_bitshuffle(m):
    rng = np.random.default_rng(m)
    values = rng.integers(0, 65536, m).astype(np.uint16)
    shuffled = bitshuffle.bitshuffle(values, m).view(np.uint8)
    np.testing.assert_array_equal(kernel.untranspose16_ref(shuffled, m), values)
    out = np.zeros(m + 8, np.uint16)
    kernel.untranspose16(shuffled, out, 8, m)
    np.testing.assert_array_equal(out[8:], values)
    assert not out[:8].any()  # only its own elements written


@pytest.mark.parametrize(
    "shape, block",
    [
        ((514, 1030), None),  # EIGER 500K: n % 4096 != 0 -> a short last block
        ((37, 41), None),  # n % 8 == 5: raw tail elements
        ((3, 5), None),  # fewer elements than 8: the raw tail only
        ((100, 77), 64),  # many small blocks (the block size is in the header)
    ],
)
@pytest.mark.parametrize("dtype", ["<u2", ">u2", "<i2"])
def test_decode_matches_bitshuffle(shape, block, dtype):
    rng = np.random.default_rng(7)
    frame = detector_like(shape, rng).astype(dtype)
    if block is None:
        blob = bslz4_encode(frame)
    else:
        import struct

        body = bitshuffle.compress_lz4(frame.ravel(), block).tobytes()
        blob = struct.pack(">QI", frame.nbytes, 2 * block) + body
    header_block = int.from_bytes(blob[8:12], "big") // 2
    expected = bitshuffle.decompress_lz4(
        np.frombuffer(blob, np.uint8, offset=12), (frame.size,), np.dtype(dtype), header_block
    ).reshape(shape)
    got = bslz4_decode(blob, dtype=dtype, shape=shape)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, frame)


@pytest.mark.parametrize("cut", ["truncated", "corrupt"])
def test_damaged_blobs_raise_and_the_reader_marks_the_frame_bad(cut, tmp_path):
    frame = detector_like((128, 256), np.random.default_rng(3))
    blob = bytearray(bslz4_encode(frame))
    if cut == "truncated":
        blob = blob[: len(blob) // 2]
    else:
        blob[12:16] = (10**6).to_bytes(4, "big")  # first block says it is longer than the blob
    with pytest.raises(ValueError, match="truncated or corrupt"):
        bslz4_decode(bytes(blob), dtype=np.uint16, shape=frame.shape)

    from xlive.sources.base import FrameReader

    class Reader(FrameReader):
        def _read(self, index):
            return bslz4_decode(bytes(blob), dtype=np.uint16, shape=frame.shape)

    with pytest.raises(BadFrameError, match="cannot be read"):
        Reader(shape=frame.shape, dtype=np.uint16).read_one(0)


def test_decodes_in_parallel_threads_stay_apart():
    # the dask worker threads decode at the same time (nogil): no shared scratch or output
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    frames = [detector_like((257, 300), rng) for _ in range(6)]
    blobs = [bslz4_encode(f) for f in frames]
    with ThreadPoolExecutor(3) as pool:
        got = list(
            pool.map(
                lambda k: bslz4_decode(blobs[k % 6], dtype=np.uint16, shape=(257, 300)), range(60)
            )
        )
    for k, g in enumerate(got):
        np.testing.assert_array_equal(g, frames[k % 6])
