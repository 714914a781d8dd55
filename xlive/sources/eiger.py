"""An Eiger/NXmx master file whose data files appear one by one while the run goes on.

Dectris masters link ``/entry/data/data_000001..`` to ``<name>_data_NNNNNN.h5:/entry/data/data``
before those files exist. Each poll looks for the next link target only; a file that exists is
complete (Dectris writes whole files), and its ``image_nr_low/high`` attributes place its frames.
Masters with a single ``/entry/data/data`` dataset (VDS, DLS/Odin) are read through it, counting
frames in the virtual sources that exist (SWMR data files are refreshed).

A data file that exists but cannot be opened (truncated) is skipped once a later file, or the
planned frame count (``nimages * ntrigger``), tells how many frames it held; those frames are bad.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import SourceError
from ..geometry.core import Geometry
from ..geometry.nxmx import read_nxmx_geometry
from .base import FrameReader, Source
from .hdf5 import H5SegmentsReader, open_h5


def is_master(path: str | Path) -> bool:
    """True for an NXmx master that links its frames to data files."""
    try:
        with h5py.File(path, "r") as f:
            data = f.get("/entry/data")
            return isinstance(data, h5py.Group) and (
                "data_000001" in data
                or isinstance(data.get("data"), h5py.Dataset)
                and data["data"].is_virtual
            )
    except OSError:
        return False


class EigerSource(Source):
    """Frames of an Eiger/NXmx master + data-file series, growing as data files appear.

    Parameters
    ----------
    path
        The ``*_master.h5`` (or ``.nxs``) file.
    **options
        See :class:`~xlive.sources.base.Source`.
    """

    name = "eiger"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        """An existing HDF5 file that is an Eiger/NXmx master."""
        t = str(target)
        return (
            t.lower().endswith((".h5", ".hdf5", ".nxs", ".hdf", ".cxi"))
            and os.path.isfile(t)
            and is_master(t)
        )

    def __init__(self, path: str | Path, **options):
        if options.get("metadata") is None:  # timestamps, laser on/off... beside the master
            from .metadata import find_side_table

            options["metadata"] = find_side_table(path)
        super().__init__(**options)
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as f:
                self._links = self._read_links(f)
                spec = f.get("/entry/instrument/detector/detectorSpecific")
                self.planned = None
                if spec is not None and "nimages" in spec:
                    ntrig = int(spec["ntrigger"][()]) if "ntrigger" in spec else 1
                    self.planned = int(spec["nimages"][()]) * max(ntrig, 1)
                try:
                    self._geom = read_nxmx_geometry(f)
                except Exception:
                    self._geom = None
                shape = self._geom.shape if self._geom else None
        except OSError as exc:
            raise SourceError(f"cannot open Eiger master {self.path}: {exc}") from exc
        if not self._links:
            raise SourceError(
                f"{self.path} has neither /entry/data/data_NNNNNN links nor a "
                "/entry/data/data dataset; is it an NXmx master file?"
            )
        self._segments: list[tuple[str, str, int, int]] = []
        self._next_link = 0
        self._next_frame = 0
        self._first_low: int | None = None
        self._shape = shape
        self._dtype: np.dtype | None = None
        self.refresh()

    # ---------------------------------------------------------------- discovery
    def _read_links(self, f: h5py.File) -> list[tuple[str, str]]:
        data = f["/entry/data"]
        if isinstance(data.get("data"), h5py.Dataset):
            return [("vds", "/entry/data/data")]
        links = []
        for name in sorted(k for k in data if k.startswith("data_")):
            link = data.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                target = Path(link.filename)
                target = target if target.is_absolute() else self.path.parent / target
                links.append((str(target), link.path))
            elif isinstance(data.get(name), h5py.Dataset):
                links.append((str(self.path), f"/entry/data/{name}"))
        return links

    def _count(self) -> int:
        if self._links and self._links[0][0] == "vds":
            return self._count_vds()
        while self._next_link < len(self._links):
            path, dset = self._links[self._next_link]
            if not Path(path).exists():
                break
            try:
                with open_h5(path) as f:
                    d = f[dset]
                    n = d.shape[0]
                    low = int(d.attrs.get("image_nr_low", self._next_frame + 1))
                    self._shape = self._shape or tuple(d.shape[1:])
                    self._dtype = self._dtype or d.dtype
            except (OSError, KeyError):
                if not self._skip_unreadable(self._next_link):
                    break  # maybe still being written: retry at the next poll
                continue
            if self._first_low is None:
                self._first_low = low
            start = low - self._first_low
            if start > self._next_frame:  # frames missing between files
                self._bad.update(range(self._next_frame, start))
            self._add_segment(path, dset, start, n)
            self._next_link += 1
        return self._next_frame

    def _add_segment(self, path: str, dset: str, start: int, n: int) -> None:
        self._segments.append((path, dset, start, n))
        self._next_frame = start + n
        if self._reader is not None:
            self._reader.segments = list(self._segments)

    def _skip_unreadable(self, k: int) -> bool:
        """Mark the frames of unreadable data file k bad if their number is known."""
        end = None
        for path, dset in self._links[k + 1 :]:
            try:
                with open_h5(path) as f:
                    low = int(f[dset].attrs["image_nr_low"])
                end = low - (self._first_low or 1)
                break
            except (OSError, KeyError):
                continue
        if end is None and k == len(self._links) - 1 and self.planned:
            end = self.planned
        if end is None or end <= self._next_frame:
            return False
        self._bad.update(range(self._next_frame, end))
        self._add_segment(self._links[k][0], self._links[k][1], self._next_frame, 0)
        self._next_frame = end
        self._next_link += 1
        return True

    def _count_vds(self) -> int:
        with h5py.File(self.path, "r") as f:
            d = f["/entry/data/data"]
            self._shape, self._dtype = tuple(d.shape[-2:]), d.dtype
            if not self._segments:
                self._segments = [(str(self.path), "/entry/data/data", 0, d.shape[0])]
            sources = sorted(d.virtual_sources(), key=lambda s: s.vspace.get_select_bounds()[0][0])
        n = 0
        for s in sources:
            lo, hi = s.vspace.get_select_bounds()
            target = Path(s.file_name)
            target = target if target.is_absolute() else self.path.parent / target
            if lo[0] != n or not target.exists():
                break
            try:
                with open_h5(target) as g:
                    avail = g[s.dset_name].shape[0]
            except (OSError, KeyError):
                break
            n += min(avail, hi[0] - lo[0] + 1)
            if avail < hi[0] - lo[0] + 1:
                break
        self._next_frame = n
        return n

    @property
    def finished(self) -> bool | None:
        """True once the planned frames (``nimages * ntrigger``) are all there."""
        if self.end_marker is not None:
            return self.end_marker()
        return None if not self.planned else self._n >= self.planned

    def missing_files(self) -> list[str]:
        """Data files the master links to that do not exist (yet)."""
        if self._links and self._links[0][0] == "vds":
            return []
        return [p for p, _ in self._links if not Path(p).exists()]

    @property
    def waiting_for(self) -> str:
        """What a live monitor waits for next ("" when nothing is missing)."""
        missing = self.missing_files()
        if not missing:
            return ""
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return f"waiting for data file {Path(missing[0]).name}{more}"

    # ---------------------------------------------------------------- Source API
    def _make_reader(self) -> FrameReader:
        dtype = self._dtype or np.dtype("uint32")
        return H5SegmentsReader(
            list(self._segments),
            shape=self._shape,
            dtype=dtype,
            masked_values=self._masked_for(dtype),
        )

    def _header_geometry(self) -> Geometry | None:
        return self._geom

    def _dtype_hint(self) -> np.dtype:
        return self._dtype or np.dtype("uint32")

    def _frame_shape_hint(self) -> tuple[int, int]:
        return self._shape or (0, 0)

    def frame_origin(self, index: int) -> str | None:
        found = None  # the last segment starting at or before index (they are in frame order)
        for k, (path, _dset, start, _n) in enumerate(self._segments):
            if start > index:
                break
            found = (k, path)
        if found is None or (found[1] == str(self.path) and len(self._segments) == 1):
            return None
        return f"data file {found[0] + 1} ({Path(found[1]).name})"

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
