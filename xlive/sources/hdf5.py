"""Frames from one HDF5 dataset (N, H, W), possibly growing under SWMR.

Opens the file with ``swmr=True`` when it was written with ``libver='latest'`` and calls
``dataset.refresh()`` on every poll. An optional 1-element dataset ``frames_complete`` beside the
data (as :mod:`xlive.simulate.write_swmr` writes it, flushed after the frames) caps the count,
because a SWMR reader can see an extended shape before the new chunks are flushed.

Also the reader for Eiger data files (:mod:`xlive.sources.eiger`): a list of segments
``(file, dataset, first frame, count)`` read through h5py + hdf5plugin (bitshuffle-LZ4, LZ4);
single-frame bitshuffle-LZ4 chunks are read as stored and decoded by bitshuffle
(:func:`_one_frame_bslz4`).
"""

from __future__ import annotations

import bisect
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Eiger compression filters with HDF5)
import numpy as np

from ..errors import SourceError
from ..geometry.core import Geometry
from .base import FrameReader, Source

DATASET_PATHS = ("/entry/data/data", "/data", "/entry_1/data_1/data", "/data/data")
COUNTER = "frames_complete"


def _one_frame_bslz4(d: h5py.Dataset) -> bool:
    """Whether ``d``'s chunks are single frames filtered by bitshuffle-LZ4 (HDF5 filter 32008
    with LZ4, nothing else): as Eiger data files are. Such a chunk is then read as stored
    (``read_direct_chunk``) and decoded by :func:`~xlive.sources._bslz4.bslz4_decode`
    (DECTRIS's decoder; the frame is read-only): HDF5's filter (hdf5plugin 7.1, built with SSE2 only, plus
    HDF5's chunk machinery) took 14.5 ms of CPU per EIGER 4M uint32 frame against 8.8
    (``bench/eiger_h5_read.py``, load 9)."""
    if d.is_virtual or d.chunks is None or d.ndim != 3 or d.chunks != (1, *d.shape[1:]):
        return False
    if d.dtype.kind not in "uif" or d.dtype.byteorder not in "=|<":
        return False
    plist = d.id.get_create_plist()
    if plist.get_nfilters() != 1:
        return False
    code, _flags, values, _name = plist.get_filter(0)
    # cd_values: (major, minor, element size, block size, compression 2 = LZ4)
    return code == 32008 and len(values) >= 5 and values[4] == 2 and values[2] == d.dtype.itemsize


def open_h5(path: str | Path) -> h5py.File:
    """Open for reading, in SWMR mode when the file allows it."""
    try:
        return h5py.File(path, "r", libver="latest", swmr=True)
    except OSError:
        return h5py.File(path, "r")


class H5SegmentsReader(FrameReader):
    """Frames spread over HDF5 datasets: ``segments`` is a list of (file, dataset, start, n)."""

    def __init__(self, segments: list[tuple[str, str, int, int]], **kw):
        super().__init__(**kw)
        self.segments = segments
        self._files: dict[str, h5py.File] = {}
        #: (file, dataset) -> whether its chunks are decoded directly (_one_frame_bslz4)
        self._direct: dict[tuple[str, str], bool] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_direct", {})

    def _dataset(self, path: str, dset: str, need: int) -> h5py.Dataset:
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = open_h5(path)
        d = f[dset]
        if d.shape[0] < need and f.swmr_mode:
            d.refresh()
        return d

    def _locate(self, index: int) -> tuple[str, str, int]:
        k = bisect.bisect_right([s[2] for s in self.segments], index) - 1
        if k < 0:
            raise IndexError(index)
        path, dset, start, n = self.segments[k]
        if n >= 0 and index >= start + n:
            raise IndexError(f"frame {index} is in no data file (missing or unreadable file)")
        return path, dset, index - start

    def _read(self, index: int) -> np.ndarray:
        path, dset, local = self._locate(index)
        d = self._dataset(path, dset, local + 1)
        if self._is_direct(path, dset, d):
            # the chunk as stored, decoded by bitshuffle (see _one_frame_bslz4); a chunk not
            # written (fill values) or not filtered goes through HDF5
            try:
                mask, blob = d.id.read_direct_chunk((local, 0, 0))
            except (KeyError, OSError, RuntimeError, ValueError):  # not written: fill values
                mask, blob = 1, None
            if mask == 0 and local < d.shape[0]:
                from ._bslz4 import bslz4_decode  # imported when first needed (read-only frames)

                return bslz4_decode(blob, dtype=d.dtype, shape=d.shape[1:], writable=False)
        return d[local]

    def _is_direct(self, path: str, dset: str, d: h5py.Dataset) -> bool:
        direct = self._direct.get((path, dset))
        if direct is None:
            direct = self._direct[(path, dset)] = _one_frame_bslz4(d)
        return direct

    def read_block(self, start: int, stop: int) -> np.ndarray:
        try:
            path, dset, local = self._locate(start)
            _, dset2, local2 = self._locate(stop - 1)
            if dset2 == dset and local2 - local == stop - 1 - start:
                d = self._dataset(path, dset, local2 + 1)
                # direct chunks go frame by frame, checked before decoding: HDF5's bitshuffle
                # filter (hdf5plugin) crashes the process on a truncated chunk
                block = None if self._is_direct(path, dset, d) else d[local : local2 + 1]
                if block is not None and not any(self._all_masked(f) for f in block):
                    return block
        except Exception:
            pass  # a bad chunk or a missing file: go frame by frame
        return super().read_block(start, stop)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


class HDF5Source(Source):
    """One 3-D dataset of one HDF5 file (an Eiger data file, a SWMR file, a CXI file).

    Parameters
    ----------
    path
        The HDF5 file.
    dataset
        Path of the (frame, y, x) dataset; by default the first of ``/entry/data/data``,
        ``/data``, ``/entry_1/data_1/data``, ``/data/data``.
    **options
        See :class:`~xlive.sources.base.Source`.
    """

    name = "hdf5"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        """Any HDF5 file name (asked after the Eiger master source and the plugins)."""
        return str(target).lower().endswith((".h5", ".hdf5", ".nxs", ".hdf", ".cxi"))

    def __init__(self, path: str | Path, *, dataset: str | None = None, **options):
        super().__init__(**options)
        self.path = str(path)
        try:
            self._file = open_h5(self.path)
        except OSError as exc:
            raise SourceError(
                f"cannot open HDF5 file {self.path} ({exc}); it may be truncated or still being "
                "written without SWMR"
            ) from exc
        if dataset is None:
            dataset = next(
                (p for p in DATASET_PATHS if isinstance(self._file.get(p), h5py.Dataset)), None
            )
            if dataset is None:
                raise SourceError(
                    f"{self.path} has none of the datasets {DATASET_PATHS}; "
                    "pass dataset=PATH to open_source"
                )
        d = self._file.get(dataset)
        if not isinstance(d, h5py.Dataset) or d.ndim != 3:
            raise SourceError(f"{self.path}:{dataset} is not a (frame, y, x) dataset")
        self.dataset = dataset
        self._dset = d
        self._counter = d.parent.get(COUNTER)
        self.refresh()

    def _count(self) -> int:
        try:
            if self._file.swmr_mode:
                self._dset.refresh()
                if self._counter is not None:
                    self._counter.refresh()
            n = self._dset.shape[0]
            if self._counter is not None:
                n = min(n, int(self._counter[0]))
            return n
        except Exception:  # metadata mid-flush: keep the last count until the next poll
            return self._n

    def _make_reader(self) -> FrameReader:
        dtype = self._dset.dtype
        return H5SegmentsReader(
            [(self.path, self.dataset, 0, -1)],
            shape=self._dset.shape[1:],
            dtype=dtype,
            masked_values=self._masked_for(dtype),
        )

    def _frame_shape_hint(self) -> tuple[int, int]:
        return tuple(self._dset.shape[1:])

    def _header_geometry(self) -> Geometry | None:
        if "/entry/instrument/detector" not in self._file:
            return None
        from ..geometry.nxmx import read_nxmx_geometry

        return read_nxmx_geometry(self._file)

    def _dtype_hint(self) -> np.dtype:
        return self._dset.dtype

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._file.close()
