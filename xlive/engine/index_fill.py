"""Fill in indexing: index the hits a live run left unindexed to keep up (``index_tried``
False), from the peak tables in the feature store, and write their indexing features there.

Like the frames a live run skips, such hits are a recorded sample, not a loss: ``xlive process
RUN --out FEATURES --fill-in`` (or :func:`fill_in_indexing`) completes them afterwards without
reading a single frame again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .store import DONE, FeatureStore


def fill_in_indexing(features: str | Path, params=None, *, batch: int = 64) -> int:
    """Index the stored hits not tried yet; returns how many were indexed now (tried).

    ``params`` (IndexingParams): default the ones the store was computed with (its
    configuration), with no time budget.
    """
    import dataclasses

    from ..analyzers.indexing import INPUTS, Indexer
    from ..config import stored_config
    from ..geometry.core import Geometry

    store = FeatureStore.open(features, mode="r+")
    if "index_tried" not in store.specs:
        raise ConfigError(
            f"{features} was computed without indexing; process the run again "
            "with --cell or --index"
        )
    if params is None:
        params = stored_config(store.info).analyzers.get("indexing")
        if params is None:
            from ..analyzers.indexing import IndexingParams

            cell = store.info.get("indexing_cell")
            params = IndexingParams(
                cell=tuple(cell) if cell else None,
                space_group=store.info.get("indexing_space_group"),
            )
    params = dataclasses.replace(params, budget=None)
    geom = store.info.get("geometry")
    if not geom:
        raise ConfigError(f"{features} does not record its geometry; cannot index its hits")
    geometry = Geometry.from_dict(geom, mask=None)
    n = store.frames_seen
    status = store.status()
    hit = store.group["is_hit"][:n].astype(bool)
    tried = store.group["index_tried"][:n].astype(bool)
    todo = np.flatnonzero(hit & ~tried & (status == DONE))
    if not todo.size:
        return 0
    indexer = Indexer(geometry, params, max_peaks=store.specs["peak_x"]["shape"][0])
    names = [s.name for s in indexer.describe()]
    for s in range(0, todo.size, batch):
        idx = todo[s : s + batch]
        feats = {k: store.group[k].get_orthogonal_selection((idx,)) for k in INPUTS}
        out = indexer.index_block(feats)
        for name in names:
            store.group[name].set_orthogonal_selection((idx,), out[name])
    return int(todo.size)
