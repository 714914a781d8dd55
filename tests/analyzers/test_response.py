"""Detector response: gain (ADU per photon), declared sentinels, read noise, no caps.

One set of defaults must serve photon counters and integrating detectors: thresholds work in
photons, so frames and gain scaled together give the same spots; markers are declared by the
format, so signed data keep their negative values; the background has no histogram cap.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xlive.analyzers import FrameAnalyzer, SpotFinder
from xlive.analyzers.stats import FrameStats
from xlive.geometry import Geometry
from xlive.simulate import SimParams, Simulation

from .conftest import recall_precision


@pytest.fixture(scope="module")
def sim_hits():
    sim = Simulation(
        SimParams(detector="eiger500k", seed=5, hit_fraction=1.0, crystal_strength=200.0)
    )
    return sim, [sim.frame(i) for i in range(4)]


def _with_gain(geom: Geometry, gain: float, **changes) -> Geometry:
    panels = tuple(dataclasses.replace(p, adu_per_photon=gain) for p in geom.panels)
    return geom.replace(panels=panels, **changes)


def test_gain_from_adu_per_ev_and_photon_energy():
    g = Geometry.simple(
        shape=(4, 4),
        pixel_size=75e-6,
        distance=0.1,
        beam_center_x=2,
        beam_center_y=2,
        wavelength=1.0,
        adu_per_ev=0.004,
    )
    assert g.gain == pytest.approx(0.004 * g.photon_energy)
    assert np.allclose(g.gain_map(), 0.004 * g.photon_energy)


@pytest.mark.parametrize("analyzer", [SpotFinder, FrameAnalyzer])
def test_frames_and_gain_scaled_by_30_give_the_same_spots(sim_hits, analyzer):
    sim, frames = sim_hits
    counts = np.stack([f for f, _ in frames])
    adu = counts.astype(np.float32) * 30  # e.g. an integrating detector at 30 ADU/photon
    geom30 = _with_gain(sim.geometry, 30.0, saturation_value=sim.geometry.saturation_value * 30)
    ref = analyzer(sim.geometry)(counts)
    out = analyzer(geom30)(adu)
    n_ref, n_out = ref["n_spots"].astype(float), out["n_spots"].astype(float)
    assert n_ref.min() > 100
    assert np.all(np.abs(n_out - n_ref) < 0.05 * n_ref), (n_ref, n_out)
    np.testing.assert_array_equal(out["is_hit"], ref["is_hit"])
    # intensities and totals come out in photons for both
    np.testing.assert_allclose(out["total_intensity"], ref["total_intensity"], rtol=1e-6)
    if "background" in out:
        np.testing.assert_allclose(out["background"], ref["background"], atol=0.5)


def test_scaled_frames_keep_recall_and_precision(sim_hits):
    sim, frames = sim_hits
    geom30 = _with_gain(sim.geometry, 30.0)
    sf = SpotFinder(geom30)
    found = [sf.find(f.astype(np.float32) * 30)[:, :2] for f, _ in frames]
    recall, precision, n = recall_precision(found, [t for _, t in frames])
    assert n > 300 and recall >= 0.95 and precision >= 0.97, (recall, precision)


def _signed(sim_hits):
    """Pedestal-subtracted int32 frames: photons plus read noise, many -1 and -2 values."""
    sim, frames = sim_hits
    rng = np.random.default_rng(3)
    out = []
    for f, _ in frames:
        v = f.astype(np.float64)
        v[sim.geometry.mask] = 0
        out.append(np.rint(v + rng.normal(-0.5, 0.8, v.shape)).astype(np.int32))
    geom = sim.geometry.replace(sentinels=None, read_noise=0.8)
    return geom, np.stack(out)


def test_int32_and_float32_copies_give_the_same_spots(sim_hits):
    geom, ints = _signed(sim_hits)
    assert np.count_nonzero(ints < 0) > 0.1 * ints.size
    a = FrameAnalyzer(geom)(ints)
    b = FrameAnalyzer(geom)(ints.astype(np.float32))
    for name in (
        "n_spots",
        "peak_x",
        "peak_y",
        "peak_intensity",
        "peak_snr",
        "is_hit",
        "background",
        "total_intensity",
        "d_min",
    ):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, err_msg=name)
    assert a["n_spots"].min() > 100


def test_negative_values_count_in_statistics_and_markers_are_declared(sim_hits):
    geom, ints = _signed(sim_hits)
    frame = ints[:1] - 3  # mostly negative values
    out = FrameStats(geom)(frame)
    assert out["background"][0] == pytest.approx(np.median(frame[0][~geom.maps.mask]), abs=0.5)
    assert out["background"][0] <= -2
    lo, _ = geom.valid_range(np.int32)
    assert lo == -np.inf  # nothing declared: -1 and -2 are measurements
    pilatus = geom.replace(sentinels=(-1, -2))
    assert pilatus.valid_range(np.int32)[0] == 0


@pytest.mark.parametrize("dtype, level", [(np.uint32, 500), (np.float32, 300.0), (np.int32, 1000)])
def test_background_has_no_histogram_cap(dtype, level):
    sim = Simulation(SimParams(detector="eiger500k", seed=2))
    rng = np.random.default_rng(0)
    frame = rng.poisson(level, sim.geometry.shape).astype(dtype)
    for analyzer in (FrameStats, FrameAnalyzer):
        bg = analyzer(sim.geometry)(frame[None])["background"][0]
        assert bg == pytest.approx(level, rel=0.01), analyzer


def test_panels_of_different_gains_are_converted_to_photons(sim_hits):
    sim, frames = sim_hits
    g = sim.geometry
    (p,) = g.panels
    half = (p.max_fs + 1) // 2
    left = dataclasses.replace(p, name="a", max_fs=half - 1)
    right = dataclasses.replace(
        p, name="b", min_fs=half, corner_x=p.corner_x + half, adu_per_photon=12.0
    )
    two = g.replace(panels=(left, right))
    counts = frames[0][0].astype(np.float32)
    adu = counts.copy()
    adu[:, half:] *= 12.0
    ref = SpotFinder(g)(counts[None])
    out = SpotFinder(two)(adu[None])
    assert two.gain is None
    assert abs(int(out["n_spots"][0]) - int(ref["n_spots"][0])) <= 0.02 * ref["n_spots"][0]
