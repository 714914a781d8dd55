"""The spool reader decodes chunk files directly when the layout is the spool's own."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from xlive.sources._bslz4 import BitshuffleLZ4Codec
from xlive.sources.stream.receiver import ZarrSegmentsReader, _spool_layout


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
@pytest.mark.parametrize("spool_codec", [True, False])
def test_direct_read_equals_zarr(tmp_path, dtype, spool_codec):
    rng = np.random.default_rng(3)
    frames = rng.poisson(0.7, (3, 37, 53)).astype(dtype)
    frames[:, 5, :] = np.iinfo(dtype).max  # a gap row
    g = zarr.open_group(str(tmp_path / "seg000"), mode="w")
    codec = BitshuffleLZ4Codec(elem_size=frames.itemsize) if spool_codec else None
    arr = g.create_array(
        "frames",
        shape=frames.shape,
        chunks=(1, *frames.shape[1:]),
        dtype=dtype,
        compressors=[codec] if codec else None,
        fill_value=0,
    )
    arr[...] = frames
    assert _spool_layout(zarr.open_array(str(tmp_path / "seg000" / "frames"))) == spool_codec
    reader = ZarrSegmentsReader([(str(tmp_path / "seg000"), 10)], shape=(37, 53), dtype=dtype)
    for k in range(3):
        out = reader.read_one(10 + k)
        assert out.dtype == frames.dtype
        np.testing.assert_array_equal(out, frames[k])


def test_metadata_read_as_the_spool_grows(tmp_path, monkeypatch):
    """The source reads only the frame numbers and times published since it last looked;
    what it returns as the spool grows (past the arrays' first block, into a second series)
    is what a source opened afterwards reads from scratch."""
    from xlive.sources.stream import spool as spool_mod
    from xlive.sources.stream.protocol import Image, Start
    from xlive.sources.stream.receiver import StreamSource

    monkeypatch.setattr(spool_mod, "BLOCK", 8)  # the receiver grows its arrays every 8 frames
    sp = spool_mod.Spool(tmp_path / "spool.zarr")
    frame = np.zeros((4, 6), np.uint16)

    def send(series: int, numbers) -> None:
        for k in numbers:
            blob = frame.tobytes()
            sp.image(Image(series, k, frame.shape, frame.dtype, "<", blob, 1000.0 + k + series))

    send(1, range(5))
    sp.flush()
    src = StreamSource(None, spool=tmp_path / "spool.zarr")
    seen = []
    for step in (range(5, 12), range(12, 13), range(15, 20)):  # 13, 14 dropped
        send(1, step)
        sp.flush()
        src.refresh()
        seen.append(src.metadata())
    sp.start(Start(series=2, config={}))
    send(2, range(3))
    sp.end()
    src.refresh()
    last = src.metadata()
    fresh = StreamSource(None, spool=tmp_path / "spool.zarr").metadata()
    for key in ("frame_number", "timestamp", "segment"):
        np.testing.assert_array_equal(last[key], fresh[key])
    assert last["frame_number"].tolist() == [*range(13), *range(15, 20), 0, 1, 2]
    assert last["timestamp"][:3].tolist() == [1001.0, 1002.0, 1003.0]
    assert last["segment"].tolist() == [0] * 18 + [1] * 3
    assert [len(m["frame_number"]) for m in seen] == [12, 13, 18]
    assert seen[0]["frame_number"].tolist() == list(range(12))
