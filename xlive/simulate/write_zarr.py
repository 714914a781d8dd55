"""Write a growing run into a Zarr v3 store, safe for readers polling it.

Protocol (see ``../shared/formats.md``, Zarr v3): arrays are pre-sized in blocks, frame chunks
``(1, H, W)`` are written (every chunk, even all-fill ones), and only then the group attribute
``frames_complete`` is raised. Readers trust that counter, never ``shape``.

Speed: frame chunks are Blosc-encoded here (2 threads, one frame each) and stored through the
store API, so the encoded bytes of a reused background frame are computed once. The bytes are
exactly what zarr's ``BytesCodec`` + ``BloscCodec`` pipeline writes; a test reads them back with
plain zarr.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..conventions import FRAME_NUMBER, FRAMES_COMPLETE, LASER_ON, PULSE_ENERGY, TIMESTAMP
from ..geometry.core import Geometry

META_DTYPES = {
    TIMESTAMP: "float64",
    LASER_ON: "bool",
    PULSE_ENERGY: "float32",
    FRAME_NUMBER: "int64",
}
BLOCK = 256
CACHE_MAX = 64


class ZarrRunWriter:
    """Append frames and per-frame metadata; ``frames_complete`` is written after the data."""

    def __init__(
        self,
        path: str | Path,
        *,
        geometry: Geometry,
        pixel_mask: np.ndarray,
        dtype: str,
        detector: str = "",
        fill_value=0,
    ):
        self.path = Path(path)
        ny, nx = geometry.shape
        self.group = zarr.open_group(str(self.path), mode="w-")
        self.group.attrs.update(
            {
                FRAMES_COMPLETE: 0,
                "xlive": {"geometry": geometry.to_dict(), "detector": detector},
            }
        )
        self.frames = self.group.create_array(
            "frames",
            shape=(BLOCK, ny, nx),
            chunks=(1, ny, nx),
            dtype=dtype,
            compressors=[BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")],
            fill_value=fill_value,
            config={"write_empty_chunks": True},
            dimension_names=("frame", "y", "x"),
        )
        self.meta = {
            name: self.group.create_array(
                name,
                shape=(BLOCK,),
                chunks=(4096,),
                dtype=dt,
                fill_value=0,
                dimension_names=("frame",),
            )
            for name, dt in META_DTYPES.items()
        }
        mask = self.group.create_array(
            "mask",
            shape=(ny, nx),
            chunks=(ny, nx),
            dtype="uint32",
            fill_value=0,
            dimension_names=("y", "x"),
        )
        mask[...] = pixel_mask.astype(np.uint32)
        self.n = 0
        self._codec = numcodecs.Blosc(
            cname="lz4", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE, blocksize=0
        )
        numcodecs.blosc.set_nthreads(1)  # parallel across frames instead
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="xlive-zarr")
        self._cache: dict = {}
        self._store = self.group.store
        self._prefix = (self.frames.path + "/c/") if self.frames.path else "c/"

    def _put_frame(self, index: int, frame: np.ndarray, key) -> None:
        data = self._cache.get(key) if key is not None else None
        if data is None:
            data = self._codec.encode(np.ascontiguousarray(frame, dtype=self.frames.dtype))
            if key is not None and len(self._cache) < CACHE_MAX:
                self._cache[key] = data
        buf = default_buffer_prototype().buffer.from_bytes(data)
        sync(self._store.set(f"{self._prefix}{index}/0/0", buf))

    def append(self, frames, meta: dict[str, np.ndarray], keys=None) -> int:
        """Write a batch of frames, then publish the new count. Returns frames complete.

        ``frames`` is a sequence of 2-D arrays; ``keys`` optionally names frames whose content
        repeats (their encoded bytes are reused).
        """
        k = len(frames)
        if k == 0:
            return self.n
        end = self.n + k
        if end > self.frames.shape[0]:
            cap = (end // BLOCK + 1) * BLOCK
            self.frames.resize((cap, *self.frames.shape[1:]))
            for a in self.meta.values():
                a.resize((cap,))
        keys = keys if keys is not None else [None] * k
        list(self._pool.map(self._put_frame, range(self.n, end), frames, keys))
        for name, a in self.meta.items():
            a[self.n : end] = np.asarray(meta[name], dtype=a.dtype)
        self.n = end
        self.group.attrs[FRAMES_COMPLETE] = self.n
        return self.n

    def close(self) -> None:
        """Trim the pre-sized arrays to the frames written."""
        self._pool.shutdown()
        self.frames.resize((self.n, *self.frames.shape[1:]))
        for a in self.meta.values():
            a.resize((self.n,))
        self.group.attrs[FRAMES_COMPLETE] = self.n
