"""FeatureStore: computed per-frame features in an append-only Zarr v3 group, resumable.

Layout (xarray's own Zarr layout, so ``xarray.open_zarr(path)`` reads the store as the same
Dataset as :func:`open_features` with ``computed_only=False``): one array per feature
(``frame`` first, chunked along frame), the ``frame`` coordinate, per-frame metadata arrays
(``timestamp`` as CF-encoded int64 nanoseconds, read back as ``datetime64[ns]``), coordinate
arrays (``q``, ``d``...), and ``status`` (uint8 per frame: 0 pending, 1 done, 2 bad frame,
3 skipped by sampling); CF ``long_name``/``units`` on every array; the group attribute
``coordinates`` names the non-dimension coordinates.

Writing: a block's features are written first and its ``status`` after, so a process killed at
any moment (even ``kill -9``) leaves only frames whose features are fully stored marked done; a
restart computes exactly the frames not done. Zarr's local store writes every file atomically
(write then rename), so a chunk or a metadata document is never half-written.

Growing: readers see the group through its consolidated metadata (every array's shape in the
group's ``zarr.json``), which the writer rewrites in one atomic file (:meth:`FeatureStore.flush`)
at most once a second as the run grows, at the end of a run and on close. It says every frame
array has exactly ``frames_seen`` rows (the rows seen when it was written), never the rows
allocated ahead (arrays grow a chunk at a time, the new rows' ``frame`` values written
first). So a reader polling a growing store sees every array with the same number of rows,
each row either written (``status`` done/bad/skipped) or pending (``status`` 0, fill values,
``timestamp`` NaT); on close the arrays' own shapes are cut to the rows seen as well.

Only one process writes a store at a time (the live loop's driver); readers may poll freely.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from zarr.core.group import ConsolidatedMetadata

from ..conventions import FRAME, TIMESTAMP
from ..errors import ConfigError, SourceError
from ..sources._chunk_write import ChunkWriter, direct_layout
from ..sources._zarr_write import resize_many, set_many
from .cf import (
    BAD,
    DONE,
    NAT_INT,
    PENDING,
    SKIPPED,
    STATUS,
    TIME_ENCODING,
    coord_attrs,
    encode_time,
    feature_attrs,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["BAD", "DONE", "PENDING", "SKIPPED", "FeatureStore", "open_features"]

CHUNK = 128
#: seconds between publications of a growing store's rows to readers (see ``flush``)
PUBLISH_INTERVAL = 1.0
#: per-frame metadata kept with the features: name -> dtype in memory (``timestamp``:
#: datetime64, stored as int64 nanoseconds with CF time attributes)
META_FIELDS = {
    "timestamp": "datetime64[ns]",
    "laser_on": "bool",
    "pulse_energy": "float32",
    "frame_number": "int64",
    "train_id": "uint64",
    "pulse_id": "uint64",
}
#: group attributes the writer changes as the run goes (not the run's provenance)
RUNTIME_ATTRS = ("frames_seen", "frames_done", "flag_timeline", "flag_thresholds", "faults")
VERSION = 2


def _fill(dtype: str):
    k = np.dtype(dtype).kind
    return float("nan") if k == "f" else (False if k == "b" else 0)


def _stored(name: str, values) -> np.ndarray:
    """A metadata column as stored (timestamps: int64 nanoseconds, NaT as int64 min)."""
    if name == TIMESTAMP:
        return encode_time(values)
    return np.asarray(values, dtype=META_FIELDS[name])


def _json_attr(value):
    """Dict and list attributes as JSON text (a Dataset's attributes stay netCDF-friendly)."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _from_json(value):
    """An attribute kept as JSON text (or, in stores written before, as a Zarr dict)."""
    return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value


class FeatureStore:
    """Open with :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, group: zarr.Group):
        self.group = group
        self.path = Path(str(group.store.root)) if hasattr(group.store, "root") else None
        info = _from_json(group.attrs.get("xlive", {}))
        if not isinstance(info, dict) or info.get("kind") != "features":
            raise SourceError(
                f"{self.path} is not an xlive feature store; give another --out "
                "(or delete it if it is left from a failed run)"
            )
        # version 1 kept the run's provenance inside "xlive" only; version 2 keeps it there too
        # (for the engine) and as top-level attributes (for the Dataset)
        self.info = info
        self.specs = {s["name"]: s for s in info["specs"]}
        self._coord_names = list(info.get("coords", []))
        self._arrays: dict[str, zarr.Array] = {}
        #: per array: a ChunkWriter (rows written straight to its chunk files), or None (zarr)
        self._writers: dict[str, ChunkWriter | None] = {}
        self._done_mask: np.ndarray | None = None
        # the writer's own count (readers see the one published last, see flush())
        self._seen = int(group.attrs.get("frames_seen", 0))
        # what readers see now: the state this store was opened in
        self._published = (self._seen, int(group.attrs.get("frames_done", 0)))
        self._published_at = time.monotonic()

    def _array(self, name: str) -> zarr.Array:
        """A cached handle (the writer resizes through these, so their shape stays current)."""
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(
        cls, path: str | Path, *, specs, coords: dict, attrs: dict | None = None, chunk: int = CHUNK
    ) -> FeatureStore:
        """Create a store; it is built beside ``path`` and renamed into place when complete, so
        a failure (disk full, kill) never leaves a half-made store that cannot be resumed."""
        path = Path(path)
        remove_stale_partials(path)
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            cls._build(tmp, specs=specs, coords=coords, attrs=attrs, chunk=chunk)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if path.exists() and not (path / "zarr.json").exists() and not any(path.iterdir()):
                path.rmdir()
            raise
        return cls(zarr.open_group(str(path), mode="r+"))

    @staticmethod
    def _build(path: Path, *, specs, coords: dict, attrs: dict | None, chunk: int) -> None:
        g = zarr.open_group(str(path), mode="w-", zarr_format=3)
        spec_dicts = []
        for s in specs:
            rest = tuple(int(s.sizes[d]) for d in s.dims[1:])
            d = s.to_dict()
            attributes = feature_attrs(s)  # CF, and how views and reports show it
            g.create_array(
                s.name,
                shape=(0, *rest),
                chunks=(chunk, *rest),
                dtype=s.dtype,
                fill_value=_fill(s.dtype),
                dimension_names=tuple(s.dims),
                attributes=attributes,
            )
            spec_dicts.append({**d, "shape": list(rest)})
        g.create_array(
            FRAME,
            shape=(0,),
            chunks=(chunk,),
            dtype="int64",
            fill_value=-1,
            dimension_names=(FRAME,),
            attributes=coord_attrs(FRAME),
        )
        for name, dt in META_FIELDS.items():
            is_time = name == TIMESTAMP
            g.create_array(
                name,
                shape=(0,),
                chunks=(chunk,),
                dtype="int64" if is_time else dt,
                fill_value=NAT_INT if is_time else _fill(dt),
                dimension_names=(FRAME,),
                attributes={**coord_attrs(name), **(TIME_ENCODING if is_time else {})},
            )
        g.create_array(
            STATUS,
            shape=(0,),
            chunks=(chunk,),
            dtype="uint8",
            fill_value=PENDING,
            dimension_names=(FRAME,),
            attributes=coord_attrs(STATUS),
        )
        for name, var in coords.items():
            # an xarray.Variable or (dim(s), values, attrs) (features.coord_parts)
            dims, values, var_attrs = (
                var if isinstance(var, tuple) else (var.dims, var.values, var.attrs)
            )
            dims = (dims,) if isinstance(dims, str) else tuple(dims)
            values = np.asarray(values)
            a = g.create_array(
                name,
                shape=values.shape,
                dtype=values.dtype,
                dimension_names=dims,
                attributes=dict(var_attrs),
            )
            a[...] = values
        provenance = dict(attrs or {})
        g.attrs.update(
            {
                # JSON text, not a Zarr dict: xarray.open_zarr(store).to_netcdf works
                "xlive": json.dumps(
                    {
                        "kind": "features",
                        "version": VERSION,
                        "specs": spec_dicts,
                        "coords": list(coords),
                        **provenance,
                    }
                ),
                **{k: _json_attr(v) for k, v in provenance.items() if v is not None},
                "frames_seen": 0,
                "frames_done": 0,
                # CF: the non-dimension coordinates (xarray sets them as coordinates on reading)
                "coordinates": " ".join([*META_FIELDS, STATUS, *coords]),
            }
        )
        FeatureStore(zarr.open_group(str(path), mode="r+", use_consolidated=False)).flush()

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> FeatureStore:
        """Open an existing store (``mode`` "r" or "r+")."""
        if not Path(path).exists():
            raise SourceError(f"no feature store at {path}; run `xlive process RUN --out {path}`")
        if not (Path(path) / "zarr.json").is_file():  # a file, or a folder of something else
            raise SourceError(
                f"{path} exists and is not an xlive feature store (no zarr.json in it); "
                "give another --out"
            )
        return cls(zarr.open_group(str(path), mode=mode))

    @classmethod
    def open_or_create(
        cls, path: str | Path, *, specs, coords: dict, attrs: dict | None = None
    ) -> FeatureStore:
        """Resume an existing store (checking it holds the same features) or create one."""
        path = Path(path)
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):  # mkdir'ed: new
            store = cls.open(path, mode="r+")
            want = sorted(s.name for s in specs)
            have = sorted(store.specs)
            if want != have:
                raise ConfigError(
                    f"{path} holds features {have}, but this run computes {want}; "
                    "use another --out or delete the old store"
                )
            src = (attrs or {}).get("source")
            if src and store.info.get("source") not in (None, src):
                raise ConfigError(
                    f"{path} holds features of {store.info.get('source')}, not {src}; "
                    "use another --out"
                )
            return store
        return cls.create(path, specs=specs, coords=coords, attrs=attrs)

    # ------------------------------------------------------------------ state
    @property
    def frames_seen(self) -> int:
        """Frames of the run seen so far (by this writer; for a reader: as last published)."""
        return self._seen

    def status(self) -> np.ndarray:
        n = self.frames_seen
        return self._array(STATUS)[:n] if n else np.zeros(0, np.uint8)

    def done(self) -> np.ndarray:
        s = self.status()
        return (s == DONE) | (s == BAD)

    def _names(self) -> list[str]:
        """Every array of the store."""
        return [*self.specs, FRAME, *META_FIELDS, STATUS, *self._coord_names]

    def _publish(self, n: int) -> None:
        """Rewrite the group's consolidated metadata, every frame array ``n`` rows long (one
        atomic write of the group's ``zarr.json``: readers see all new shapes or none).

        This is ``zarr.consolidate_metadata`` without listing the store again (this process
        holds every array's metadata), with the arrays' capacity (rows allocated ahead, see
        :meth:`_ensure`) cut to the ``n`` rows seen: one small file per call."""
        members = {}
        for name in self._names():
            meta = self._array(name).metadata
            if name not in self._coord_names:  # frame first: rows as seen, not as allocated
                meta = meta.update_shape((n, *meta.shape[1:]))
            members[name] = meta
        ag = self.group._async_group
        meta = dataclasses.replace(
            ag.metadata, consolidated_metadata=ConsolidatedMetadata(metadata=members)
        )
        ag = dataclasses.replace(ag, metadata=meta)
        zarr.core.sync.sync(ag._save_metadata())
        self.group = zarr.Group(ag)

    def flush(self, *, exact: bool = False) -> None:
        """Publish the rows seen and the count done to readers now (the writer does it at most
        every :data:`PUBLISH_INTERVAL` seconds as the run grows). ``exact``: also cut every
        array's own shape to the rows seen (at the end of a run: then readers that ignore
        the consolidated metadata read the same rows)."""
        n = self._seen
        if exact and self._capacity() != n:
            self._resize_all(n)
        done = self._done_count()
        self.group.metadata.attributes.update({"frames_seen": n, "frames_done": done})
        self._publish(n)
        self._published, self._published_at = (n, done), time.monotonic()

    def flush_if_due(self) -> None:
        """Publish if something changed and the last publication is
        :data:`PUBLISH_INTERVAL` seconds old (the live loop calls it every poll)."""
        if time.monotonic() - self._published_at >= PUBLISH_INTERVAL and self._published != (
            self._seen,
            self._done_count(),
        ):
            self.flush()

    def _capacity(self) -> int:
        return self._array(STATUS).shape[0]

    def _resize_all(self, rows: int) -> None:
        names = [*self.specs, FRAME, *META_FIELDS, STATUS]
        shapes = [(rows, *self.specs[n]["shape"]) if n in self.specs else (rows,) for n in names]
        resize_many([self._array(n) for n in names], shapes)  # one pass of zarr's event loop

    def _ensure(self, n: int) -> None:
        """Allocate at least ``n`` rows (in whole chunks, growing by up to 8 chunks at a
        time, so arrays are resized once per 1024 frames of a long run) and label the new
        rows in ``frame``."""
        cur = self._capacity()
        if n <= cur:
            return
        # a resize rewrites every array's metadata (~35 ms for the default features): grow
        # by as much again as there is (up to 8 chunks) so a long run resizes rarely
        cap = -(-max(n, cur + min(cur, 8 * CHUNK)) // CHUNK) * CHUNK
        self._resize_all(cap)
        self._array(FRAME)[cur:cap] = np.arange(cur, cap, dtype=np.int64)

    def see(self, n: int) -> None:
        """Record that the run has ``n`` frames (pending until computed). Readers see them
        at the next publication (at most :data:`PUBLISH_INTERVAL` s later, or :meth:`flush`)."""
        if n > self._seen:
            self._ensure(n)
            self._seen = int(n)
        self.flush_if_due()

    # ------------------------------------------------------------------ writing
    def write(
        self, block, meta: dict[str, np.ndarray] | None = None, skipped: np.ndarray | None = None
    ) -> int:
        """Store a :class:`~xlive.engine.block.Block` (from ``analyze_block``); status last.
        ``skipped``: more frames to mark skipped (:meth:`mark_skipped`) in the same status
        write (sampled frames and the frames skipped between them: one span, no read-back)."""
        idx = block.frames
        if idx.size == 0:
            if skipped is not None and len(skipped):
                self.mark_skipped(skipped)
            return 0
        self.see(int(idx.max()) + 1)
        sel = _selection(idx)
        writes = [(name, block.features[name]) for name in self.specs]
        writes += [
            (name, _stored(name, v)) for name, v in (meta or {}).items() if name in META_FIELDS
        ]
        self._put_all(writes, sel)
        # status last: a frame counts as done only once all its features are on disk
        status = np.where(block.bad, BAD, DONE).astype(np.uint8)
        skip = np.setdiff1d(np.asarray(skipped if skipped is not None else [], np.int64), idx)
        if skip.size:
            self.see(int(skip.max()) + 1)
            both = np.concatenate([idx, skip])
            order = np.argsort(both, kind="stable")
            status = np.concatenate([status, np.full(skip.size, SKIPPED, np.uint8)])[order]
            idx_all = both[order]
            self._put_all([(STATUS, status)], _selection(idx_all))
        else:
            self._put_all([(STATUS, status)], sel)
        mask = self._mask()
        mask[idx] = True
        self.flush_if_due()
        return idx.size

    def _mask(self) -> np.ndarray:
        """Frames done or bad (kept in memory by the writer), as long as the frames seen."""
        if self._done_mask is None:
            self._done_mask = self.done()
        if self._done_mask.size < self._seen:
            self._done_mask = np.concatenate(
                [self._done_mask, np.zeros(self._seen - self._done_mask.size, bool)]
            )
        return self._done_mask

    def _done_count(self) -> int:
        return int(self._mask().sum())

    def _writer(self, name: str) -> ChunkWriter | None:
        if name not in self._writers:
            arr = self._array(name)
            self._writers[name] = ChunkWriter(arr) if direct_layout(arr) else None
        return self._writers[name]

    def _put_all(self, writes, sel) -> None:
        """Write several arrays (``sel``: a slice, or sorted frame indices). Arrays laid out
        as this store creates them are written straight to their chunk files
        (:mod:`xlive.sources._chunk_write`: ~2.3x less CPU than through zarr,
        bench/store_write.py); others with zarr's own asynchronous API, all in one
        pass of its event loop: through the synchronous API each array's write is a round
        trip to that loop and its thread pool, ~2 ms of CPU each. Sampled frames (indices
        with gaps) are merged into the rows they span, read first: this process is the
        store's only writer."""
        if isinstance(sel, slice):
            span, rows = sel, None
        else:
            idx = np.asarray(sel, dtype=np.int64)
            lo, hi = int(idx.min()), int(idx.max()) + 1
            span, rows = slice(lo, hi), idx - lo
        rest = []
        for name, values in writes:
            writer = self._writer(name)
            if writer is None:
                rest.append((name, values))
            else:
                writer.write(span, values, rows)
        if not rest:
            return
        if rows is not None and span.stop - span.start > 4 * rows.size + 256:  # far apart
            for name, values in rest:
                self._array(name).set_orthogonal_selection((span.start + rows,), values)
            return
        set_many([self._array(n) for n, _ in rest], span, [v for _, v in rest], rows)

    def mark_skipped(self, indices: np.ndarray) -> None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size:
            self.see(int(idx.max()) + 1)
            self._put_all([(STATUS, np.full(idx.size, SKIPPED, np.uint8))], idx)
            self.flush_if_due()

    def set_flag_timeline(self, episodes: list[dict], thresholds: dict | None = None) -> None:
        """Record the flags raised along the run (see :mod:`xlive.aggregate.timeline`); kept
        as JSON text, so the Dataset's attributes stay netCDF-friendly."""
        new = {"flag_timeline": json.dumps(list(episodes))}
        if thresholds is not None:
            new["flag_thresholds"] = json.dumps(dict(thresholds))
        self.group.attrs.update(new)

    def flag_timeline(self) -> list[dict] | None:
        """The recorded flag episodes (None when the store has none recorded)."""
        value = self.group.attrs.get("flag_timeline")
        if isinstance(value, str):
            value = json.loads(value)
        return None if value is None else list(value)

    def set_faults(self, faults: dict) -> None:
        """Record the run's faults (:mod:`xlive.aggregate.faults`), as JSON text."""
        self.group.attrs["faults"] = json.dumps(dict(faults))

    def faults(self) -> dict:
        """The recorded faults (empty when none are recorded)."""
        return dict(_from_json(self.group.attrs.get("faults")) or {})

    def frames_done_count(self) -> int:
        return int(np.count_nonzero(self.done()))

    # ------------------------------------------------------------------ reading
    def to_dataset(self, *, computed_only: bool = True) -> xr.Dataset:
        """The store as a lazy ``xarray.Dataset`` (see :func:`open_features`)."""
        import xarray as xr  # xarray (and pandas): only to read, serve starts without

        from . import accessor  # noqa: F401  (registers Dataset.xlive)

        if self.info.get("version", 1) < 2:
            return self._legacy_dataset(computed_only)
        ds = xr.open_zarr(self.group.store, consolidated=True, zarr_format=3)
        if computed_only:
            ds = ds.isel({FRAME: np.flatnonzero(ds[STATUS].values == DONE)})
        return ds

    def _legacy_dataset(self, computed_only: bool) -> xr.Dataset:
        """A version-1 store (frames rounded up to chunks, float timestamps)."""
        import xarray as xr  # xarray (and pandas): only to read, serve starts without

        from . import accessor  # noqa: F401  (registers Dataset.xlive)
        from .cf import to_datetime64

        n = self.frames_seen
        ds = xr.open_zarr(self.group.store, consolidated=False, decode_cf=False, zarr_format=3)
        ds = ds[[*self.specs, *META_FIELDS, STATUS, *self._coord_names]]
        ds = ds.set_coords([*META_FIELDS, STATUS, *self._coord_names])
        ds = ds.isel({FRAME: slice(0, n)}).assign_coords({FRAME: np.arange(n)})
        ds = ds.assign_coords({TIMESTAMP: (FRAME, to_datetime64(ds[TIMESTAMP].values))})
        ds.attrs = {k: _json_attr(v) for k, v in self.info.items() if k not in ("specs", "coords")}
        for key in ("flag_timeline", "flag_thresholds"):
            if key in self.group.attrs:
                ds.attrs[key] = _json_attr(self.group.attrs[key])
        if computed_only:
            ds = ds.isel({FRAME: np.flatnonzero(ds[STATUS].values == DONE)})
        return ds


def _selection(idx: np.ndarray) -> slice | np.ndarray:
    """Sorted frame indices as a slice when they are contiguous."""
    if idx.size and bool(np.all(np.diff(idx) == 1)):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def remove_stale_partials(path: Path) -> None:
    """Delete half-made stores (``.NAME.partial-PID``) beside ``path`` whose process is gone."""
    for p in path.parent.glob(f".{path.name}.partial-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid():
            continue
        shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_features(path: str | Path, *, computed_only: bool = True) -> xr.Dataset:
    """Open a feature store as a lazy ``xarray.Dataset``.

    Parameters
    ----------
    path
        The feature store (a Zarr v3 group written by ``xlive process`` or the live loop).
    computed_only
        True (default): only the frames whose features are computed (``status`` 1, done).
        False: every frame the run has shown so far, ``status`` telling each one: 1 done,
        2 bad frame, 3 skipped by sampling, 0 pending (not yet written: fill values).

    Returns
    -------
    xarray.Dataset
        The layout of :func:`xlive.analyze`: one variable per feature, coordinates ``frame``,
        per-frame metadata (``timestamp`` as ``datetime64[ns]``), ``status`` and the
        analyzers' coordinates, CF ``long_name``/``units`` throughout. With
        ``computed_only=False`` it is the Dataset ``xarray.open_zarr(path)`` reads (the
        store is laid out as xarray writes Zarr); ``open_features(path)`` equals
        ``xarray.open_zarr(path).xlive.done()``.

    Examples
    --------
    >>> ds = xlive.open_features("features.zarr")          # doctest: +SKIP
    >>> ds.n_spots.plot()                                    # doctest: +SKIP
    """
    return FeatureStore.open(path).to_dataset(computed_only=computed_only)
