"""Multi-array and packed CBF files (cctbx.xfel exports of multi-panel detectors) read through
CBFlib's pycbf, with the geometry their imgCIF header carries; fabio stays the reader of
single-array byte-offset CBFs (PILATUS), whose pixels pycbf must read identically."""

from __future__ import annotations

import sys

import fabio
import numpy as np
import pytest

pytest.importorskip("pycbf")

from xlive.errors import GeometryError, SourceError  # noqa: E402
from xlive.geometry.core import Geometry  # noqa: E402
from xlive.sources import cbf, open_source  # noqa: E402

from .cbf_writer import write_cbf  # noqa: E402

PX = 0.075  # mm
#: three elements: two 24 x 40 side by side above one 16 x 32 (narrower: padded, masked)
SHAPES = [(24, 40), (24, 40), (16, 32)]
CORNERS = [(-3.0, 2.0), (0.2, 2.0), (-1.5, -0.1)]  # imgCIF (X, Y) of each outer corner, mm


def arrays(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = [rng.integers(-2, 60000, s).astype(np.int32) for s in SHAPES]
    out[0][3, 5] = -1  # the header's undefined_value
    return out


def stacked(arrs: list[np.ndarray]) -> np.ndarray:
    frame = np.zeros((sum(a.shape[0] for a in arrs), max(a.shape[1] for a in arrs)), np.int32)
    row = 0
    for a in arrs:
        frame[row : row + a.shape[0], : a.shape[1]] = a
        row += a.shape[0]
    return frame


@pytest.fixture
def packed_run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    written = []
    for i in range(3):
        arrs = arrays(i)
        write_cbf(folder / f"img_{i:03d}.cbf", arrs, corners_mm=CORNERS, distance_mm=120.0)
        written.append(stacked(arrs))
    return folder, written


def test_packed_multi_array_folder_reads_every_panel(packed_run):
    folder, written = packed_run
    raw = cbf.read_bytes(folder / "img_000.cbf")
    assert cbf.binary_sections(raw) == [b"x-cbf_packed"] * 3 and cbf.needs_pycbf(raw)
    src = open_source(folder)
    assert src.refresh() == 3
    for i, frame in enumerate(written):
        np.testing.assert_array_equal(src.read_frame(i), frame)
    assert not src.bad_frames


def test_geometry_from_the_imgcif_header_places_each_panel(packed_run):
    folder, _ = packed_run
    src = open_source(folder)
    src.refresh()
    g = src.geometry
    assert len(g.panels) == 3 and g.shape == (64, 40)
    assert g.distance == pytest.approx(0.120) and g.wavelength == pytest.approx(1.0)
    assert g.sentinels == (-1.0,) and g.saturation_value == 1048500
    # the narrower third array's padding is masked, nothing else
    assert g.mask[48:, 32:].all() and not g.mask[:48].any() and not g.mask[48:, :32].any()
    # each pixel centre where the header's axes put it (imgCIF X, -Y, -Z -> xlive x, y, z)
    row0 = 0
    for (ny, nx), (cx, cy) in zip(SHAPES, CORNERS, strict=True):
        jj, ii = np.mgrid[0:ny, 0:nx]
        got = g.lab_positions(ii.ravel(), (row0 + jj).ravel())
        want = np.stack(
            [
                (cx + (ii.ravel() + 0.5) * PX) * 1e-3,
                -(cy - (jj.ravel() + 0.5) * PX) * 1e-3,
                np.full(ii.size, 0.120),
            ],
            axis=1,
        )
        np.testing.assert_allclose(got, want, atol=1e-9)
        row0 += ny
    assert np.isfinite(g.maps.two_theta[~g.mask]).all()


def test_single_element_header_matches_a_simple_flat_detector(tmp_path):
    # fast +X, slow -Y (a PILATUS as imgCIF describes it): the same detector as Geometry.simple
    data = np.arange(30 * 50, dtype=np.int32).reshape(30, 50)
    write_cbf(tmp_path / "one.cbf", [data], corners_mm=[(-1.2, 0.9)], distance_mm=80.0)
    g = cbf.geometry_from_cbf(tmp_path / "one.cbf")
    ref = Geometry.simple(
        shape=(30, 50),
        pixel_size=PX * 1e-3,
        distance=0.080,
        beam_center_x=1.2 / PX,
        beam_center_y=0.9 / PX,
        wavelength=1.0,
    )
    np.testing.assert_allclose(g.maps.two_theta, ref.maps.two_theta, atol=1e-12)
    np.testing.assert_allclose(g.maps.azimuth, ref.maps.azimuth, atol=1e-9)


@pytest.mark.parametrize("compression", ["packed", "packed_v2", "byte_offset", "canonical", "none"])
def test_every_cbflib_compression_reads_the_written_pixels(tmp_path, compression):
    arrs = arrays(7)
    path = tmp_path / f"{compression}.cbf"
    write_cbf(path, arrs, corners_mm=CORNERS, compression=compression)
    np.testing.assert_array_equal(cbf.read_frame(path), stacked(arrs))


def test_single_array_packed_is_not_handed_to_fabio(tmp_path):
    a = arrays(3)[0]
    write_cbf(tmp_path / "p.cbf", [a], corners_mm=CORNERS[:1], compression="packed")
    write_cbf(tmp_path / "b.cbf", [a], corners_mm=CORNERS[:1], compression="byte_offset")
    assert cbf.needs_pycbf(cbf.read_bytes(tmp_path / "p.cbf"))
    assert not cbf.needs_pycbf(cbf.read_bytes(tmp_path / "b.cbf"))
    # an independent reader of the byte-offset file: fabio
    np.testing.assert_array_equal(fabio.open(str(tmp_path / "b.cbf")).data, a)
    src = open_source(tmp_path / "p.cbf")
    src.refresh()
    np.testing.assert_array_equal(src.read_frame(0), a)


def test_real_pilatus_cbfs_read_by_pycbf_equal_fabio(realdata):
    # one strong hit (gaps -1, bad pixels -2, Bragg peaks): 6M pixels decoded by both readers
    files = [realdata / "pilatus6M_thaumatin_grid" / "thau_3_2_0005.cbf.bz2"]
    for f in files:
        raw = cbf.read_bytes(f)
        assert not cbf.needs_pycbf(raw)  # the run keeps fabio's reader
        (arr,) = cbf.read_arrays(f, raw)
        ref = fabio.open(str(f)).data
        assert arr.dtype == ref.dtype == np.int32
        np.testing.assert_array_equal(arr, ref)
    # a miniCBF has no imgCIF detector description: its geometry comes from its header text
    assert cbf.geometry_from_cbf(files[0]) is None


def test_multi_array_without_axes_asks_for_a_geometry(tmp_path):
    write_cbf(tmp_path / "bare.cbf", arrays(1)[:2], geometry=False)
    src = open_source(tmp_path / "bare.cbf")
    assert src.refresh() == 1
    assert src.read_frame(0).shape == (48, 40)
    with pytest.raises(GeometryError, match="--geometry|geometry="):
        _ = src.geometry


def test_without_pycbf_the_error_names_the_extra(tmp_path, monkeypatch):
    write_cbf(tmp_path / "p.cbf", arrays(2), corners_mm=CORNERS)
    monkeypatch.setitem(sys.modules, "pycbf", None)  # import pycbf now raises ImportError
    with pytest.raises(SourceError, match=r"pip install 'xlive\[cbf\]'"):
        open_source(tmp_path / "p.cbf")


def test_multi_panel_cbf_folder_analyses_without_a_geometry_file(tmp_path):
    # five 3 x 3 spots on three panels: found where they were put, with the d-spacing of
    # their position as the header's axes place it (computed here from the axes directly)
    shapes, corners = [(64, 96), (64, 96), (48, 80)], [(-4.0, 3.0), (0.3, 3.0), (-2.5, -1.9)]
    rng = np.random.default_rng(0)
    arrs = [rng.poisson(10, s).astype(np.int32) for s in shapes]
    spots = [(0, 20, 30), (1, 40, 10), (2, 25, 60), (0, 50, 80), (2, 10, 5)]  # panel, row, col
    for k, r, c in spots:
        arrs[k][r - 1 : r + 2, c - 1 : c + 2] += 300
    write_cbf(tmp_path / "a_000.cbf", arrs, corners_mm=corners, distance_mm=100.0)
    from xlive.analyzers import FrameAnalyzer

    src = open_source(tmp_path)
    src.refresh()
    out = FrameAnalyzer(src.geometry)(src.read_frame(0)[None])
    assert out["n_spots"][0] == len(spots)
    found = np.stack([out["peak_x"][0], out["peak_y"][0], out["peak_d"][0]], 1)
    found = found[np.isfinite(found[:, 0])]
    rows0 = np.cumsum([0] + [s[0] for s in shapes])
    for k, r, c in spots:
        x, y = corners[k][0] + (c + 0.5) * PX, corners[k][1] - (r + 0.5) * PX  # imgCIF mm
        d = 1.0 / (2 * np.sin(np.arctan(np.hypot(x, y) / 100.0) / 2))
        hit = found[np.hypot(found[:, 0] - c, found[:, 1] - (rows0[k] + r)) < 0.5]
        assert len(hit) == 1, (k, r, c, found)
        assert hit[0, 2] == pytest.approx(d, rel=2e-3)


def test_a_packed_file_in_a_run_of_byte_offset_cbfs_is_not_given_to_fabio(tmp_path):
    a, b = arrays(4)[0], arrays(5)[0]
    write_cbf(tmp_path / "f_000.cbf", [a], corners_mm=CORNERS[:1], compression="byte_offset")
    write_cbf(tmp_path / "f_001.cbf", [b], corners_mm=CORNERS[:1], compression="packed")
    assert cbf.first_section_needs_pycbf(tmp_path / "f_001.cbf")
    assert not cbf.first_section_needs_pycbf(tmp_path / "f_000.cbf")
    src = open_source(tmp_path)
    assert src.refresh() == 2 and not src.reader.cbflib  # the run is fabio's
    np.testing.assert_array_equal(src.read_frame(0), a)
    np.testing.assert_array_equal(src.read_frame(1), b)  # the packed one went to pycbf
