"""Geometry readers agree with pyFAI and with the files' own panel descriptions."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from xlive.geometry import Geometry
from xlive.geometry.crystfel import read_crystfel_geom, write_crystfel_geom
from xlive.geometry.minicbf import read_minicbf_geometry
from xlive.geometry.nxmx import read_nxmx_geometry
from xlive.geometry.poni import read_poni_geometry

REALDATA = (Path(__file__).parents[2] / "../shared/realdata").resolve()
pyFAI = pytest.importorskip("pyFAI")


def _ai(**kw):
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    shape = kw.pop("shape")
    det = Detector(pixel1=kw.pop("pixel1"), pixel2=kw.pop("pixel2"), max_shape=shape)
    return AzimuthalIntegrator(detector=det, **kw), shape


def _pyfai_q(ai, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ai.center_array(shape, unit="q_nm^-1")


@pytest.mark.parametrize("rot", [(0, 0, 0), (0.05, -0.03, 0.2), (-0.1, 0.08, -1.0)])
def test_poni_q_map_equals_pyfai(tmp_path, rot):
    ai, shape = _ai(dist=0.12, poni1=0.009, poni2=0.011, rot1=rot[0], rot2=rot[1], rot3=rot[2],
                    pixel1=100e-6, pixel2=75e-6, wavelength=0.9e-10, shape=(150, 220))
    ai.save(str(tmp_path / "g.poni"))
    geom = read_poni_geometry(tmp_path / "g.poni")
    assert geom.shape == shape
    np.testing.assert_allclose(geom.maps.q, _pyfai_q(ai, shape), rtol=1e-6)
    loaded = pyFAI.load(str(tmp_path / "g.poni"))
    np.testing.assert_allclose(geom.maps.q, _pyfai_q(loaded, shape), rtol=1e-6)


def test_eiger_master_beam_centre_gives_pyfai_q(tmp_path):
    path = tmp_path / "m_master.h5"
    with h5py.File(path, "w") as f:
        det = f.create_group("/entry/instrument/detector")
        for k, v, u in [("beam_center_x", 101.3, "pixel"), ("beam_center_y", 77.8, "pixel"),
                        ("detector_distance", 0.15, "m"), ("x_pixel_size", 75e-6, "m"),
                        ("y_pixel_size", 75e-6, "m")]:
            det[k] = v
            det[k].attrs["units"] = u
        spec = det.create_group("detectorSpecific")
        mask = np.zeros((160, 200), np.uint32)
        mask[5, 6], mask[7, 8], mask[9, 10] = 1, 1 << 16, 1 << 31  # high bits do not mask
        spec["pixel_mask"] = mask
        spec["x_pixels_in_detector"], spec["y_pixels_in_detector"] = 200, 160
        f["/entry/instrument/beam/incident_wavelength"] = 1.2
    geom = read_nxmx_geometry(path)
    assert geom.mask[5, 6] and not geom.mask[7, 8] and not geom.mask[9, 10]
    ai, shape = _ai(dist=0.15, poni1=77.8 * 75e-6, poni2=101.3 * 75e-6, pixel1=75e-6,
                    pixel2=75e-6, wavelength=1.2e-10, shape=(160, 200))
    np.testing.assert_allclose(geom.maps.q, _pyfai_q(ai, shape), rtol=1e-6)


@pytest.mark.realdata
def test_real_eiger_master(tmp_path):
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata is absent")
    geom = read_nxmx_geometry(REALDATA / "eiger9M_master/dectris_eiger_master.h5")
    bx, by = geom.beam_center
    ai, shape = _ai(dist=geom.distance, poni1=by * 75e-6, poni2=bx * 75e-6, pixel1=75e-6,
                    pixel2=75e-6, wavelength=geom.wavelength * 1e-10, shape=(64, 64))
    small = Geometry.simple(shape=(64, 64), pixel_size=75e-6, distance=geom.distance,
                            beam_center_x=bx, beam_center_y=by, wavelength=geom.wavelength)
    np.testing.assert_allclose(small.maps.q, _pyfai_q(ai, shape), rtol=1e-6)
    assert geom.shape == (3269, 3110) and geom.saturation_value == 12440


@pytest.mark.realdata
def test_minicbf_header():
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata is absent")
    geom = read_minicbf_geometry(REALDATA / "pilatus6M_thaumatin_grid/thau_3_2_0005.cbf.bz2")
    assert geom.beam_center == (1261.61, 1306.96) and geom.saturation_value == 115897
    assert geom.mask.sum() == 526101 + 625


CRYSTFEL = {  # file -> (panels, extra arguments)
    "Eiger16M-binning2-nativefiles.geom": (1, {}),
    "cspad-cxiformat.geom": (64, {"distance": 0.2, "wavelength": 1.3}),
    "jf-swissfel-16M.geom": (32, {"mask_files": False}),
    "pilatus.geom": (1, {"distance": 0.3}),
}


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(CRYSTFEL))
def test_crystfel_files(name):
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata is absent")
    n_panels, kw = CRYSTFEL[name]
    path = REALDATA / "crystfel" / name
    geom = read_crystfel_geom(path, **kw)
    assert len(geom.panels) == n_panels
    maps = geom.maps
    for p in geom.panels:
        for ss, fs in [(p.min_ss, p.min_fs), (p.max_ss, p.max_fs), (p.min_ss, p.max_fs)]:
            i, j = ss - p.min_ss + 0.5, fs - p.min_fs + 0.5
            expect = np.array([p.corner_x, p.corner_y, 0.0]) + np.multiply(p.fs, j) + \
                np.multiply(p.ss, i)
            got = np.array([maps.lab_x[ss, fs], maps.lab_y[ss, fs]]) / p.pixel_size
            np.testing.assert_allclose(got, expect[:2], atol=1e-9)
        assert (maps.panel[p.min_ss:p.max_ss + 1, p.min_fs:p.max_fs + 1] ==
                geom.panels.index(p)).all()
    # lab positions of fractional points: the maps at pixel centres, linear in between
    rng = np.random.default_rng(0)
    ss = rng.integers(0, geom.shape[0] - 1, 500)
    fs = rng.integers(0, geom.shape[1] - 1, 500)
    on = maps.panel[ss, fs] >= 0
    lab = geom.lab_positions(fs, ss)
    expect = np.stack([maps.lab_x[ss, fs], maps.lab_y[ss, fs], maps.lab_z[ss, fs]], axis=1)
    np.testing.assert_allclose(lab[on], expect[on], rtol=0, atol=1e-12)
    assert np.isnan(lab[~on]).all()
    inner = on & (maps.panel[ss + 1, fs + 1] == maps.panel[ss, fs])
    mid = geom.lab_positions(fs + 0.5, ss + 0.5)
    corners = [(0, 0), (0, 1), (1, 0), (1, 1)]
    bilinear = np.mean([np.stack([m[ss + a, fs + b] for m in (maps.lab_x, maps.lab_y,
                                                              maps.lab_z)], axis=1)
                        for a, b in corners], axis=0)
    np.testing.assert_allclose(mid[inner], bilinear[inner], rtol=0, atol=1e-12)
    text = path.read_text()
    if "bad_v0/min_fs = 1030" in text:  # Eiger: the strip between panels is masked
        assert geom.mask[:, 1030:1040].all() and not geom.mask[:514, 1029].any()
        assert geom.mask[514:551].all() and not geom.mask[551:1065, :1030].any()
    if "bad_beamstop" in text:
        assert geom.mask.any()


def test_crystfel_round_trip(tmp_path):
    fs = (0.999, 0.0447, 0.0)
    panels = (
        Geometry.simple(shape=(10, 12), pixel_size=75e-6, distance=0.1, beam_center_x=6,
                        beam_center_y=5, wavelength=1.0).panels[0],
    )
    from xlive.geometry import Panel

    panels = panels + (Panel(name="b", min_fs=0, max_fs=11, min_ss=10, max_ss=19, fs=fs,
                             ss=(-0.0447, 0.999, 0.01), corner_x=3.25, corner_y=-20.5,
                             coffset=0.002, pixel_size=75e-6),)
    mask = np.zeros((20, 12), bool)
    mask[3, 4] = mask[15, 0] = True
    geom = Geometry(shape=(20, 12), distance=0.1, wavelength=1.1, panels=panels, mask=mask,
                    saturation_value=65000.0, description="two panels")
    write_crystfel_geom(geom, tmp_path / "t.geom")
    back = read_crystfel_geom(tmp_path / "t.geom")
    assert [p.name for p in back.panels] == ["p0", "b"]
    for a, b in zip(geom.panels, back.panels, strict=True):
        for k, v in a.__dict__.items():
            np.testing.assert_allclose(getattr(b, k), v, rtol=1e-12) if not isinstance(v, str) \
                else None
    np.testing.assert_array_equal(back.mask, mask)
    assert back.distance == 0.1 and back.wavelength == pytest.approx(1.1, rel=1e-12)
    np.testing.assert_allclose(back.maps.q, geom.maps.q, rtol=1e-12)
