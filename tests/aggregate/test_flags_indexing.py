"""Indexing aggregates and flags on simulated runs: silent on a clean run, each flag on its
condition (hits that do not index, another cell, a second cell population, rate dropped)."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.aggregate import RunAggregates
from xlive.aggregate.flags import FlagThresholds, evaluate
from xlive.aggregate.indexing import cell_clusters
from xlive.analyzers.indexing import Indexer, IndexingParams
from xlive.engine.block import Block

from ..analyzers.indexing_helpers import simulated_peaks
from .test_flags import aggregates_of

LYSOZYME = (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)
T = FlagThresholds(window=20, min_frames=10, index_min_hits=10)


def feed(
    agg: RunAggregates,
    geom,
    frames,
    params: IndexingParams,
    start: int = 0,
    laser: np.ndarray | None = None,
) -> None:
    """Index simulated frames' peak tables and feed the aggregates in blocks of 8 frames."""
    ix = Indexer(geom, params)
    keys = ("peak_x", "peak_y", "peak_snr", "is_hit")
    for s in range(0, len(frames), 8):
        block = frames[s : s + 8]
        feats = {k: np.stack([np.asarray(f[k]) for f in block]) for k in keys}
        res = ix.index_block(feats)
        res.update(feats)
        idx = np.arange(start + s, start + s + len(block))
        meta = {} if laser is None else {"laser_on": laser[s : s + len(block)]}
        agg.update(Block(idx, np.zeros(len(block), bool), res), meta)


@pytest.fixture(scope="module")
def lysozyme_hits():
    return simulated_peaks(40, seed=41, hit_fraction=1.0)


def test_clean_run_with_indexing_raises_no_flag(tmp_path_factory):
    agg = aggregates_of(tmp_path_factory, "clean_indexed", index=IndexingParams(cell=LYSOZYME))
    flags = evaluate(agg, FlagThresholds(window=60, min_frames=20))
    assert flags == [], [f.message for f in flags]
    ix = agg.indexing
    assert ix.tried == agg.hits > 30 and ix.rate > 0.95
    assert abs(ix.rate_of_frames - agg.hit_rate * ix.rate) < 1e-9
    np.testing.assert_allclose(ix.median_cell(), LYSOZYME, rtol=0.005)
    assert len(ix.clusters()) == 1


@pytest.mark.slow
def test_rates_split_by_laser(lysozyme_hits):
    geom, cell, frames = lysozyme_hits
    agg = RunAggregates()
    laser = np.arange(len(frames)) % 2 == 0
    feed(agg, geom, frames, IndexingParams(cell=cell), laser=laser)
    ix = agg.indexing
    assert ix.tried_by_laser[True] == 20 and ix.tried_by_laser[False] == 20
    of_hits, of_frames, on, off = ix.rate_points[-1][1:]
    assert of_hits > 0.9 and on > 0.9 and off > 0.9 and of_frames == of_hits  # all hits


@pytest.mark.slow
def test_wrong_geometry_hits_do_not_index_and_rate_drops(lysozyme_hits):
    geom, cell, frames = lysozyme_hits
    bx, by = geom.beam_center
    import dataclasses

    off = geom.replace(
        panels=(dataclasses.replace(geom.panels[0], corner_x=-(bx + 12), corner_y=-(by - 9)),)
    )
    agg = RunAggregates()
    feed(agg, geom, frames, IndexingParams(cell=cell))
    assert not {f.name for f in evaluate(agg, T)} & {"hits_do_not_index", "indexing_rate_dropped"}
    feed(agg, off, frames, IndexingParams(cell=cell), start=len(frames))
    fired = {f.name: f.message for f in evaluate(agg, T)}
    assert "hits_do_not_index" in fired and "indexing_rate_dropped" in fired, fired


@pytest.mark.slow
def test_cell_differs_from_the_given_one(lysozyme_hits):
    geom, cell, frames = lysozyme_hits
    agg = RunAggregates()
    feed(agg, geom, frames[:24], IndexingParams(cell=(90.0, 90.0, 45.0, 90, 90, 90)))
    fired = {f.name: f.message for f in evaluate(agg, T)}
    assert "cell_differs" in fired, fired
    assert "79.1" in fired["cell_differs"] and "37.9" in fired["cell_differs"]


@pytest.mark.slow
def test_second_cell_population(lysozyme_hits):
    geom, _, frames = lysozyme_hits
    geom2, _, other = simulated_peaks(
        12, seed=42, hit_fraction=1.0, unit_cell=(70.0, 70.0, 45.0, 90, 90, 90)
    )
    agg = RunAggregates()
    feed(agg, geom, frames[:24], IndexingParams())
    assert "second_cell_population" not in {f.name for f in evaluate(agg, T)}
    feed(agg, geom2, other, IndexingParams(), start=24)
    fired = {f.name: f.message for f in evaluate(agg, T)}
    assert "second_cell_population" in fired, fired
    pops = agg.indexing.clusters()
    assert len(pops) == 2 and pops[0][0] == 24 and pops[1][0] == 12


def test_cell_clusters_separate_populations_by_sorted_lengths():
    rng = np.random.default_rng(0)
    a = np.array(LYSOZYME) + rng.normal(0, 0.1, (50, 6))
    b = np.array((70.0, 70.0, 45.0, 90, 90, 90)) + rng.normal(0, 0.1, (20, 6))
    b[:10, [0, 2]] = b[:10, [2, 0]]  # another setting of the same lattice
    pops = cell_clusters(np.vstack([a, b]))
    assert [n for n, _ in pops] == [50, 20]
    np.testing.assert_allclose(pops[0][1][:3], LYSOZYME[:3], atol=0.2)
