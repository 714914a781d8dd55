"""Shared helpers of the outputs: open a feature store, its run, its geometry, its aggregates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import FRAME, FRAME_NUMBER, LASER_ON, PULSE_ENERGY, TIMESTAMP
from ..errors import ConfigError, SourceError

META = (TIMESTAMP, LASER_ON, PULSE_ENERGY, FRAME_NUMBER)


def features_dataset(features: str | Path | xr.Dataset) -> xr.Dataset:
    """The computed frames of a feature store (a path), or ``features`` itself (a Dataset)."""
    if isinstance(features, xr.Dataset):
        return features
    from ..engine.store import open_features

    return open_features(features)


def store_status(features: str | Path | xr.Dataset) -> np.ndarray | None:
    """Status of every frame the store has seen (None when given a Dataset of done frames)."""
    if isinstance(features, xr.Dataset):
        return None
    from ..engine.store import FeatureStore

    return FeatureStore.open(features).status()


def attr_json(ds: xr.Dataset, name: str):
    """A store attribute that :meth:`FeatureStore.to_dataset` wrote as JSON (or as is)."""
    value = ds.attrs.get(name)
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    return value


def require(ds: xr.Dataset, *names: str, what: str) -> None:
    """Raise a ConfigError naming the features ``what`` needs but the store lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ConfigError(
            f"{what} needs the features {missing}, which this feature store lacks; "
            "compute them with the default analyzers (`xlive process RUN --out FEATURES`)"
        )


def run_source(ds: xr.Dataset, source=None):
    """The run's :class:`~xlive.sources.Source`: ``source`` (an object or a path) or the one
    recorded in the feature store, refreshed."""
    from ..sources import open_source

    if source is None:
        target = ds.attrs.get("source")
        if not target:
            raise SourceError("the feature store does not say which run it came from; "
                              "pass the run (--source RUN)")
        if "://" not in str(target) and not Path(target).exists():
            raise SourceError(f"the run {target} recorded in the feature store is gone; "
                              "pass where it is now (--source RUN)")
        source = target
    if isinstance(source, (str, Path)):
        source = open_source(source)
    source.refresh()
    return source


def block_iter(ds: xr.Dataset, names, size: int = 256):
    """``(result, meta)`` dicts over ``ds`` in blocks, shaped like the live loop's blocks."""
    n = ds.sizes[FRAME]
    for s in range(0, n, size):
        sub = ds.isel({FRAME: slice(s, s + size)})
        result = {k: sub[k].values for k in names if k in sub.variables}
        result["frame_index"] = sub[FRAME].values
        result["bad"] = np.zeros(sub.sizes[FRAME], bool)
        meta = {k: sub[k].values for k in META if k in sub.coords}
        yield result, meta


def aggregates(ds: xr.Dataset, *, replay_flags: bool = False, every: int = 50):
    """:class:`~xlive.aggregate.running.RunAggregates` of a whole feature store (for flags and plots).

    With ``replay_flags``, the flag rules are evaluated every ``every`` frames as the live loop
    would have, and ``(aggregates, flags)`` is returned: each flag raised anywhere in the run,
    once, as first raised, with the frame where it was first raised.
    """
    from ..aggregate.flags import evaluate
    from ..aggregate.running import RunAggregates

    agg = RunAggregates()
    names = [k for k in ds.data_vars if ds[k].dims[0] == FRAME]
    raised: dict[str, tuple] = {}
    for result, meta in block_iter(ds, names, size=every):
        agg.update(result, meta)
        if replay_flags:
            for f in evaluate(agg):
                raised.setdefault(f.name, (f, int(result["frame_index"][-1])))
    return (agg, list(raised.values())) if replay_flags else agg
