"""Rows of local Zarr v3 arrays written straight to their chunk files, when that is safe.

Through zarr, a write of a few rows into each of the feature store's ~30 arrays costs tens of
ms of CPU whatever its size: per array and chunk, zarr reads the chunk back, decodes, merges,
encodes and writes it, each step a hop between its event loop and its thread pool
(bench/store_write.py: 51 against 22 ms for 50 frames). :class:`ChunkWriter` does the steps
itself, in the calling thread, with the codec zarr uses (``numcodecs.Zstd``) and the same
atomic write (a temporary file renamed over the chunk). It applies only to the layout the
feature store and the stream spool create (:func:`direct_layout`): a ``LocalStore`` array,
regular chunks along the first axis that span the other axes whole, codecs exactly
``bytes`` (little-endian) then ``zstd``. Any other array goes through zarr. zarr reads the
chunks back as its own (a chunk holding only fill values is written rather than deleted: it
reads the same). zarr-python has no public API for this; written by hand for that reason.

Only one process may write the arrays (the feature store's writer: the live loop's driver;
the spool's: its receiver).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import numpy as np
import zarr
from numcodecs.zstd import Zstd
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.storage import LocalStore


def direct_layout(array: zarr.Array) -> bool:
    """Whether :class:`ChunkWriter` may write ``array`` (see the module docstring)."""
    md = array.metadata
    if getattr(md, "zarr_format", None) != 3 or not isinstance(array.store, LocalStore):
        return False
    if sys.byteorder != "little" or not array.ndim:
        return False
    if tuple(array.chunks[1:]) != tuple(array.shape[1:]):
        return False
    codecs = tuple(md.codecs)
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec):
        return False
    if not isinstance(codecs[1], ZstdCodec):
        return False
    endian = codecs[0].endian
    return np.dtype(array.dtype).itemsize == 1 or (endian is not None and endian.value == "little")


class ChunkWriter:
    """Writes rows of one array whose layout passed :func:`direct_layout`."""

    def __init__(self, array: zarr.Array):
        md = array.metadata
        self.root = Path(str(array.store.root)) / array.path
        self.metadata = md
        self.dtype = np.dtype(array.dtype)
        self.chunk_shape = tuple(int(c) for c in array.chunks)
        zstd = md.codecs[1]
        self.codec = Zstd(level=zstd.level, checksum=zstd.checksum)
        self.fill = md.fill_value
        #: the chunk written last: (its index, its file's (inode, size, mtime) after the
        #: write, its rows). The next write into it starts from these rows instead of
        #: reading and decoding the file again, while the file is still the one written
        self._last: tuple[int, tuple[int, int, int], np.ndarray] | None = None

    def _path(self, c: int) -> Path:
        key = self.metadata.encode_chunk_key((c,) + (0,) * (len(self.chunk_shape) - 1))
        return self.root / key

    def _read(self, path: Path, c: int) -> np.ndarray:
        last, self._last = self._last, None  # (changed in place next: kept again once written)
        if last is not None and last[0] == c:
            try:
                if _identity(path) == last[1]:
                    return last[2]
            except FileNotFoundError:
                pass
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return np.full(self.chunk_shape, self.fill, self.dtype)
        raw = self.codec.decode(data)
        return np.frombuffer(raw, self.dtype).reshape(self.chunk_shape).copy()

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as on disk (chunks never written: fill values), without zarr:
        for a reader in another process (the writer replaces chunk files atomically)."""
        n = self.chunk_shape[0]
        parts = []
        for c in range(start // n, -(-stop // n)):
            lo, hi = max(start - c * n, 0), min(stop - c * n, n)
            try:
                data = self._path(c).read_bytes()
            except FileNotFoundError:
                parts.append(np.full((hi - lo, *self.chunk_shape[1:]), self.fill, self.dtype))
                continue
            chunk = np.frombuffer(self.codec.decode(data), self.dtype).reshape(self.chunk_shape)
            parts.append(chunk[lo:hi])
        if not parts:
            return np.zeros((0, *self.chunk_shape[1:]), self.dtype)
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def write(self, span: slice, values: np.ndarray, rows: np.ndarray | None = None) -> None:
        """``array[span] = values``; with ``rows`` (sorted positions inside ``span``) only
        those rows are set (``values`` holds one row per position)."""
        n = self.chunk_shape[0]
        values = np.asarray(values, self.dtype)
        if rows is None:
            rows = np.arange(span.stop - span.start)
        frames = span.start + np.asarray(rows, np.int64)
        chunk_of = frames // n
        for c in np.unique(chunk_of).tolist():
            sel = chunk_of == c
            local = frames[sel] - c * n
            path = self._path(c)
            if local.size == n:  # the whole chunk: nothing to read back
                self._last = None
                chunk = np.empty(self.chunk_shape, self.dtype)
            else:
                chunk = self._read(path, c)
            chunk[local] = values[sel]
            self._last = (c, _atomic_write(path, self.codec.encode(chunk)), chunk)


def _identity(path: Path) -> tuple[int, int, int]:
    """A file's inode, size and modification time: another write (in place, or a file
    renamed over it) changes them."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _write_file(path: Path, data) -> tuple[int, int, int]:
    """Write ``data`` to a new file ``path``; its :func:`_identity` once written."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        st = os.fstat(f.fileno())
    return st.st_ino, st.st_size, st.st_mtime_ns


def update_attrs(group: zarr.Group, attrs: dict) -> None:
    """``group.attrs.update(attrs)``, the group's ``zarr.json`` written directly (atomically,
    as zarr writes it) for a zarr v3 group in a ``LocalStore``: through zarr, a publication
    of the stream spool's counter cost ~4 ms of CPU, five times a second."""
    md = group.metadata
    if getattr(md, "zarr_format", None) != 3 or not isinstance(group.store, LocalStore):
        group.attrs.update(attrs)
        return
    from zarr.core.buffer import default_buffer_prototype

    md.attributes.update(attrs)  # zarr's own copy, as group.attrs.update keeps it
    doc = md.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()
    _atomic_write(Path(str(group.store.root)) / group.path / "zarr.json", doc)


def _atomic_write(path: Path, data) -> tuple[int, int, int]:
    """As zarr's LocalStore writes: a temporary file beside, renamed over the chunk. Returns
    the file's :func:`_identity`, taken before the rename (a rename keeps it; taken after, it
    could be that of another writer's file renamed over it in between)."""
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.partial")
    try:
        try:
            ident = _write_file(tmp, data)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            ident = _write_file(tmp, data)
        os.replace(tmp, path)
        return ident
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
