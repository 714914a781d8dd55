"""Geometry from SMV and PILATUS TIFF headers (fabio), completed by [geometry] values; the
error for a missing quantity names it and the command-line way to give it (issue 14)."""

from __future__ import annotations

import pytest

from xlive.errors import GeometryError
from xlive.geometry.plan import GeometryPlan
from xlive.sources import open_source

pytestmark = pytest.mark.realdata


def test_smv_header_gives_the_geometry(realdata):
    src = open_source(realdata / "timepix512_smv")
    src.refresh()
    g = src.geometry  # header: DISTANCE 531.85 mm, WAVELENGTH 0.0251 A, PIXEL_SIZE 0.055 mm
    assert g.distance == pytest.approx(0.53185) and g.wavelength == pytest.approx(0.0251)
    assert g.pixel_size == pytest.approx(55e-6)
    # BEAM_CENTER_X/Y 246/240 lie beyond the 28 mm width: pixels (DENZO_X_BEAM 13.53 mm agrees)
    assert g.beam_center == pytest.approx((246.0, 240.0))
    assert 246.0 * 0.055 == pytest.approx(13.53)


def test_pilatus_tiff_header_completed_by_the_configuration(realdata):
    folder = realdata / "pilatus1M_CeO2_powder"
    src = open_source(folder)
    src.refresh()
    with pytest.raises(GeometryError) as err:
        _ = src.geometry  # the TIFF header has no wavelength
    msg = str(err.value)
    assert "missing: wavelength" in msg and "--geometry FILE" in msg
    assert "[geometry]" in msg and "wavelength = ... (Å)" in msg and "--config" in msg
    src = open_source(folder)
    src.geometry_edit = GeometryPlan(values={"wavelength": 0.7})
    src.refresh()
    g = src.geometry
    assert g.wavelength == 0.7 and g.distance == pytest.approx(0.21143)
    assert g.beam_center == pytest.approx((498.18, 515.77)) and g.pixel_size == 172e-6
    assert g.sentinels == (-1.0, -2.0)  # the PILATUS gap and bad-pixel markers, declared
