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
