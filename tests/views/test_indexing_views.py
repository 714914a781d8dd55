"""Indexing in the dashboard: rate chart, unit-cell histograms, predicted spots of each lattice
on the detector view, indexing rate on the status line."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers.indexing import IndexingParams
from xlive.config import RunConfig
from xlive.engine.live import LiveParams
from xlive.engine.session import LiveSession
from xlive.views.layout import Dashboard

from .conftest import _run_to_end

LYSOZYME = (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)


@pytest.fixture(scope="module")
def indexed_session(tmp_path_factory):
    from xlive.simulate import write_run

    run = tmp_path_factory.mktemp("views_indexing") / "run"
    write_run(
        run,
        frames=24,
        rate=0,
        detector="eiger500k",
        seed=5,
        hit_fraction=0.6,
        multi_lattice_fraction=0.5,
    )
    cfg = RunConfig(live=LiveParams(adaptive=False, block=4)).with_indexing(
        IndexingParams(cell=LYSOZYME)
    )
    s = LiveSession(run, config=cfg)
    _run_to_end(s)
    yield s
    s.close()


def test_dashboard_shows_indexing(indexed_session):
    s = indexed_session
    dash = Dashboard(s)
    changed = dash.update()
    assert {"indexing_rate", "cells", "status", "detector"} <= set(changed)
    ix = s.aggregates.indexing
    assert ix.tried == s.aggregates.hits >= 8
    rate = dash.views["indexing_rate"].source.data["rate"]
    assert rate and rate[-1] == pytest.approx(ix.rolling_rates()[0])
    counts = dash.views["cells"].sources["a"].data["count"]
    assert sum(counts) == len(ix.cells())
    left = dash.views["cells"].sources["c"].data["left"]
    assert min(left) < 37.9 < max(left) + 1
    assert (
        "indexed" in dash.views["status"].root.text and "of hits" in dash.views["status"].root.text
    )


def test_detector_view_draws_each_lattices_predicted_spots(indexed_session):
    s = indexed_session
    two = [i for i, lats in s.hit_lattices.items() if len(lats) == 2]
    assert two, "no hit with two lattices in the run"
    dash = Dashboard(s)
    dash.show_frame(two[0])
    pred = dash.views["detector"].predicted.data
    assert set(pred["lattice"]) == {"lattice 1", "lattice 2"}
    assert "2 lattices" in dash.views["detector"].root.title.text
    # the circled spots lie on predicted positions (of one lattice or the other)
    x, y = s.hit_peaks[two[0]]
    px, py = np.asarray(pred["x"]), np.asarray(pred["y"])
    d = np.hypot(x[:, None] - px[None, :], y[:, None] - py[None, :]).min(axis=1)
    assert np.mean(d < 2.0) > 0.7
