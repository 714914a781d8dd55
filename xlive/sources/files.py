"""A folder or glob of single-image files fabio reads (CBF, TIFF, SMV/ADSC, EDF, ...).

Full imgCIF/CBF files fabio cannot decode (several arrays per file, ``x-CBF_PACKED`` and other
CBFlib compressions) are read through pycbf (:mod:`xlive.sources.cbf`), with the geometry
their header describes; the run's first file decides which reader the run uses.

Files are ordered by name. On each poll, new files are checked in order; the newest file may be
half-written, so a file that cannot be decoded yet is retried at the next poll as long as it is
the last one and younger than ``settle_time``. An unreadable file followed by newer files (or
older than ``settle_time``) is a bad frame; the run goes on. Multi-frame files (e.g. a TIFF
stack) count one frame each only when they hold a single image.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import fabio
import numpy as np

from ..errors import BadFrameError, SourceError
from ..geometry.core import Geometry
from .base import FrameReader, Source

#: extensions tried when the target is a folder
EXTENSIONS = (".cbf", ".cbf.bz2", ".cbf.gz", ".tif", ".tiff", ".img", ".smv", ".edf", ".mccd")


def _decode(path: str) -> np.ndarray:
    if path.endswith((".cbf", ".CBF")):
        from .cbf import first_section_needs_pycbf, read_frame

        if first_section_needs_pycbf(path):  # a packed CBF in a run of byte-offset ones
            return read_frame(path)
    with fabio.open(path) as image:
        if image.nframes != 1:
            raise BadFrameError(f"{path} holds {image.nframes} images; a series needs one per file")
        return np.asarray(image.data)


def _decode_cbflib(path: str) -> np.ndarray:
    from .cbf import read_frame

    return read_frame(path)


class FilesFrameReader(FrameReader):
    """Reads frame i from ``files[i]`` (the list grows in place on refresh); with ``cbflib``,
    through pycbf (multi-array or packed CBF) instead of fabio."""

    def __init__(self, files: list[str], cbflib: bool = False, **kw):
        super().__init__(**kw)
        self.files = files
        self.cbflib = cbflib

    def _read(self, index: int) -> np.ndarray:
        return (_decode_cbflib if self.cbflib else _decode)(self.files[index])


class FilesSource(Source):
    """Frames from a series of image files.

    Parameters
    ----------
    target
        A folder (all files with a known image extension) or a glob pattern.
    settle_time
        Seconds after its last change when an undecodable newest file is declared bad.
    **options
        See :class:`~xlive.sources.base.Source`.
    """

    name = "files"
    mask_unsigned_max = False  # CCD/TIFF maxima are saturation, not gaps

    @staticmethod
    def guess_can_open(target: str) -> bool:
        """A folder, a glob pattern or any other file (the last source asked)."""
        t = str(target).rstrip("/")
        return os.path.isdir(t) or any(ch in t for ch in "*?[") or os.path.isfile(t)

    def __init__(self, target: str | Path, *, settle_time: float = 10.0, **options):
        if options.get("metadata") is None and os.path.isdir(str(target)):
            from .metadata import find_side_table

            options["metadata"] = find_side_table(target)  # e.g. metadata.csv in the folder
        super().__init__(**options)
        target = str(target)
        #: the folder or glob (recorded as the run's source with its features)
        self.path = Path(target) if os.path.isdir(target) else target
        if os.path.isdir(target):
            self.patterns = [os.path.join(target, "*" + ext) for ext in EXTENSIONS]
        else:
            self.patterns = [target]
        self.settle_time = settle_time
        self._files: list[str] = []
        self._known: set[str] = set()  # files already counted (O(1) look-up per poll)
        self._shape: tuple[int, int] | None = None
        self._dtype: np.dtype | None = None
        self._first_header: dict = {}
        #: the run's CBFs need pycbf (set from the first file); their header's geometry
        self._cbflib = False
        self._cbf_geometry: Geometry | None = None
        self.refresh()
        if not self._files and not self._pending():
            raise SourceError(f"no image files match {' or '.join(self.patterns)}")

    def _pending(self) -> list[str]:
        known = self._known
        names = sorted(
            {
                p
                for pat in self.patterns
                for p in glob.glob(pat)
                if p not in known and not os.path.basename(p).startswith(".")
            }
        )
        return names

    def _count(self) -> int:
        # a directory listing per poll; only the first file (shape, header) and the newest
        # one (is it complete?) are decoded: writers finish a file before the next one, so
        # files older than the newest are complete. A corrupt file is found when its frame
        # is read (it is then a bad frame), not by decoding 10,000 files before analysis.
        pending = self._pending()
        if not pending:
            return len(self._files)
        if self._shape is None:
            first = pending[0]
            try:
                frame = self._decode_first(first)
            except SourceError as exc:
                if not isinstance(exc, BadFrameError):
                    raise  # e.g. pycbf is not installed: waiting does not help
                if len(pending) == 1 and time.time() - _mtime(first) <= self.settle_time:
                    return 0  # probably still being written: retry at the next poll
                raise SourceError(
                    f"cannot read the first image {first} ({exc}); check the file or "
                    "start from the next one"
                ) from exc
            except Exception as exc:
                if len(pending) == 1 and time.time() - _mtime(first) <= self.settle_time:
                    return 0  # probably still being written: retry at the next poll
                reason = str(exc).strip() or "no message; the file is probably truncated or corrupt"
                raise SourceError(
                    f"cannot read the first image {first} "
                    f"({type(exc).__name__}: {reason}); check the file or "
                    "start from the next one"
                ) from exc
            self._shape, self._dtype = frame.shape, frame.dtype
            self._first_data = frame
            self._take([first])
            pending = pending[1:]
            if not pending:
                return len(self._files)
        newest = pending[-1]
        if not self._complete(newest):
            pending = pending[:-1]  # retried at the next poll
        self._take(pending)
        return len(self._files)

    def _decode_first(self, path: str) -> np.ndarray:
        """Decode the first file, choose the run's reader and keep its header."""
        from . import cbf

        if cbf.is_cbf(path):
            raw = cbf.read_bytes(path)
            if cbf.needs_pycbf(raw):  # never handed to fabio (it fails or hangs on these)
                frame = cbf.read_frame(path)
                self._cbf_geometry = cbf.geometry_from_cbf(path, raw)
                self._cbflib = True
                return frame
        frame = _decode(path)
        with fabio.open(path) as image:
            self._first_header = dict(image.header)
        return frame

    def _complete(self, path: str) -> bool:
        """The newest file decodes, or has not changed for ``settle_time`` (then a failure to
        read it makes its frame bad)."""
        if time.time() - _mtime(path) > self.settle_time:
            return True
        try:
            (_decode_cbflib if self._cbflib else _decode)(path)
        except Exception:
            return False
        return True

    def _take(self, paths: list[str]) -> None:
        self._files.extend(paths)
        self._known.update(paths)

    def _make_reader(self) -> FrameReader:
        # the reader shares the list, so files found later are readable by existing graphs
        return FilesFrameReader(
            self._files,
            cbflib=self._cbflib,
            shape=self._shape,
            dtype=self._dtype,
            masked_values=self._masked_for(self._dtype),
        )

    def _header_geometry(self) -> Geometry | None:
        """The geometry in the first file's header (miniCBF, PILATUS TIFF, SMV), when
        complete; what it holds is kept in ``header_quantities`` either way."""
        if self._shape is None:
            return None
        if self._cbflib:  # imgCIF axes and elements, placed by CBFlib (None: not described)
            self.header_quantities = {}
            return self._cbf_geometry
        from ..geometry.headers import (
            geometry_from_quantities,
            missing_quantities,
            quantities_from_header,
        )
        from ..geometry.minicbf import geometry_from_minicbf_header

        self.header_quantities = quantities_from_header(self._first_header, self._shape)
        # PILATUS headers (miniCBF, TIFF): -1 marks module gaps, -2 bad pixels
        pilatus = (
            "Pixel_size" in self._first_header
            or "_array_data.header_contents" in self._first_header
        )
        self.header_sentinels = (-1, -2) if pilatus else None
        if missing_quantities(self.header_quantities):
            return None  # completed by --geometry or [geometry] (GeometryPlan), or an error
        contents = self._first_header.get("_array_data.header_contents")
        if contents:
            return geometry_from_minicbf_header(contents, shape=self._shape)
        return geometry_from_quantities(
            self.header_quantities,
            shape=self._shape,
            sentinels=self.header_sentinels,
            description=str(self._first_header.get("Detector", "")).strip(),
        )

    def _frame_shape_hint(self) -> tuple[int, int]:
        return self._shape or (0, 0)

    def _dtype_hint(self) -> np.dtype:
        return self._dtype or np.dtype("int32")

    def frame_origin(self, index: int) -> str | None:
        return os.path.basename(self._files[index]) if 0 <= index < len(self._files) else None

    @property
    def files(self) -> list[str]:
        """The files of the complete frames, in frame order."""
        return list(self._files)


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0
