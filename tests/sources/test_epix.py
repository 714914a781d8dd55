"""ePix100 through extra-data: a single-module camera of a European XFEL run.

extra-data ships no ePix100 mock writer, so the run is written by its generic mock-device
machinery (``DeviceBase`` + ``write_file``, as its own Basler camera mock does) with the
layout xlive's source reads for cameras: one image per train on the receiver's ``daqOutput``
channel, key ``data.image.pixels``, 704 x 768 float32 (corrected ADU). The pixels are filled
with h5py; the layout's pixel positions are checked against extra-geom's ``Epix100Geometry``.
What this cannot show: that a real EuXFEL ePix100 file uses these names (none is available
here to check against)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

pytest.importorskip("extra_data")
extra_geom = pytest.importorskip("extra_geom")

from extra_data.tests.mockdata.base import DeviceBase  # noqa: E402
from extra_data.tests.mockdata.mkfile import write_file  # noqa: E402

from xlive.errors import SourceError  # noqa: E402
from xlive.sources import open_source  # noqa: E402

SOURCE = "MID_EXP_EPIX-1/DET/RECEIVER"
SHAPE = (704, 768)


class Epix100(DeviceBase):
    output_channels = ("daqOutput/data",)
    instrument_keys = [("image/pixels", "f4", SHAPE)]


@pytest.fixture(scope="module")
def epix_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("epix") / "r0007"
    run.mkdir()
    path = run / "CORR-R0007-EPIX01-S00000.h5"
    n = 4
    write_file(str(path), [Epix100(SOURCE)], ntrains=n, chunksize=2, format_version="1.0")
    rng = np.random.default_rng(7)
    images = rng.normal(0.0, 30.0, (n, *SHAPE)).astype(np.float32)  # pedestal-subtracted ADU
    with h5py.File(path, "r+") as f:
        f[f"INSTRUMENT/{SOURCE}:daqOutput/data/image/pixels"][:n] = images
    return run, images


def test_epix100_frames_and_train_ids(epix_run):
    run, images = epix_run
    with pytest.raises(SourceError, match=r"cameras \['MID_EXP_EPIX-1.*--detector NAME"):
        open_source(run)  # no multi-module detector: the camera must be named
    src = open_source(run, detector=SOURCE)
    assert src.refresh() == 4
    for i in range(4):
        np.testing.assert_array_equal(src.read_frame(i), images[i])
    meta = src.metadata()
    assert meta["train_id"].tolist() == [10000, 10001, 10002, 10003]
    assert meta["pulse_id"].tolist() == [0, 0, 0, 0]
    assert (images < 0).any()  # negative ADU stay data: nothing masked by value
    assert src.masked_values == ()


def test_epix100_default_layout_is_extra_geoms_and_a_placeholder(epix_run):
    run, _ = epix_run
    g = open_source(run, detector=SOURCE, distance=0.3, wavelength=1.0).geometry
    assert "--geometry" in g.placeholder and g.shape == SHAPE
    pos = extra_geom.Epix100Geometry.from_origin().get_pixel_positions()  # (1, 704, 768, 3)
    ours = np.stack([g.maps.lab_x, g.maps.lab_y], -1)
    np.testing.assert_allclose(ours, pos[0, ..., :2], rtol=0, atol=1e-6)
