"""Ice rings and the water ring (jet) detected on simulator runs that have them, not on others."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers import FrameAnalyzer, FrameStats
from xlive.simulate import SimParams, Simulation

ANALYZERS = [FrameStats, FrameAnalyzer]


def _run(detector, cls=FrameStats, **kw):
    sim = Simulation(SimParams(detector=detector, seed=5, **kw))
    idx = range(0, 400, 5)
    frames, truths = zip(*(sim.frame(i) for i in idx), strict=True)
    return cls(sim.geometry)(np.stack(frames)), truths


@pytest.mark.parametrize("cls", ANALYZERS)
def test_ice_rings_detected_on_95_percent_of_frames(cls):
    for det in ("eiger500k", "pilatus300k"):
        out, truths = _run(det, cls, hit_fraction=0.3, ice_fraction=0.5)
        ice = np.array([t.ice for t in truths])
        assert 10 < ice.sum() < len(ice) - 10
        right = (out["ice_score"] > 0.1) == ice
        assert right.mean() >= 0.95, (det, right.mean())


@pytest.mark.parametrize("cls", ANALYZERS)
def test_no_ice_on_runs_without_ice(cls):
    out, _ = _run("eiger500k", cls, hit_fraction=0.5, ice_fraction=0.0)
    assert np.mean(out["ice_score"] < 0.1) >= 0.95


@pytest.mark.parametrize("cls", ANALYZERS)
def test_jet_loss_seen_in_jet_score_and_background(cls):
    out, truths = _run("eiger500k", cls, hit_fraction=0.3, jet_loss=((100, 200),))
    on = np.array([t.jet_on for t in truths])
    assert 10 < (~on).sum() < 40
    right = (out["jet_score"] > 2.0) == on
    assert right.mean() >= 0.95
    assert np.median(out["background"][on]) >= np.median(out["background"][~on])


def _scores_ref(st, mean, count, q):
    """The band levels and scores written out one band at a time (numpy reference)."""
    p = st.params

    def band(lo, hi):
        sel = (q >= lo) & (q < hi) & (count > 0) & np.isfinite(mean)
        n = count[sel].sum()
        return (float((mean[sel] * count[sel]).sum() / n) if n > 0 else np.nan), n

    w, _ = band(*p.water_band)
    b, _ = band(*p.reference_band)
    jet = (w / b - 1.0) / p.jet_reference if b > 0 else np.nan
    excess = base = 0.0
    hw = max(p.ice_halfwidth, 1.5 * st.q_step)
    from xlive.conventions import ICE_D_SPACINGS

    for d in ICE_D_SPACINGS:
        q0 = 20.0 * np.pi / d
        peak, n_peak = band(q0 - hw, q0 + hw)
        lo_side = band(q0 - hw - p.ice_gap - p.ice_side, q0 - hw - p.ice_gap)
        hi_side = band(q0 + hw + p.ice_gap, q0 + hw + p.ice_gap + p.ice_side)
        sides = [(m, n) for m, n in (lo_side, hi_side) if n >= p.ice_min_pixels]
        if n_peak < p.ice_min_pixels or not sides:
            continue
        side = sum(m * n for m, n in sides) / sum(n for _, n in sides)
        excess += (peak - side) * n_peak
        base += side * n_peak
    return jet, (excess / base if base > 0 else np.nan)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_equal_band_by_band_reference(seed):
    """The precomputed band plan gives the scores of the band-by-band computation, with empty
    shells, NaN means and sparse shells (ice sides below ice_min_pixels) in the input."""
    st = FrameStats(Simulation(SimParams(detector="eiger500k", seed=1)).geometry)
    rng = np.random.default_rng(seed)
    n = st.q_shell.size
    mean = rng.gamma(2.0, 0.5, n)
    count = rng.integers(0, 120, n).astype(float)
    mean[rng.random(n) < 0.1] = np.nan
    count[rng.random(n) < 0.1] = 0
    for q in (st.q_shell, np.sort(rng.uniform(0, st.q_shell.max(), n))):
        jet, ice = st.scores(mean, count, q)
        rjet, rice = _scores_ref(st, mean, count, q)
        np.testing.assert_allclose([jet, ice], [rjet, rice], rtol=1e-9, equal_nan=True)
        assert np.isfinite(jet) and np.isfinite(ice)  # the case is not vacuous
