"""Frames decoded straight from Blosc chunk files equal zarr's own reads; other layouts and
broken chunks go through zarr (and broken chunks are bad frames)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

from xlive.errors import BadFrameError
from xlive.sources import open_source
from xlive.sources._zarr_direct import DirectChunks


def _run(path, dtype="uint32", chunks=(1, 12, 10), codecs=None, n=5):
    g = zarr.open_group(str(path), mode="w")
    kw = {} if codecs is None else {"serializer": codecs[0], "compressors": codecs[1:]}
    a = g.create_array("frames", shape=(n, 12, 10), chunks=chunks, dtype=dtype, fill_value=0, **kw)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, (n, 12, 10)).astype(dtype)
    a[...] = data
    g.attrs["frames_complete"] = n
    return a, data


BLOSC = (BytesCodec(), BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle"))


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "uint32", "float32"])
def test_direct_reads_equal_zarr(tmp_path, dtype):
    a, data = _run(tmp_path / "r.zarr", dtype, codecs=BLOSC)
    assert DirectChunks.for_array(a) is not None
    src = open_source(tmp_path / "r.zarr")
    src.refresh()
    reader = src.reader
    for i in range(len(data)):
        np.testing.assert_array_equal(reader.read_one(i), data[i])
        # the direct path itself decodes the frame (None would mean a silent fall-back to zarr)
        np.testing.assert_array_equal(reader._direct.read(i), data[i])


@pytest.mark.parametrize("layout", ["zstd", "two_frames_per_chunk", "big_endian"])
def test_other_layouts_go_through_zarr(tmp_path, layout):
    kw = {
        "zstd": dict(codecs=(BytesCodec(), ZstdCodec())),
        "two_frames_per_chunk": dict(chunks=(2, 12, 10), codecs=BLOSC),
        "big_endian": dict(codecs=(BytesCodec(endian="big"), BLOSC[1])),
    }[layout]
    a, data = _run(tmp_path / "r.zarr", **kw)
    assert DirectChunks.for_array(a) is None
    src = open_source(tmp_path / "r.zarr")
    src.refresh()
    for i in range(len(data)):
        np.testing.assert_array_equal(src.reader.read_one(i), data[i])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_broken_blosc_chunk(tmp_path, damage):
    a, data = _run(tmp_path / "r.zarr", codecs=BLOSC)
    chunk = tmp_path / "r.zarr" / "frames" / "c" / "2" / "0" / "0"
    if damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:40])
    elif damage == "garbage":
        chunk.write_bytes(b"\x00garbage" * 3)
    else:
        chunk.unlink()
    src = open_source(tmp_path / "r.zarr")
    src.refresh()
    # an absent chunk of a run that has moved past it is a missing frame, not zeros
    with pytest.raises(
        BadFrameError, match="frame 2 is missing" if damage == "missing" else "frame 2"
    ):
        src.reader.read_one(2)
    np.testing.assert_array_equal(src.reader.read_one(3), data[3])
