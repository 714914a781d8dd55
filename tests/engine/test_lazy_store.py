"""A lazily created feature store (``xlive serve``): made on disk at the live loop's step
after the run's first block, which reaches the listeners first; the store then holds exactly
what an eagerly created one holds."""

from __future__ import annotations

import numpy as np

from xlive.engine.live import LiveParams, LiveProcessor
from xlive.engine.store import FeatureStore, NewFeatureStore, open_features
from xlive.simulate import write_run
from xlive.sources import open_source


def test_lazy_store_is_made_after_the_first_block_and_holds_the_same(tmp_path):
    run = tmp_path / "run"
    write_run(run, frames=5, rate=0, detector="eiger500k", seed=4, hit_fraction=0.5)
    params = LiveParams(block=3, max_block=3)
    paths = {lazy: tmp_path / f"lazy-{lazy}.zarr" for lazy in (False, True)}
    for lazy, path in paths.items():
        src = open_source(run)
        on_disk: list[bool] = []
        lp = LiveProcessor(
            src,
            path,
            params=params,
            listeners=[lambda b, m, path=path, on_disk=on_disk: on_disk.append(path.exists())],
            lazy_store=lazy,
        )
        try:
            assert isinstance(lp.store, NewFeatureStore) == lazy
            assert path.exists() != lazy
            # the first block goes to the listeners before a lazy store is made on disk
            assert lp.first_block_here() == 3
            assert on_disk == [not lazy]
            assert lp.store.frames_seen == 5 and sorted(lp.store.specs) == sorted(
                s.name for s in lp.specs
            )
            lp.store.flush_if_due()  # what the live loop's next step calls
            assert path.exists() and type(lp.store) is FeatureStore
            assert lp.store.done().tolist() == [True] * 3 + [False] * 2
            lp.store.flush()
        finally:
            lp._unstored = []  # (close stores what is left: nothing; no cluster starts)
            lp.close()
            src.close()
    eager, lazy = (open_features(paths[k], computed_only=False) for k in (False, True))
    assert sorted(eager.variables) == sorted(lazy.variables)
    for k in eager.variables:
        np.testing.assert_array_equal(eager[k].values, lazy[k].values, err_msg=k)
    assert eager.attrs == lazy.attrs
    assert FeatureStore.open(paths[True]).info == FeatureStore.open(paths[False]).info


def test_new_store_keeps_what_it_records_in_order(tmp_path):
    """Frames skipped, faults and the flag timeline recorded before the store exists are
    written when it is made (here by asking its status)."""
    from xlive.analyzers import default_analyzers
    from xlive.engine.features import coord_parts, feature_specs

    run = tmp_path / "run"
    write_run(run, frames=2, rate=0, detector="eiger500k", seed=1)
    src = open_source(run)
    an = default_analyzers(src.geometry)
    kw = dict(specs=feature_specs(an), coords=coord_parts(an), attrs={"source": "x"})
    store = FeatureStore.open_or_create(tmp_path / "f.zarr", lazy=True, **kw)
    assert type(store) is NewFeatureStore and not (tmp_path / "f.zarr").exists()
    store.see(4)
    assert store.status().tolist() == [0, 0, 0, 0]  # nothing written: not made for this
    store.mark_skipped(np.array([1, 3]))
    store.set_faults({"missing": 1})
    store.set_flag_timeline([{"flag": "a"}], {"t": 1.0})
    assert store.status().tolist() == [0, 3, 0, 3]  # made now, with what it was told
    assert type(store) is FeatureStore and (tmp_path / "f.zarr").exists()
    assert store.faults() == {"missing": 1}
    assert store.flag_timeline() == [{"flag": "a"}]
    store.flush()
    again = FeatureStore.open(tmp_path / "f.zarr")
    assert again.status().tolist() == [0, 3, 0, 3] and again.info["source"] == "x"
    src.close()
