"""Every image file in shared/realdata opens through open_source with the values of a direct read."""

from __future__ import annotations

import bz2

import fabio
import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest

from xlive.sources import open_source
from xlive.sources._bslz4 import bslz4_decode
from xlive.sources.stream.protocol import decode_v2

pytestmark = pytest.mark.realdata


def test_pilatus_cbf_series_equals_fabio(realdata):
    folder = realdata / "pilatus6M_thaumatin_grid"
    src = open_source(folder)
    files = sorted(folder.glob("*.cbf.bz2"))
    assert src.refresh() == len(files) == 5
    frames = src.frames()
    assert frames.chunks[0] == (1,) * 5  # chunked along frame only
    for i, path in enumerate(files):
        expected = fabio.open(str(path)).data
        np.testing.assert_array_equal(src.read_frame(i), expected)
    np.testing.assert_array_equal(frames[4].values, fabio.open(str(files[4])).data)
    g = src.geometry  # from the miniCBF header
    assert g.beam_center == (1261.61, 1306.96) and g.distance == pytest.approx(0.351)
    assert g.wavelength == pytest.approx(0.96859) and g.pixel_size == pytest.approx(172e-6)
    # the miniCBF format declares its markers: every -1/-2 pixel of every frame is invalid,
    # and no pixel is masked for the value it holds in the first frame
    assert g.mask is None and g.sentinels == (-1.0, -2.0)
    first = fabio.open(str(files[0])).data
    lo, hi = g.valid_range(first.dtype)
    np.testing.assert_array_equal((first < lo) | (first > hi), (first == -1) | (first == -2))


@pytest.mark.parametrize(
    "rel",
    ["pilatus1M_CeO2_powder/CeO2_Pilatus1M.tif", "timepix512_smv/TIMEPIX_SU_512-stdgoni_0001.img"],
)
def test_single_image_files_equal_fabio(realdata, rel):
    src = open_source(realdata / rel)
    assert src.refresh() == 1
    np.testing.assert_array_equal(src.frames()[0].values, fabio.open(str(realdata / rel)).data)


def test_every_eiger_data_file_equals_h5py(realdata):
    files = sorted((realdata / "eiger_h5_testfiles").glob("*.h5"))
    assert len(files) == 7
    for path in files:
        src = open_source(path)
        with h5py.File(path, "r") as f:
            expected = f["/entry/data/data"][()]
        assert src.refresh() == len(expected)
        got = src.frames().values
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_eiger9m_master_geometry_without_data_files(realdata):
    path = realdata / "eiger9M_master" / "dectris_eiger_master.h5"
    src = open_source(path)
    assert type(src).__name__ == "EigerSource"
    assert src.refresh() == 0  # the data file is not shipped: nothing yet, no crash
    assert src.frames().shape == (0, 3269, 3110)
    with h5py.File(path, "r") as f:
        det = f["/entry/instrument/detector"]
        bx, by = det["beam_center_x"][()], det["beam_center_y"][()]
    assert src.geometry.beam_center == pytest.approx((bx, by))


def test_stream_captures_decode_like_direct_reads(realdata):
    import dectris.compression

    blob = (realdata / "eiger_stream_captures/stream1/frame_sample").read_bytes()
    frame = bslz4_decode(blob, dtype=np.uint16, shape=(4362, 4148))
    direct = np.frombuffer(dectris.compression.decompress(blob, "bslz4", elem_size=2), np.uint16)
    np.testing.assert_array_equal(frame.ravel(), direct)
    assert (frame == 65535).mean() > 0.05  # gaps

    import cbor2

    raw = (realdata / "eiger_stream_captures/stream2/image.cbor").read_bytes()
    img = decode_v2(raw)
    tag = cbor2.loads(raw)["data"]["threshold_1"]
    payload = tag.value[1].value.value[2]
    direct = np.frombuffer(dectris.compression.decompress(payload, "bslz4", elem_size=2), "<u2")
    np.testing.assert_array_equal(img.array().ravel(), direct)
    assert img.shape == (4362, 4148) and img.frame == 0


def test_bz2_cbf_is_really_compressed(realdata):
    # guards the claim that fabio reads the .cbf.bz2 files directly
    path = next((realdata / "pilatus6M_thaumatin_grid").glob("*.bz2"))
    assert bz2.decompress(path.read_bytes())[:4] == b"###C"
