"""Radial profile against pyFAI integrate1d (no pixel splitting) and analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers import RadialParams, RadialProfile
from xlive.geometry import Geometry
from xlive.simulate import SimParams, Simulation

pyFAI = pytest.importorskip("pyFAI")


def pyfai_integrator(geom: Geometry):
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    bx, by = geom.beam_center
    px = geom.pixel_size
    return AzimuthalIntegrator(
        dist=geom.distance,
        poni1=by * px,
        poni2=bx * px,
        pixel1=px,
        pixel2=px,
        wavelength=geom.wavelength * 1e-10,
    )


def compare_with_pyfai(geom, frame, params, min_pixels=50):
    rp = RadialProfile(geom, params)
    ours = rp(frame[None])["radial_profile"][0].astype(float)
    ai = pyfai_integrator(geom)
    res = ai.integrate1d(
        frame.astype(np.float64),
        params.n_bins,
        unit="q_nm^-1",
        method=("no", "histogram", "cython"),
        mask=np.array(geom.maps.mask, np.int8),
        radial_range=(rp.edges[0], rp.edges[-1]),
        correctSolidAngle=params.solid_angle,
        polarization_factor=params.polarization,
    )
    np.testing.assert_allclose(res.radial, rp.q, rtol=1e-6)
    counts = np.bincount(rp.bins[rp.bins >= 0], minlength=params.n_bins)
    good = (counts >= min_pixels) & (res.intensity > 0)
    rel = np.abs(ours[good] - res.intensity[good]) / res.intensity[good]
    return rel, good


@pytest.mark.parametrize("corrections", [(False, None), (True, 0.99)])
def test_equals_pyfai_on_simulated_frames(corrections):
    sim = Simulation(SimParams(detector="eiger500k", seed=4, hit_fraction=1.0, ice_fraction=1.0))
    frame, _ = sim.frame(2)
    params = RadialParams(n_bins=300, solid_angle=corrections[0], polarization=corrections[1])
    rel, good = compare_with_pyfai(sim.geometry, frame, params)
    assert good.sum() > 250
    assert np.max(rel) < 0.005, f"worst bin differs by {np.max(rel):.4f}"


def test_constant_frame_gives_constant_profile_and_masked_bins_nan():
    geom = Geometry.simple(
        shape=(80, 90),
        pixel_size=75e-6,
        distance=0.05,
        beam_center_x=10.0,
        beam_center_y=70.0,
        wavelength=1.0,
    )
    rp = RadialProfile(geom, RadialParams(n_bins=40, q_range=(0.0, 15.0)))
    out = rp(np.full((2, 80, 90), 7, np.uint32))["radial_profile"]
    filled = np.isfinite(out[0])
    assert filled.sum() > 10 and not filled.all()  # bins beyond the corner stay empty (NaN)
    np.testing.assert_allclose(out[:, filled], 7.0)


def test_invalid_pixels_are_left_out_per_frame():
    geom = Geometry.simple(
        shape=(50, 50),
        pixel_size=75e-6,
        distance=0.05,
        beam_center_x=25.0,
        beam_center_y=25.0,
        wavelength=1.0,
    )
    frame = np.full((50, 50), 3, np.uint32)
    frame[10:20, :] = 2**32 - 1  # unmasked gap markers must not enter the mean
    out = RadialProfile(geom, RadialParams(n_bins=20))(frame)["radial_profile"][0]
    np.testing.assert_allclose(out[np.isfinite(out)], 3.0)


def test_coords_have_q_and_d():
    sim = Simulation(SimParams(detector="eiger500k", seed=1))
    rp = RadialProfile(sim.geometry, RadialParams(n_bins=50))
    c = rp.coords()
    dim, q, attrs = c["q"]
    assert dim == "q" and attrs["units"] == "1/nm" and q.shape == (50,)
    np.testing.assert_allclose(c["d"][1], 2 * np.pi / q * 10)
