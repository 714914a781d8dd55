"""A growing Zarr v3 store: ``frames`` (N, H, W) plus optional per-frame 1-D arrays.

Readers trust the group attribute ``frames_complete`` (written *after* the frames' data) and
never the array shape, which writers pre-size in blocks; without the attribute, the shape of
``frames`` counts. The store is reopened on every poll because an open ``zarr.Array`` keeps a
stale shape (see formats.md, Zarr v3).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import zarr

from ..conventions import (
    FRAME_NUMBER,
    FRAMES_COMPLETE,
    LASER_ON,
    PULSE_ENERGY,
    PULSE_ID,
    TIMESTAMP,
    TRAIN_ID,
)
from ..errors import BadFrameError, SourceError
from ..geometry.core import Geometry
from . import _bslz4  # noqa: F401  (registers the spool codec)
from ._zarr_direct import DirectChunks
from .base import FrameReader, Source

META_NAMES = (TIMESTAMP, LASER_ON, PULSE_ENERGY, FRAME_NUMBER, TRAIN_ID, PULSE_ID)
#: seconds to wait for the frames array of a group that has no member yet (being created)
CREATE_WAIT = 10.0


class ZarrFrameReader(FrameReader):
    """Reads ``frames`` of a Zarr group, reopening the array when it has grown."""

    def __init__(self, path: str, array: str, *, check_chunks: bool = False, **kw):
        super().__init__(**kw)
        self.path, self.array = path, array
        #: frames below the run's count must have chunk files (zarr reads a missing chunk as
        #: fill values: a lost frame would pass for an empty one)
        self.check_chunks = check_chunks
        self._arr = None
        self._direct: DirectChunks | None = None
        self._chunk_root: Path | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arr": None, "_direct": None}

    def _get(self, stop: int) -> zarr.Array:
        if self._arr is None or self._arr.shape[0] < stop:
            self._arr = zarr.open_array(f"{self.path}/{self.array}", mode="r")
            self._direct = DirectChunks.for_array(self._arr)
            self._chunk_root = _local_chunk_root(self._arr) if self.check_chunks else None
        return self._arr

    def _missing_chunk(self, index: int) -> str | None:
        """The chunk file of frame ``index`` when it does not exist (None: it does, or the
        store is not a plain local one and cannot be checked)."""
        if self._chunk_root is None:
            return None
        arr = self._arr
        coords = (index // arr.chunks[0], 0, 0)
        key = arr.metadata.encode_chunk_key(coords)
        path = self._chunk_root / key
        return None if path.exists() else str(path)

    def _read(self, index: int) -> np.ndarray:
        arr = self._get(index + 1)
        missing = self._missing_chunk(index)
        if missing:
            raise BadFrameError(
                f"frame {index} is missing: its chunk {missing} does not exist "
                "although the run has moved past it"
            )
        frame = self._direct.read(index) if self._direct is not None else None
        return arr[index] if frame is None else frame

    def read_block(self, start: int, stop: int) -> np.ndarray:
        try:
            block = np.asarray(self._get(stop)[start:stop])
        except Exception:  # a corrupt chunk: find it frame by frame
            return super().read_block(start, stop)
        for k in range(len(block)):  # missing and all-masked frames are bad too
            if self._missing_chunk(start + k):
                block[k] = np.nan if self.dtype.kind == "f" else 0
                self.bad.add(start + k)
            elif self._all_masked(block[k]):
                try:
                    self.read_one(start + k)
                except BadFrameError:
                    block[k] = np.nan if self.dtype.kind == "f" else 0
                    self.bad.add(start + k)
        return block


def _local_chunk_root(arr: zarr.Array) -> Path | None:
    """Folder of a local, unsharded array whose chunks hold whole frames (None otherwise)."""
    from zarr.codecs import ShardingCodec
    from zarr.storage import LocalStore

    md = arr.metadata
    if getattr(md, "zarr_format", None) != 3 or not isinstance(arr.store, LocalStore):
        return None
    if arr.ndim != 3 or tuple(arr.chunks[1:]) != tuple(arr.shape[1:]):
        return None
    if any(isinstance(c, ShardingCodec) for c in md.codecs):
        return None
    return Path(str(arr.store.root)) / arr.path


class ZarrSource(Source):
    """Frames from a (growing) Zarr v3 group.

    Parameters
    ----------
    path
        The ``.zarr`` group (or a group inside a store).
    array
        Name of the frames array.
    **options
        See :class:`~xlive.sources.base.Source`.
    """

    name = "zarr"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        """A ``.zarr`` path, or a folder holding a Zarr v3 group."""
        t = str(target).rstrip("/")
        return t.endswith(".zarr") or (
            os.path.isdir(t) and os.path.exists(os.path.join(t, "zarr.json"))
        )

    def __init__(self, path: str | Path, *, array: str = "frames", **options):
        super().__init__(**options)
        self.path = str(path)
        self.array = array
        self._meta_cache: tuple[int, dict] = (-1, {})
        self._has_count = False
        group = self._open_group()
        # a group with no member yet is a run being created: give its writer a moment
        deadline = time.monotonic() + CREATE_WAIT
        while array not in group and not list(group.keys()) and time.monotonic() < deadline:
            time.sleep(0.05)
            group = self._open_group()
        if array not in group:
            raise SourceError(
                f"Zarr group {self.path} has no array {array!r} (it has {sorted(group.keys())}); "
                "pass array=NAME to open_source"
            )
        frames = group[array]
        if frames.ndim != 3:
            raise SourceError(
                f"{self.path}/{array} has shape {frames.shape}; expected (frame, y, x)"
            )
        self._shape = tuple(frames.shape[1:])
        self._dtype = frames.dtype
        self.refresh()

    def _open_group(self) -> zarr.Group:
        try:
            return zarr.open_group(self.path, mode="r")
        except Exception as exc:
            raise SourceError(f"cannot open Zarr group {self.path}: {exc}") from exc

    def _count(self) -> int:
        try:
            group = zarr.open_group(self.path, mode="r")
            attrs = dict(group.attrs)
            if FRAMES_COMPLETE in attrs:
                self._has_count = True  # written by a writer that counts (simulator, spool)
                return int(attrs[FRAMES_COMPLETE])
            return int(group[self.array].shape[0])
        except Exception:  # a metadata file being replaced: try again at the next poll
            return self._n

    def _make_reader(self) -> FrameReader:
        return ZarrFrameReader(
            self.path,
            self.array,
            shape=self._shape,
            dtype=self._dtype,
            check_chunks=self._has_count,
            masked_values=self._masked_for(self._dtype),
        )

    def _dtype_hint(self) -> np.dtype:
        return np.dtype(self._dtype)

    def _frame_shape_hint(self) -> tuple[int, int]:
        return self._shape

    def _header_geometry(self) -> Geometry | None:
        group = zarr.open_group(self.path, mode="r")
        info = dict(group.attrs).get("xlive", {})
        mask = None
        if "mask" in group:
            mask = (np.asarray(group["mask"][...]).astype(np.uint64) & 0xFFFF) != 0
        if "geometry" not in info:
            return None
        return Geometry.from_dict(info["geometry"], mask=mask)

    def _native_metadata(self, n: int) -> dict[str, np.ndarray]:
        if self._meta_cache[0] == n:
            return self._meta_cache[1]
        group = zarr.open_group(self.path, mode="r")
        out = {}
        for name in META_NAMES:
            if name in group and group[name].ndim == 1 and group[name].shape[0] >= n:
                out[name] = np.asarray(group[name][:n])
        self._meta_cache = (n, out)
        return out
