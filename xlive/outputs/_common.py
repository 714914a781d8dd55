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
    from ..sources.pending import target_exists

    if source is None:
        target = ds.attrs.get("source")
        if not target:
            raise SourceError(
                "the feature store does not say which run it came from; pass the run (--source RUN)"
            )
        if not target_exists(str(target)):
            raise SourceError(
                f"the run {target} recorded in the feature store is gone; "
                "pass where it is now (--source RUN)"
            )
        source = target
    if isinstance(source, (str, Path)):
        metadata = attr_json(ds, "metadata_file")
        source = open_source(source, **({"metadata": metadata} if metadata else {}))
        # the geometry the run was processed with (--geometry, --mask, [geometry])
        plan = attr_json(ds, "geometry_options")
        if isinstance(plan, dict):
            from ..geometry.plan import GeometryPlan

            source.geometry_edit = GeometryPlan(
                plan.get("file"), plan.get("mask"), plan.get("values") or {}
            )
    source.refresh()
    return source


def block_iter(ds: xr.Dataset, names, size: int = 256):
    r"""``(block, meta)`` over ``ds`` in :class:`~xlive.engine.block.Block`\ s, as the live loop
    hands them to its listeners."""
    from ..engine.block import Block

    n = ds.sizes[FRAME]
    for s in range(0, n, size):
        sub = ds.isel({FRAME: slice(s, s + size)}).compute()
        block = Block(
            sub[FRAME].values,
            np.zeros(sub.sizes[FRAME], bool),
            {k: sub[k].values for k in names if k in sub.variables},
        )
        meta = {k: sub[k].values for k in META if k in sub.coords}
        yield block, meta


def declared_specs(ds: xr.Dataset) -> list:
    """The :class:`~xlive.analyzers.base.FeatureSpec` of every feature stored with a ``show``
    or ``flags`` declaration (the features added by analyzers beyond the built-in set)."""
    from ..analyzers.base import FeatureSpec
    from ..engine.cf import declared_show_flags

    specs = []
    for name, var in ds.data_vars.items():
        show, flags = declared_show_flags(var.attrs)
        if show is None and not flags:
            continue
        specs.append(
            FeatureSpec.from_dict(
                {
                    "name": name,
                    "dims": var.dims,
                    "dtype": str(var.dtype),
                    "units": var.attrs.get("units", ""),
                    # CF long_name (stores before issue 17: description)
                    "description": var.attrs.get("long_name", var.attrs.get("description", "")),
                    "sizes": {d: ds.sizes[d] for d in var.dims[1:]},
                    "show": show,
                    "flags": flags,
                }
            )
        )
    return specs


def flag_thresholds_of(ds: xr.Dataset, default=None):
    """The flag thresholds the live loop last judged the run with (stored with its flag
    timeline), else ``default``: a replay judges the run by the same rules and windows."""
    import dataclasses

    from ..aggregate.flags import FlagThresholds

    stored = attr_json(ds, "flag_thresholds")
    if not isinstance(stored, dict):
        return default or FlagThresholds()
    known = {f.name for f in dataclasses.fields(FlagThresholds)}
    return FlagThresholds(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in known}
    )


def aggregates(ds: xr.Dataset, *, replay_flags: bool = False, every: int = 256):
    """:class:`~xlive.aggregate.running.RunAggregates` of a whole feature store (for flags and
    plots).

    Aggregate windows and flag thresholds are those the features were computed with (the
    configuration stored with them). With ``replay_flags``, the flag rules are evaluated along
    the run exactly as the live loop does (:class:`~xlive.aggregate.timeline.FlagTracker`) and
    ``(aggregates, timeline)`` is returned: a :class:`~xlive.aggregate.timeline.FlagTimeline`
    with each flag's episodes (raised at, cleared at, worst value).
    """
    from ..aggregate.running import RunAggregates
    from ..aggregate.timeline import replay
    from ..config import stored_config

    cfg = stored_config(ds.attrs, analyzers=False)
    agg = RunAggregates(cfg.aggregate)
    agg.declare(declared_specs(ds))
    names = [k for k in ds.data_vars if ds[k].dims[0] == FRAME]
    blocks = block_iter(ds, names, size=every)
    if replay_flags:
        tracker = replay(blocks, aggregates=agg, thresholds=flag_thresholds_of(ds, cfg.flags))
        return agg, tracker.timeline
    for result, meta in blocks:
        agg.update(result, meta)
    return agg
