"""FeatureStore: computed per-frame features in an append-only Zarr v3 group, resumable.

Layout: one array per feature (``frame`` first, chunked along frame), per-frame metadata arrays,
coordinate arrays (``q``, ``d``...), and ``status`` (uint8 per frame: 0 pending, 1 done, 2 bad
frame, 3 skipped by sampling). A block's features are written first and its ``status`` after, so
a process killed at any moment (even ``kill -9``) leaves only frames whose features are fully
stored marked done; a restart computes exactly the frames not done. Zarr's local store writes
every chunk atomically (write then rename), so a chunk is never half-written.

Only one process writes a store at a time (the live loop's driver); readers may poll freely.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from ..conventions import FRAME
from ..errors import ConfigError, SourceError

PENDING, DONE, BAD, SKIPPED = 0, 1, 2, 3
CHUNK = 128
META_FIELDS = {
    "timestamp": "float64",
    "laser_on": "bool",
    "pulse_energy": "float32",
    "frame_number": "int64",
    "train_id": "uint64",
    "pulse_id": "uint64",
}


#: threads that write a block's arrays concurrently (zarr's own I/O is asynchronous: each
#: thread's write waits on zarr's event loop, so the writes of all arrays overlap)
_WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="xlive-store")


def _fill(dtype: str):
    k = np.dtype(dtype).kind
    return float("nan") if k == "f" else (False if k == "b" else 0)


class FeatureStore:
    """Open with :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, group: zarr.Group):
        self.group = group
        self.path = Path(str(group.store.root)) if hasattr(group.store, "root") else None
        info = group.attrs.get("xlive", {})
        if info.get("kind") != "features":
            raise SourceError(
                f"{self.path} is not an xlive feature store; give another --out "
                "(or delete it if it is left from a failed run)"
            )
        self.info = info
        self.specs = {s["name"]: s for s in info["specs"]}
        self._arrays: dict[str, zarr.Array] = {}
        self._done_mask: np.ndarray | None = None

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
        g = zarr.open_group(str(path), mode="w-")
        spec_dicts = []
        for s in specs:
            rest = tuple(int(s.sizes[d]) for d in s.dims[1:])
            d = s.to_dict()
            attributes = {"units": s.units, "description": s.description}
            if d["show"] is not None or d["flags"]:  # how views and reports show it
                attributes.update(show=d["show"], flags=d["flags"])
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
        for name, dt in META_FIELDS.items():
            g.create_array(
                name,
                shape=(0,),
                chunks=(chunk,),
                dtype=dt,
                fill_value=_fill(dt),
                dimension_names=(FRAME,),
            )
        g.create_array(
            "status",
            shape=(0,),
            chunks=(chunk,),
            dtype="uint8",
            fill_value=0,
            dimension_names=(FRAME,),
        )
        for name, var in coords.items():
            values = np.asarray(var.values)
            a = g.create_array(
                name,
                shape=values.shape,
                dtype=values.dtype,
                dimension_names=tuple(var.dims),
                attributes=dict(var.attrs),
            )
            a[...] = values
        g.attrs.update(
            {
                "xlive": {
                    "kind": "features",
                    "version": 1,
                    "specs": spec_dicts,
                    "coords": list(coords),
                    **(attrs or {}),
                },
                "frames_seen": 0,
                "frames_done": 0,
            }
        )

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> FeatureStore:
        """Open an existing store (``mode`` "r" or "r+")."""
        if not Path(path).exists():
            raise SourceError(f"no feature store at {path}; run `xlive process RUN --out {path}`")
        return cls(zarr.open_group(str(path), mode=mode))

    @classmethod
    def open_or_create(
        cls, path: str | Path, *, specs, coords: dict, attrs: dict | None = None
    ) -> FeatureStore:
        """Resume an existing store (checking it holds the same features) or create one."""
        if Path(path).exists():
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
        return int(self.group.attrs.get("frames_seen", 0))

    def status(self) -> np.ndarray:
        n = self.frames_seen
        return self.group["status"][:n] if n else np.zeros(0, np.uint8)

    def done(self) -> np.ndarray:
        s = self.status()
        return (s == DONE) | (s == BAD)

    def _ensure(self, n: int) -> None:
        cur = self._array("status").shape[0]
        if n <= cur:
            return
        cap = -(-n // CHUNK) * CHUNK
        for name, s in self.specs.items():
            self._array(name).resize((cap, *s["shape"]))
        for name in (*META_FIELDS, "status"):
            self._array(name).resize((cap,))

    def see(self, n: int) -> None:
        """Record that the run has ``n`` frames (pending until computed)."""
        if n > self.frames_seen:
            self._ensure(n)
            self.group.attrs["frames_seen"] = n

    # ------------------------------------------------------------------ writing
    def write(self, block, meta: dict[str, np.ndarray] | None = None) -> int:
        """Store a :class:`~xlive.engine.block.Block` (from ``analyze_block``); status last."""
        idx = block.frames
        if idx.size == 0:
            return 0
        self.see(int(idx.max()) + 1)
        contiguous = bool(np.all(np.diff(idx) == 1))
        sel = slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx
        writes = [(name, block.features[name]) for name in self.specs]
        writes += [
            (name, np.asarray(v, dtype=META_FIELDS[name]))
            for name, v in (meta or {}).items()
            if name in META_FIELDS
        ]
        self._put_all(writes, sel, contiguous)
        # status last: a frame counts as done only once all its features are on disk
        self._put_all(
            [("status", np.where(block.bad, BAD, DONE).astype(np.uint8))], sel, contiguous
        )
        if self._done_mask is None:
            self._done_mask = self.done()
        if self._done_mask.size < self.frames_seen:
            self._done_mask = np.concatenate(
                [self._done_mask, np.zeros(self.frames_seen - self._done_mask.size, bool)]
            )
        self._done_mask[idx] = True
        self.group.attrs["frames_done"] = int(self._done_mask.sum())
        return idx.size

    def _put_all(self, writes, sel, contiguous: bool) -> None:
        """Write several arrays; contiguous frames concurrently (zarr's public API only)."""
        if not contiguous:  # sampled or filled-in frames: orthogonal selections, one by one
            for name, values in writes:
                self._array(name).set_orthogonal_selection((sel,), values)
            return
        arrays = [self._array(name) for name, _ in writes]  # handles made in this thread

        def put(k: int) -> None:
            arrays[k][sel] = writes[k][1]

        list(_WRITERS.map(put, range(len(writes))))

    def mark_skipped(self, indices: np.ndarray) -> None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size:
            self.see(int(idx.max()) + 1)
            self._array("status").set_orthogonal_selection(
                (idx,), np.full(idx.size, SKIPPED, np.uint8)
            )

    def set_flag_timeline(self, episodes: list[dict], thresholds: dict | None = None) -> None:
        """Record the flags raised along the run (see :mod:`xlive.aggregate.timeline`)."""
        self.group.attrs["flag_timeline"] = list(episodes)
        if thresholds is not None:
            self.group.attrs["flag_thresholds"] = dict(thresholds)

    def flag_timeline(self) -> list[dict] | None:
        """The recorded flag episodes (None when the store has none recorded)."""
        value = self.group.attrs.get("flag_timeline")
        return None if value is None else list(value)

    def frames_done_count(self) -> int:
        return int(np.count_nonzero(self.done()))

    # ------------------------------------------------------------------ reading
    def to_dataset(self, *, computed_only: bool = True) -> xr.Dataset:
        """The store as a lazy ``xarray.Dataset`` (dask arrays through ``xarray.open_zarr``;
        only ``status`` is read now, to select the computed frames)."""
        n = self.frames_seen
        # values are stored as computed: no CF decoding (fill values are real values here)
        ds = xr.open_zarr(self.group.store, consolidated=False, decode_cf=False, zarr_format=3)
        ds = ds[[*self.specs, *META_FIELDS, "status", *self.info.get("coords", [])]]
        ds = ds.set_coords([*META_FIELDS, "status", *self.info.get("coords", [])])
        ds = ds.isel({FRAME: slice(0, n)}).assign_coords({FRAME: np.arange(n)})
        ds.attrs = {
            k: json.dumps(v) if isinstance(v, (dict, list)) else v
            for k, v in self.info.items()
            if k not in ("specs", "coords")
        }
        for key in ("flag_timeline", "flag_thresholds"):
            if key in self.group.attrs:
                ds.attrs[key] = json.dumps(self.group.attrs[key])
        if computed_only:
            ds = ds.isel({FRAME: np.flatnonzero(ds["status"].values == DONE)})
        return ds


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
    """Open a feature store as a lazy ``xarray.Dataset`` (only computed frames by default).

    ``status`` tells for each frame: 1 done, 2 bad frame, 3 skipped by sampling, 0 pending.
    """
    return FeatureStore.open(path).to_dataset(computed_only=computed_only)
