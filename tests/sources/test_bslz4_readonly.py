"""Read-only decoding (DECTRIS's decoder, the readers' hot path) against bitshuffle."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.errors import BadFrameError
from xlive.sources._bslz4 import bslz4_decode, bslz4_encode
from xlive.sources.base import FrameReader

pytest.importorskip("dectris.compression")


def detector_like(shape, dtype, rng) -> np.ndarray:
    """Mostly 0-3 photons, a few bright pixels, a gap column at the dtype's maximum."""
    frame = rng.poisson(0.5, shape).astype(dtype)
    top = np.iinfo(dtype).max
    frame.flat[rng.integers(0, frame.size, 20)] = rng.integers(100, top, 20, dtype=np.uint64)
    frame[:, shape[1] // 3] = top
    return frame


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int32"])
@pytest.mark.parametrize("shape", [(514, 1030), (37, 41), (3, 5)])
def test_read_only_decode_equals_bitshuffles(dtype, shape):
    frame = detector_like(shape, dtype, np.random.default_rng(1))
    blob = bslz4_encode(frame)  # bitshuffle's encoder
    ref = bslz4_decode(blob, dtype=dtype, shape=shape)  # bitshuffle's decoder, writable
    got = bslz4_decode(blob, dtype=dtype, shape=shape, writable=False)
    assert ref.flags.writeable and not got.flags.writeable
    assert got.dtype == np.dtype(dtype) and got.shape == shape
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, frame)


class _Reader(FrameReader):
    def __init__(self, blob, **kw):
        super().__init__(**kw)
        self.blob = blob

    def _read(self, index):
        return bslz4_decode(self.blob, dtype=self.dtype, shape=self.shape, writable=False)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "trailing"])
def test_damaged_blobs_are_bad_frames(damage):
    frame = detector_like((128, 256), "uint16", np.random.default_rng(2))
    blob = bytearray(bslz4_encode(frame))
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    elif damage == "corrupt":
        blob[12:16] = (10**6).to_bytes(4, "big")  # the first block claims more than there is
    else:
        blob += b"\x00" * 64  # bytes after the last block
    reader = _Reader(bytes(blob), shape=frame.shape, dtype=np.uint16)
    # trailing bytes: DECTRIS's decoder ignored them, bitshuffle's refused; both refuse now
    with pytest.raises(BadFrameError, match="cannot be read"):
        reader.read_one(0)


def test_spool_frames_read_only_for_workers_writable_for_viewers(tmp_path):
    from xlive.sources.stream.protocol import Image
    from xlive.sources.stream.receiver import StreamSource
    from xlive.sources.stream.spool import Spool

    rng = np.random.default_rng(3)
    frames = [detector_like((16, 24), "uint16", rng) for _ in range(3)]
    sp = Spool(tmp_path / "spool.zarr")
    for k, f in enumerate(frames):  # as the receiver spools them (raw frames -> bitshuffle-LZ4)
        sp.image(Image(1, k, f.shape, f.dtype, "<", f.tobytes(), 1000.0 + k))
    sp.flush()
    src = StreamSource(None, spool=tmp_path / "spool.zarr")
    assert src.refresh() == 3
    for k, f in enumerate(frames):
        hot = src.reader.read_one(k)  # what analyze_block gets on the workers
        assert not hot.flags.writeable
        np.testing.assert_array_equal(hot, f)
        view = src.read_frame(k)  # what viewers get
        assert view.flags.writeable
        np.testing.assert_array_equal(view, f)
    src.close()
