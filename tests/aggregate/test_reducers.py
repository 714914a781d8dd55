"""Reducer kernels against their numpy references; projections and hot-pixel candidates."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.aggregate._kernels import project, project_ref, ring_outliers, ring_outliers_ref
from xlive.aggregate.reducers import HotPixelReducer, ProjectionReducer
from xlive.aggregate.running import RunAggregates
from xlive.analyzers import default_analyzers
from xlive.simulate import SimParams, Simulation


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "int32", "float32"])
@pytest.mark.parametrize("f", [1, 2, 3])
@pytest.mark.parametrize("case", ["random", "all_masked", "empty", "saturated_gaps", "range"])
def test_project_matches_reference(dtype, f, case):
    rng = np.random.default_rng(1)
    shape = (37, 29)
    frame = rng.poisson(3.0, shape).astype(dtype)
    valid = rng.random(shape) > 0.1
    lo, hi = 0.0, 1e6
    if dtype == "uint16":  # an EIGER in 16-bit mode: 65535 marks gaps and overflows
        lo, hi = 0.0, 65534.0
    if case == "all_masked":
        valid[:] = False
    elif case == "empty":
        frame[:] = 0
    elif case == "saturated_gaps":
        frame[::7] = np.iinfo(dtype).max if dtype != "float32" else np.nan
        frame[3, 4] = min(999_999, hi)
    elif case == "range":  # bounds between integers, at the ends of the type, or beyond it
        frame[::5] = 1
        lo, hi = (0.5, 2.5) if f != 3 else (-1e40, 1e40)
    s = np.zeros((-(-shape[0] // f), -(-shape[1] // f)))
    m = np.zeros_like(s)
    project(frame, valid, lo, hi, f, s, m, True)
    rs, rm = project_ref(frame, valid, lo, hi, f)
    np.testing.assert_allclose(s, rs)
    np.testing.assert_allclose(m, np.maximum(rm, 0))
    also = np.ones_like(s)  # the same sums added into a second image too, no maximum
    s2, m2 = np.zeros_like(s), np.zeros_like(s)
    project(frame, valid, lo, hi, f, s2, m2, False, also_sum=also)
    np.testing.assert_allclose(s2, rs)
    np.testing.assert_allclose(also, rs + 1)
    assert not m2.any()


@pytest.mark.parametrize("case", ["random", "hot", "all_masked", "bright_ring"])
def test_ring_outliers_match_reference(case):
    rng = np.random.default_rng(2)
    frame = rng.poisson(2.0, (40, 50)).astype(np.uint32)
    ring = (np.hypot(*np.mgrid[-20:20, -25:25]) // 4).astype(np.int32)
    if case == "hot":
        frame[5, 7] = 500
        frame[30, 40] = 90
    if case == "all_masked":
        ring[:] = -1
    if case == "bright_ring":  # thresholds far apart: 50 is hot in a dim ring, not in ring 2
        frame[ring == 2] += 100
        dim, bright = np.flatnonzero(ring == 4)[2], np.flatnonzero(ring == 2)[3]
        frame.flat[[dim, bright]] = 50
    n_rings = int(ring.max(initial=-1)) + 1
    buf = np.empty(1000, np.int64)
    k = ring_outliers(frame, ring, n_rings, 0.0, 1e9, 8.0, buf)
    ref = ring_outliers_ref(frame, ring, n_rings, 0.0, 1e9, 8.0)
    np.testing.assert_array_equal(np.sort(buf[:k]), ref)
    if case == "hot":
        assert {5 * 50 + 7, 30 * 50 + 40} <= set(ref.tolist())
    if case == "bright_ring":
        assert dim in ref and bright not in ref


def test_hot_pixels_found_over_frames_and_spots_are_not():
    sim = Simulation(SimParams(detector="eiger500k", seed=5, hit_fraction=0.6, hot_pixels=6))
    an = default_analyzers(sim.geometry)
    red = [ProjectionReducer(sim.geometry), HotPixelReducer(sim.geometry, stride=2)]
    agg = RunAggregates(geometry=sim.geometry)
    from xlive.engine.features import analyze_block

    class Reader:
        shape, dtype = sim.geometry.shape, np.dtype(sim.detector.dtype)

        def read_one(self, i):
            return sim.frame(i)[0]

    for s in range(0, 24, 8):
        agg.update(analyze_block(Reader(), an, np.arange(s, s + 8), red), {})
    assert sorted(agg.hot_pixels().tolist()) == sorted(sim.hot_pixels.tolist())
    proj = agg.partials["projections"]
    assert proj.n_hits == agg.hits and proj.n_all == 3  # frames 0, 10, 20 (stride 10)


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32"])
def test_projection_reducer_bands_match_reference_over_frames(dtype):
    """Frames added into the row-band sums and binned only when read (or when the band sums
    are full) give the images of each frame projected on its own."""
    import pickle

    from xlive.engine.block import Block

    sim = Simulation(SimParams(detector="eiger500k", seed=3, hit_fraction=0.5))
    geometry = sim.geometry.replace(sentinels=None)
    red = ProjectionReducer(geometry, factor=3, stride=4)
    rng = np.random.default_rng(4)
    frames = rng.poisson(2.0, (12, *geometry.shape)).astype(dtype)
    frames[:, 7, :] = np.iinfo(dtype).max if dtype != "float32" else np.nan  # out of range
    hits = rng.random(12) < 0.5
    hits[[0, 1]] = True, False  # frame 0: a hit and sampled (stride 4); frame 1: neither
    lo, hi = 0.0, (65534.0 if dtype == "uint16" else 1e9)
    if dtype != "uint16":
        from xlive.analyzers.base import valid_range

        lo, hi = valid_range(np.dtype(dtype), geometry)
        lo, hi = max(lo, -3e38), min(hi, 3e38)
    into = None
    for k in range(12):
        block = Block(np.array([k]), np.zeros(1, bool), {"is_hit": hits[k : k + 1]})
        into = red(frames[k : k + 1], block, into)
        if k == 5:
            into.bands.limit = 2  # the band sums must be binned every two frames from here
        if k == 8:
            assert into.sum_all is not None  # a read midway bins what the bands hold
    valid = red.valid
    refs = [project_ref(frames[k], valid, lo, hi, 3) for k in range(12)]
    sampled = np.arange(12) % 4 == 0
    assert (into.n_hits, into.n_all) == (int(hits.sum()), int(sampled.sum()))
    shipped = pickle.loads(pickle.dumps(into))  # as from a worker process: binned, float32
    for p in (into, shipped):
        np.testing.assert_allclose(p.sum_all, sum(refs[k][0] for k in np.flatnonzero(sampled)))
        np.testing.assert_allclose(p.sum_hits, sum(refs[k][0] for k in np.flatnonzero(hits)))
        np.testing.assert_allclose(
            p.max_hits, np.maximum(np.max([refs[k][1] for k in np.flatnonzero(hits)], 0), 0)
        )
    assert shipped.bands is None and shipped.sum_all.dtype == np.float32
    total = into + shipped
    np.testing.assert_allclose(total.sum_hits, 2 * into.sum_hits)
