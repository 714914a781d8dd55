"""``LiveProcessor.first_block_here``: the run's first block analysed in the calling thread
before any dask cluster starts (``xlive serve``'s quick start) stores the same features and
hands over the same partial aggregates as the cluster would."""

from __future__ import annotations

import numpy as np

from xlive.aggregate.running import RunAggregates
from xlive.engine.live import LiveParams, LiveProcessor
from xlive.engine.store import open_features
from xlive.simulate import write_run
from xlive.sources import open_source


def _values(part) -> dict:
    """A partial aggregate's numbers (arrays and counts), by attribute name."""
    return {
        k: v for k, v in vars(part).items() if isinstance(v, (int, float, np.ndarray, np.number))
    }


def test_first_block_here_stores_what_the_cluster_stores(tmp_path):
    run = tmp_path / "run"
    write_run(run, frames=8, rate=0, detector="eiger500k", seed=3, hit_fraction=0.5)
    params = LiveParams(block=3, max_block=3, partials_interval=3600)
    aggs, blocks = [], []
    for name, here in (("cluster", False), ("here", True)):
        src = open_source(run)
        agg = RunAggregates(geometry=src.geometry)
        seen: list = []
        with LiveProcessor(
            src,
            tmp_path / f"{name}.zarr",
            params=params,
            listeners=[
                agg.update,
                lambda b, m, seen=seen: seen.append((b.frames.tolist(), set(b.partials))),
            ],
        ) as lp:
            if here:
                assert lp.first_block_here() == 3
                assert lp._client is None  # no dask cluster started for it
                # the block and its partials went to the listeners (not held by a worker)
                assert seen == [([0, 1, 2], {"projections", "hot_pixels"})]
                assert lp.first_block_here() == 0  # once only
            assert lp.run(until_idle=0.0).frames_stored == 8
            assert lp._client is not None  # the rest went through the cluster
        aggs.append(agg)
        blocks.append(sorted(f for frames, _ in seen for f in frames))
        src.close()
    assert blocks[0] == blocks[1] == list(range(8))
    a, b = (open_features(tmp_path / f"{n}.zarr", computed_only=False) for n in ("cluster", "here"))
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    assert aggs[0].partials.keys() == aggs[1].partials.keys()
    for name in aggs[0].partials:
        va, vb = _values(aggs[0].partials[name]), _values(aggs[1].partials[name])
        assert va.keys() == vb.keys() and va, name
        for k in va:
            np.testing.assert_allclose(va[k], vb[k], rtol=1e-6, err_msg=f"{name}.{k}")
    assert aggs[1].partials["projections"].n_all > 0
