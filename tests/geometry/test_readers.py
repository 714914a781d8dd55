"""Geometry readers agree with pyFAI and with the files' own panel descriptions."""

from __future__ import annotations

import warnings
from pathlib import Path

import fabio
import h5py
import numpy as np
import pytest

from xlive.errors import GeometryError
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
    ai, shape = _ai(
        dist=0.12,
        poni1=0.009,
        poni2=0.011,
        rot1=rot[0],
        rot2=rot[1],
        rot3=rot[2],
        pixel1=100e-6,
        pixel2=75e-6,
        wavelength=0.9e-10,
        shape=(150, 220),
    )
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
        for k, v, u in [
            ("beam_center_x", 101.3, "pixel"),
            ("beam_center_y", 77.8, "pixel"),
            ("detector_distance", 0.15, "m"),
            ("x_pixel_size", 75e-6, "m"),
            ("y_pixel_size", 75e-6, "m"),
        ]:
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
    ai, shape = _ai(
        dist=0.15,
        poni1=77.8 * 75e-6,
        poni2=101.3 * 75e-6,
        pixel1=75e-6,
        pixel2=75e-6,
        wavelength=1.2e-10,
        shape=(160, 200),
    )
    np.testing.assert_allclose(geom.maps.q, _pyfai_q(ai, shape), rtol=1e-6)


@pytest.mark.realdata
def test_real_eiger_master(tmp_path):
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata is absent")
    geom = read_nxmx_geometry(REALDATA / "eiger9M_master/dectris_eiger_master.h5")
    bx, by = geom.beam_center
    ai, shape = _ai(
        dist=geom.distance,
        poni1=by * 75e-6,
        poni2=bx * 75e-6,
        pixel1=75e-6,
        pixel2=75e-6,
        wavelength=geom.wavelength * 1e-10,
        shape=(64, 64),
    )
    small = Geometry.simple(
        shape=(64, 64),
        pixel_size=75e-6,
        distance=geom.distance,
        beam_center_x=bx,
        beam_center_y=by,
        wavelength=geom.wavelength,
    )
    np.testing.assert_allclose(small.maps.q, _pyfai_q(ai, shape), rtol=1e-6)
    assert geom.shape == (3269, 3110) and geom.saturation_value == 12440


@pytest.mark.realdata
def test_minicbf_header():
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata is absent")
    path = REALDATA / "pilatus6M_thaumatin_grid/thau_3_2_0005.cbf.bz2"
    geom = read_minicbf_geometry(path)
    assert geom.beam_center == (1261.61, 1306.96) and geom.saturation_value == 115897
    # the format's markers are declared, not learnt from the image: no pixel is masked for
    # its value, and every -1 (gap) and -2 (bad) pixel of each frame falls outside the range
    assert geom.mask is None and geom.sentinels == (-1.0, -2.0)
    data = fabio.open(str(path)).data
    lo, hi = geom.valid_range(data.dtype)
    assert np.count_nonzero((data < lo) | (data > hi)) == 526101 + 625


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
            expect = (
                np.array([p.corner_x, p.corner_y, 0.0])
                + np.multiply(p.fs, j)
                + np.multiply(p.ss, i)
            )
            got = np.array([maps.lab_x[ss, fs], maps.lab_y[ss, fs]]) / p.pixel_size
            np.testing.assert_allclose(got, expect[:2], atol=1e-9)
        assert (
            maps.panel[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] == geom.panels.index(p)
        ).all()
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
    bilinear = np.mean(
        [
            np.stack([m[ss + a, fs + b] for m in (maps.lab_x, maps.lab_y, maps.lab_z)], axis=1)
            for a, b in corners
        ],
        axis=0,
    )
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
        Geometry.simple(
            shape=(10, 12),
            pixel_size=75e-6,
            distance=0.1,
            beam_center_x=6,
            beam_center_y=5,
            wavelength=1.0,
        ).panels[0],
    )
    from xlive.geometry import Panel

    panels = panels + (
        Panel(
            name="b",
            min_fs=0,
            max_fs=11,
            min_ss=10,
            max_ss=19,
            fs=fs,
            ss=(-0.0447, 0.999, 0.01),
            corner_x=3.25,
            corner_y=-20.5,
            coffset=0.002,
            pixel_size=75e-6,
        ),
    )
    mask = np.zeros((20, 12), bool)
    mask[3, 4] = mask[15, 0] = True
    geom = Geometry(
        shape=(20, 12),
        distance=0.1,
        wavelength=1.1,
        panels=panels,
        mask=mask,
        saturation_value=65000.0,
        description="two panels",
    )
    write_crystfel_geom(geom, tmp_path / "t.geom")
    back = read_crystfel_geom(tmp_path / "t.geom")
    assert [p.name for p in back.panels] == ["p0", "b"]
    for a, b in zip(geom.panels, back.panels, strict=True):
        for k, v in a.__dict__.items():
            if v is None:
                assert getattr(b, k) is None, k
            elif not isinstance(v, str):
                np.testing.assert_allclose(getattr(b, k), v, rtol=1e-12)
    np.testing.assert_array_equal(back.mask, mask)
    assert back.distance == 0.1 and back.wavelength == pytest.approx(1.1, rel=1e-12)
    np.testing.assert_allclose(back.maps.q, geom.maps.q, rtol=1e-12)


# --------------------------------------------------------------------------- CrystFEL, complete
def _extra_geom_pixel_centres(path, tmp_path):
    """Pixel centres (m, relative to clen) of every panel, as extra-geom reads the file.

    extra-geom builds its fragments from cfel_fmt's parse of the .geom
    (``GeometryFragment.from_panel_dict``): corner at (cnx, cny) / res and coffset along z.
    cfel_fmt 2.2 rejects two spellings CrystFEL accepts, neither of which moves a pixel: a
    unit after the photon energy (``4570 eV``) and pixel limits written as ``0.0``; its copy
    of the file drops the unit and the ``.0``.
    """
    pytest.importorskip("extra_geom")
    import re

    from cfel_fmt.geometry import load_crystfel_geometry
    from extra_geom.base import GeometryFragment

    copy = tmp_path / path.name
    text = re.sub(r"(?m)^(photon_energy\s*=\s*[0-9.]+)\s*eV", r"\1", path.read_text())
    text = re.sub(r"(?m)^(\S+/(?:min|max)_(?:fs|ss)\s*=\s*\d+)\.0+\s*$", r"\1", text)
    copy.write_text(text)
    out = {}
    for name, d in load_crystfel_geometry(str(copy)).detector["panels"].items():
        frag = GeometryFragment.from_panel_dict(d)
        ss, fs = np.mgrid[0 : frag.ss_pixels, 0 : frag.fs_pixels] + 0.5
        out[name] = (
            frag.corner_pos[None, None, :]
            + ss[..., None] * frag.ss_vec
            + fs[..., None] * frag.fs_vec
        )
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(CRYSTFEL))
def test_crystfel_pixel_positions_equal_extra_geom(name, tmp_path):
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata is absent")
    path = REALDATA / "crystfel" / name
    kw = {k: v for k, v in CRYSTFEL[name][1].items() if k != "distance"}
    if "clen = /" in path.read_text():
        # the value at the clen path; CSPAD's is an encoder position, its coffset 0.57 m
        kw["clen"] = -0.4 if name.startswith("cspad") else 0.3
    geom = read_crystfel_geom(path, **kw)
    theirs = _extra_geom_pixel_centres(path, tmp_path)
    maps = geom.maps
    assert sorted(theirs) == sorted(p.name for p in geom.panels)
    for p in geom.panels:
        sl = (slice(p.min_ss, p.max_ss + 1), slice(p.min_fs, p.max_fs + 1))
        ours = np.stack([maps.lab_x[sl], maps.lab_y[sl], maps.lab_z[sl] - geom.distance], -1)
        np.testing.assert_allclose(ours, theirs[p.name], rtol=0, atol=1e-6, err_msg=p.name)


def test_extra_geom_written_agipd_geometry_reads_to_its_pixel_positions(tmp_path):
    """A module-stacked geometry (``dim1 = <module>``) written by extra-geom itself."""
    extra_geom = pytest.importorskip("extra_geom")
    quad_pos = [(-525, 625), (-550, -10), (520, -160), (542.5, 475)]
    eg = extra_geom.AGIPD_1MGeometry.from_quad_positions(quad_pos)
    eg.write_crystfel_geom(
        str(tmp_path / "agipd.geom"),
        dims=("frame", "modno", "ss", "fs"),
        adu_per_ev=0.001,
        clen=0.12,
        photon_energy=9300,
    )
    geom = read_crystfel_geom(tmp_path / "agipd.geom")
    assert geom.shape == (16 * 512, 128) and len(geom.panels) == 128
    assert geom.gain == pytest.approx(9.3)  # 0.001 ADU/eV (keV units) x 9300 eV
    pos = eg.get_pixel_positions()  # (16, 512, 128, 3), metres, pixel centres
    ours = np.stack([geom.maps.lab_x, geom.maps.lab_y], -1).reshape(16, 512, 128, 2)
    np.testing.assert_allclose(ours, pos[..., :2], rtol=0, atol=1e-6)
    assert geom.distance == pytest.approx(0.12)


def test_crystfel_clen_path_coffset_added_once_and_negative_clen_allowed(tmp_path):
    text = (
        "photon_energy = 9500 eV\nres = 10000\nclen = /LCLS/detector_1/EncoderValue\n"
        "coffset = 0.573\nadu_per_eV = 0.00338\n"
        "p0/min_fs = 0\np0/max_fs = 99\np0/min_ss = 0\np0/max_ss = 99\n"
        "p0/corner_x = -50\np0/corner_y = -50\np0/fs = x\np0/ss = y\n"
    )
    path = tmp_path / "c.geom"
    path.write_text(text)
    with pytest.raises(GeometryError, match="data_file=.*clen=<metres>.*distance="):
        read_crystfel_geom(path)
    # the encoder value -473 mm + coffset 0.573 m: panels 0.1 m from the sample
    data = tmp_path / "run.h5"
    with h5py.File(data, "w") as f:
        f["LCLS/detector_1/EncoderValue"] = np.full(5, -473.0)
    for g in (
        read_crystfel_geom(path, data_file=data),
        read_crystfel_geom(path, clen=-0.473),
        read_crystfel_geom(path, distance=0.1),
    ):
        assert g.maps.lab_z[50, 50] == pytest.approx(0.1)
        assert g.gain == pytest.approx(0.00338 * 9500)
    with pytest.raises(GeometryError, match="distance must be > 0"):
        read_crystfel_geom(path, clen=-0.6)


def test_crystfel_bad_regions_mask_files_and_asic_edges(tmp_path):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        m = np.ones((20, 10), np.uint16)
        m[3, 4] = 0  # goodbits 1 missing: bad
        f["mask"] = m
    text = (
        "photon_energy = 9500 eV\nres = 10000\nclen = 0.1\n"
        "mask_file = m.h5\nmask = /mask\nmask_good = 0x1\nmask_bad = 0x0\n"
        "a/min_fs = 0\na/max_fs = 9\na/min_ss = 0\na/max_ss = 9\na/corner_x = -5\n"
        "a/corner_y = -5\nb/min_fs = 0\nb/max_fs = 9\nb/min_ss = 10\nb/max_ss = 19\n"
        "b/corner_x = 6\nb/corner_y = -5\n"
        "bad1/min_fs = 2\nbad1/max_fs = 3\nbad1/min_ss = 12\nbad1/max_ss = 12\nbad1/panel = b\n"
    )
    path = tmp_path / "m.geom"
    path.write_text(text)
    g = read_crystfel_geom(path)
    assert g.mask[3, 4] and g.mask[12, 2:4].all() and g.mask.sum() == 3
    e = read_crystfel_geom(path, mask_asic_edges=1)
    assert e.mask[0].all() and e.mask[10].all() and e.mask[:, 9].all()
    assert not e.mask[1:9, 1:9][~g.mask[1:9, 1:9]].any()


def test_curved_detector_in_a_flat_minicbf_header_is_a_placeholder():
    from xlive.geometry.minicbf import geometry_from_minicbf_header

    header = (
        "# Detector: PILATUS 12M, S/N 120-0100\n# Pixel_size 172e-6 m x 172e-6 m\n"
        "# Wavelength 0.9795 A\n# Detector_distance 0.25 m\n# Beam_xy (1200.0, 2100.0)\n"
    )
    g = geometry_from_minicbf_header(header, shape=(5071, 2463))
    assert "cylinder" in g.placeholder and "--geometry" in g.placeholder
    flat = geometry_from_minicbf_header(header.replace("12M", "6M"), shape=(2527, 2463))
    assert flat.placeholder == ""
