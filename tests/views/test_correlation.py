"""Correlations: a per-frame feature binned against a per-frame metadata column, live."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlive.engine.block import Block
from xlive.engine.live import LiveParams
from xlive.engine.session import LiveSession
from xlive.engine.store import open_features
from xlive.views.correlation import CorrelationBuffer, binned
from xlive.views.layout import Dashboard


def test_binned_matches_pandas():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1.5, 5000)
    y = 3 * x + rng.normal(0, 0.2, x.size)
    y[:10] = np.nan
    b = binned(x, y, bins=10)
    ok = np.isfinite(y)
    edges = np.linspace(x.min(), x.max(), 11)
    g = pd.Series(y[ok]).groupby(pd.cut(x[ok], edges, include_lowest=True), observed=False)
    assert b["mean"] == pytest.approx(g.mean().values)
    assert b["std"] == pytest.approx(g.std(ddof=0).values)
    assert b["count"].sum() == ok.sum()
    assert b["mean"] == pytest.approx(3 * b["x"], abs=0.05)  # the slope shows
    # a column of few values (laser on / off) gets one bin per value
    laser = np.arange(100) % 2
    b = binned(laser, laser * 0.5 + 0.1, bins=20)
    assert b["x"].tolist() == [0, 1] and b["mean"] == pytest.approx([0.1, 0.6])


def test_binned_matches_scipy_binned_statistic():
    """numpy's bincount gives scipy.stats.binned_statistic's bins and figures, also for
    values on the bin edges and a large offset (two-pass standard deviation)."""
    from scipy.stats import binned_statistic

    rng = np.random.default_rng(2)
    x = np.r_[rng.integers(0, 40, 3000) / 4.0, 0.0, 10.0]  # many values on the edges
    y = 1e6 + x + rng.normal(0, 0.5, x.size)
    b = binned(x, y, bins=8)
    edges = np.linspace(x.min(), x.max(), 9)
    keep = binned_statistic(x, y, "count", bins=edges).statistic > 0
    assert b["count"].sum() == x.size
    for stat in ("mean", "std", "count"):
        ref = binned_statistic(x, y, stat, bins=edges).statistic[keep]
        assert b[stat] == pytest.approx(ref, rel=1e-12, abs=1e-9)


def test_buffer_keeps_the_latest_frames():
    buf = CorrelationBuffer(max_frames=10)
    for start in range(0, 24, 4):
        idx = np.arange(start, start + 4)
        buf(
            Block(idx, idx == 5, {"n_spots": idx * 2.0, "radial_profile": np.zeros((4, 3))}),
            {"pulse_energy": idx * 1.0},
        )
    x, y = buf.pair("n_spots", "pulse_energy")
    assert sorted(x.tolist()) == list(range(14, 24)) and np.all(y == 2 * x)
    assert buf.features == {"n_spots"} and buf.metadata == {"pulse_energy"}


def test_dashboard_bins_hit_rate_against_pulse_energy(finished_run, run_to_end):
    with LiveSession(finished_run, params=LiveParams(adaptive=False)) as s:
        dash = Dashboard(s)
        run_to_end(s)
        dash.update()
        view = dash.views["correlation"]
        assert "is_hit" in view.feature.options and "pulse_energy" in view.metadata.options
        assert "laser_on" in view.metadata.options
        view.feature.value, view.metadata.value = "is_hit", "laser_on"
        assert dash.update() == ["correlation"]
        ds = open_features(s.features)
        data = view.source.data
        hit, laser = ds.is_hit.values, ds.laser_on.values
        assert list(data["x"]) == [0.0, 1.0]
        assert list(data["mean"]) == pytest.approx([hit[~laser].mean(), hit[laser].mean()])
        assert list(data["count"]) == [(~laser).sum(), laser.sum()]
        view.feature.value, view.metadata.value = "n_spots", "pulse_energy"
        dash.update()
        data = view.source.data
        assert sum(data["count"]) == ds.sizes["frame"]
        b = binned(ds.pulse_energy.values, ds.n_spots.values, bins=view.bins)
        assert list(data["mean"]) == pytest.approx(b["mean"].tolist(), rel=1e-5)
