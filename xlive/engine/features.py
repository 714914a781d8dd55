"""``analyze()``: the lazy ``xarray.Dataset`` of per-frame features over a run's frames.

This is the only module that builds dask graphs of features, with dask's own tools: one
``map_blocks`` task per block of frames reads the frames (marking corrupt ones bad instead of
failing) and runs every analyzer on them (a :class:`~xlive.engine.block.Block` per task), so
frames are read once whatever the number of features; each feature is a ``map_blocks`` array
taken out of those tasks. The reader and the analyzers are one graph key each (shipped once).
Building the Dataset computes nothing; selecting frames computes only their blocks.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..aggregate.reducers import merge_partials
from ..conventions import FRAME, TIMESTAMP
from ..errors import BadFrameError, ConfigError
from .block import Block
from .cf import (
    BAD,
    DONE,
    STATUS,
    coord_attrs,
    feature_attrs,
    is_dimensionless,
    to_datetime64,
)

if TYPE_CHECKING:
    import xarray as xr

_tokens = itertools.count()
log = logging.getLogger(__name__)


def analyze_block(
    reader, analyzers, indices: np.ndarray, reducers=(), hold: tuple[str, float] | None = None
) -> Block:
    """Read ``indices`` and run every analyzer; bad frames get fill values and ``bad=True``.

    Frames are analysed one at a time as they are read (no copy into a block array: a 4M
    frame is 18 MB). ``reducers`` (see :mod:`xlive.aggregate.reducers`) add partial aggregates
    (``Block.partials``). With ``hold=(key, seconds)`` the partials are kept in this worker process
    under ``key`` and handed over at most every ``seconds`` (binned projections are megabytes
    per block); :func:`release_partials` hands over the rest.
    """
    indices = np.asarray(indices, dtype=np.int64)
    specs = [spec for an in analyzers for spec in an.describe()]
    out = {spec.name: spec.empty(len(indices)) for spec in specs}
    bad = np.zeros(len(indices), bool)
    # with hold: this worker thread's partials so far, added to in place (no new images per block)
    partials: dict = _take_held(hold) if reducers and hold is not None else {}
    for k, i in enumerate(indices):
        try:
            frame = reader.read_one(int(i))[None]
        except BadFrameError:
            bad[k] = True
            continue
        row: dict[str, np.ndarray] = {}
        try:
            for an in analyzers:
                row.update(an(frame))
        except Exception as exc:  # one odd frame must not stop a run: record it as bad
            log.warning(
                "frame %d: analysis failed (%s: %s); marked bad", i, type(exc).__name__, exc
            )
            bad[k] = True
            continue
        for spec in specs:
            out[spec.name][k] = np.asarray(row[spec.name], dtype=spec.dtype)[0]
        if reducers:
            one = Block(indices[k : k + 1], np.zeros(1, bool), row)
            for r in reducers:  # each adds the frame to the block's partial in place
                partials[r.name] = r(frame, one, partials.get(r.name))
    if reducers and hold is not None:
        partials = _hold_partials(hold, partials)
    return Block(indices, bad, out, partials)


#: partial aggregates held in this worker process per (key, thread): (time of the last
#: hand-over, parts); each worker thread adds its blocks to its own parts in place
_HELD: dict[tuple[str, int], tuple[float, dict]] = {}
_HELD_LOCK = threading.Lock()


def _take_held(hold: tuple[str, float]) -> dict:
    """This thread's held partials under ``key`` (taken out while the thread adds to them)."""
    with _HELD_LOCK:
        since, held = _HELD.pop((hold[0], threading.get_ident()), (None, {}))
    held["_since"] = since
    return held


def _hold_partials(hold: tuple[str, float], partials: dict) -> dict:
    """Keep ``partials`` (this thread's, see :func:`_take_held`) under ``key``; return them
    (and start again) once ``seconds`` have passed since the last hand-over, else nothing."""
    key, seconds = hold
    now = time.monotonic()
    since = partials.pop("_since", None)
    since = now if since is None else since
    if now - since >= seconds:
        return partials
    with _HELD_LOCK:
        _HELD[(key, threading.get_ident())] = (since, partials)
    return {}


def release_partials(key: str) -> dict:
    """The partials held under ``key`` in this process, by all threads (and forget them)."""
    with _HELD_LOCK:
        parts = [_HELD.pop(k)[1] for k in [k for k in _HELD if k[0] == key]]
    return merge_partials(parts)


def _rest_shape(spec) -> tuple[int, ...]:
    """Sizes of a feature's dims after ``frame``."""
    return tuple(int(spec.sizes[d]) for d in spec.dims[1:])


def _feature(block: Block, name: str) -> np.ndarray:
    if name == STATUS:  # each frame done, or bad (unreadable, or its analysis failed)
        return np.where(block.bad, BAD, DONE).astype(np.uint8)
    return block.features[name]


def feature_specs(analyzers) -> list:
    specs, seen = [], set()
    for an in analyzers:
        for spec in an.describe():
            if spec.name in seen:
                raise ConfigError(f"two analyzers both produce {spec.name!r}; rename one")
            seen.add(spec.name)
            specs.append(spec)
    return specs


def coord_parts(analyzers) -> dict[str, tuple[str, np.ndarray, dict]]:
    """The analyzers' coordinates (``q``, ``d``...) as ``name -> (dim, values, attrs)``, with a
    ``long_name`` at least (their name, when the analyzer gives none) and no ``units`` when
    dimensionless (what the feature store is created with: no xarray needed)."""
    coords: dict[str, tuple[str, np.ndarray, dict]] = {}
    for an in analyzers:
        for name, (dim, values, attrs) in an.coords().items():
            attrs = {"long_name": name.replace("_", " "), **dict(attrs)}
            if is_dimensionless(attrs.get("units")):
                attrs.pop("units", None)
            coords[name] = (dim, np.asarray(values), attrs)
    return coords


def feature_coords(analyzers) -> dict[str, Any]:
    """:func:`coord_parts` as ``xarray.Variable`` objects."""
    import xarray as xr  # dask.array, xarray, pandas: imported when used (serve starts sooner)

    return {name: xr.Variable(*parts) for name, parts in coord_parts(analyzers).items()}


def frame_chunks(source, n: int, block: int | str | None) -> tuple[int, ...]:
    """Frames per task: ``block`` frames, or (``"auto"``/None) as many as dask's
    ``array.chunk-size`` of raw frames (dask's own ``"auto"`` rule over the frames read, so
    a task reads about 128 MiB whatever the detector, and 100k frames are not 25k tasks)."""
    import dask.array as da

    if n == 0:
        return (0,)
    if block is None or block == "auto":
        reader = source.reader
        return da.core.normalize_chunks(
            ("auto", -1, -1), (n, *reader.shape), dtype=np.dtype(reader.dtype)
        )[0]
    if not isinstance(block, (int, np.integer)) or isinstance(block, bool) or block < 1:
        raise ConfigError(f"block must be a positive number of frames or 'auto', got {block!r}")
    return da.core.normalize_chunks(int(block), (n,))[0]


def lazy_features(
    source, analyzers, indices: Sequence[int] | np.ndarray, block: int | str | None = "auto"
) -> xr.Dataset:
    """A lazy Dataset of the features of frames ``indices`` (dims ``frame`` first), with the
    ``status`` of each frame (done or bad) as a lazy coordinate and CF attributes throughout."""
    import dask
    import dask.array as da
    import xarray as xr

    from . import accessor  # noqa: F401  (registers Dataset.xlive)

    indices = np.asarray(indices, dtype=np.int64)
    specs = feature_specs(analyzers)
    base = f"xlive-analyze-{next(_tokens)}"
    variables = [(STATUS, (FRAME,), "uint8", ())]
    variables += [(s.name, s.dims, s.dtype, _rest_shape(s)) for s in specs]
    data_vars = {}
    if indices.size:
        chunks = frame_chunks(source, indices.size, block)
        index = da.from_array(indices, chunks=(chunks,), name=f"{base}-index")
        # one task per block; its chunk is a Block object (meta says so), never an array
        blocks = da.map_blocks(
            analyze_block,
            dask.delayed(source.reader, pure=False),
            dask.delayed(list(analyzers), pure=False),
            index,
            dtype=object,
            meta=np.empty((0,), object),
            name=base,
        )
    for name, dims, dtype, rest in variables:
        if not indices.size:
            arr = da.empty((0, *rest), dtype=dtype)
        else:
            arr = da.map_blocks(
                _feature,
                blocks,
                name,
                dtype=dtype,
                chunks=(blocks.chunks[0], *((r,) for r in rest)),
                new_axis=list(range(1, 1 + len(rest))),
                meta=np.empty((0,) * (1 + len(rest)), dtype),
                name=f"{base}-{name}",
            )
        data_vars[name] = xr.Variable(dims, arr)
    status = data_vars.pop(STATUS)
    meta = source.metadata()
    coords: dict[str, Any] = {FRAME: xr.Variable(FRAME, indices, attrs=coord_attrs(FRAME))}
    for k, v in meta.items():
        values = np.asarray(v)[indices]
        if k == TIMESTAMP:
            values = to_datetime64(values)
        coords[k] = xr.Variable(FRAME, values, attrs=coord_attrs(k))
    coords[STATUS] = xr.Variable(FRAME, status.data, attrs=coord_attrs(STATUS))
    coords.update(feature_coords(analyzers))
    ds = xr.Dataset(data_vars, coords=coords)
    for spec in specs:
        ds[spec.name].attrs.update(feature_attrs(spec))
    return ds


def analyze(
    target,
    analyzers=None,
    *,
    geometry=None,
    frames: slice | Sequence[int] | None = None,
    block: int | str | None = "auto",
    **params,
) -> xr.Dataset:
    """Per-frame features of a run, as a lazy ``xarray.Dataset`` (nothing computed yet).

    Parameters
    ----------
    target
        A :class:`~xlive.sources.Source` or anything :func:`xlive.open_source` opens.
    analyzers
        Analyzer objects, or None for the defaults built from the geometry and ``params``.
    geometry
        Replaces the geometry the source reads from its headers.
    frames
        A slice or indices of the frames to include (default: all complete frames now).
    block
        Frames per dask task; ``"auto"`` (default): about dask's ``array.chunk-size``
        (128 MiB) of raw frames per task, as dask's own ``chunks="auto"`` sizes chunks.

    Returns
    -------
    xarray.Dataset
        One variable per declared feature (dims ``frame`` first), coordinates ``frame``,
        the run's per-frame metadata (``timestamp`` as ``datetime64[ns]``), ``status``
        (1 done, 2 bad frame; lazy like the features) and the analyzers' coordinates
        (``q``, ``d``...); every variable and coordinate has CF ``long_name`` and ``units``
        (none for a dimensionless one). The same layout as :func:`xlive.open_features`.

    Examples
    --------
    >>> ds = analyze("data-samples/lysozyme-eiger500k")      # doctest: +SKIP
    >>> ds.n_spots.sel(frame=slice(0, 10)).compute()          # doctest: +SKIP
    """
    from ..sources import Source, open_source

    source = target if isinstance(target, Source) else open_source(target)
    n = source.refresh()
    geom = geometry or source.geometry
    if analyzers is None:
        from ..analyzers import default_analyzers

        analyzers = default_analyzers(geom, **params)
    elif params:
        raise ConfigError(f"parameters {sorted(params)} apply to the default analyzers only")
    if frames is None:
        indices = np.arange(n)
    elif isinstance(frames, slice):
        indices = np.arange(n)[frames]
    else:
        indices = np.asarray(frames, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ConfigError(f"frame indices must lie in 0..{n - 1} ({n} complete frames)")
    ds = lazy_features(source, analyzers, indices, block=block)
    ds.attrs["source"] = str(getattr(source, "path", source))
    return ds
