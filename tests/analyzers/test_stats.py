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
