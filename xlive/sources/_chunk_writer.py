"""Rows of frame arrays written straight into their Zarr chunk files, by their only writer.

The live loop writes a block of frames into every feature array twice a second. Through
zarr's ``Array.__setitem__`` each such write reads the chunk back, decodes it, merges the
rows, encodes it and writes it, going through zarr's event loop and thread pool: about 52 ms
of CPU per write of the default features (~28 arrays), 1 ms per frame at 100 Hz
(``bench/live_lag.py``). The store's only writer already knows what its chunks hold, so
:class:`ChunkWriter` keeps the chunks being filled in memory and writes each one as zarr
itself would: the array's ``bytes`` codec (little-endian or single-byte), then its ``zstd``
codec through numcodecs (zarr's own zstd implementation), written to a temporary file then
renamed over the chunk (as zarr's ``LocalStore`` does). It applies only to that layout (a
``LocalStore`` Zarr v3 array, chunks spanning every dimension but the first, codecs
``bytes`` [+ ``zstd``]); any other array is written through zarr. Reading is left to zarr.
The stream receiver writes the spool's frame numbers and times the same way.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.storage import LocalStore

#: chunks kept in memory per array (the live loop fills the newest one or two)
KEEP = 4


class ChunkWriter:
    """Writes rows of ``array`` (see the module docstring); use :meth:`for_array`."""

    def __init__(self, array: zarr.Array, codec: Zstd | None):
        self.array = array
        self.root = Path(str(array.store.root)) / array.path
        self.rows = int(array.chunks[0])
        self.rest = tuple(int(s) for s in array.shape[1:])
        self.dtype = np.dtype(array.dtype).newbyteorder("<")
        self.fill = array.metadata.fill_value
        self.codec = codec
        self._chunks: dict[int, np.ndarray] = {}
        self._dirs: set[Path] = set()

    @classmethod
    def for_array(cls, array: zarr.Array) -> ChunkWriter | None:
        """A writer, or None when ``array`` needs zarr's general write path."""
        md = array.metadata
        if getattr(md, "zarr_format", None) != 3 or not isinstance(array.store, LocalStore):
            return None
        if array.ndim < 1 or tuple(array.chunks[1:]) != tuple(array.shape[1:]):
            return None
        codecs = tuple(md.codecs)
        if not codecs or not isinstance(codecs[0], BytesCodec) or len(codecs) > 2:
            return None
        endian = codecs[0].endian
        if np.dtype(array.dtype).itemsize > 1 and (endian is None or endian.value != "little"):
            return None
        if np.dtype(array.dtype).kind not in "biuf":
            return None
        if len(codecs) == 1:
            return cls(array, None)
        if not isinstance(codecs[1], ZstdCodec):
            return None
        return cls(array, Zstd(level=codecs[1].level, checksum=codecs[1].checksum))

    def forget(self) -> None:
        """Drop the chunks held (the array was resized or written by other means)."""
        self._chunks.clear()

    def write(self, rows: slice | np.ndarray, values) -> None:
        """Set ``array[rows] = values`` (rows: a slice with step 1 or sorted indices, all
        within the array's current shape)."""
        if isinstance(rows, slice):
            idx = np.arange(rows.start, rows.stop, dtype=np.int64)
        else:
            idx = np.asarray(rows, dtype=np.int64)
        if idx.size == 0:
            return
        values = np.broadcast_to(np.asarray(values, dtype=self.dtype), (idx.size, *self.rest))
        which = idx // self.rows
        for ci in np.unique(which):
            take = which == ci
            chunk = self._chunk(int(ci))
            chunk[idx[take] - ci * self.rows] = values[take]
            self._store(int(ci), chunk)

    def _chunk(self, ci: int) -> np.ndarray:
        """Chunk ``ci`` as it is (read through zarr the first time it is touched)."""
        chunk = self._chunks.get(ci)
        if chunk is None:
            chunk = np.full((self.rows, *self.rest), self.fill, self.dtype)
            lo = ci * self.rows
            hi = min(lo + self.rows, int(self.array.shape[0]))
            if hi > lo:
                chunk[: hi - lo] = self.array[lo:hi]
            self._chunks[ci] = chunk
            for old in sorted(self._chunks)[:-KEEP]:
                del self._chunks[old]
        return chunk

    def _store(self, ci: int, chunk: np.ndarray) -> None:
        key = self.array.metadata.encode_chunk_key((ci, *(0,) * len(self.rest)))
        path = self.root / key
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        data = chunk.tobytes()
        if self.codec is not None:
            data = self.codec.encode(data)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            try:
                f = open(tmp, "wb")
            except FileNotFoundError:  # its folder was removed (a store cut to fewer rows)
                path.parent.mkdir(parents=True, exist_ok=True)
                f = open(tmp, "wb")
            with f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
