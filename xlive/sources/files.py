"""A folder or glob of single-image files fabio reads (CBF, TIFF, SMV/ADSC, EDF, ...).

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
    with fabio.open(path) as image:
        if image.nframes != 1:
            raise BadFrameError(f"{path} holds {image.nframes} images; a series needs one per file")
        return np.asarray(image.data)


class FilesFrameReader(FrameReader):
    """Reads frame i from ``files[i]`` (the list grows in place on refresh)."""

    def __init__(self, files: list[str], **kw):
        super().__init__(**kw)
        self.files = files

    def _read(self, index: int) -> np.ndarray:
        return _decode(self.files[index])


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
        super().__init__(**options)
        target = str(target)
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
        self.refresh()
        if not self._files and not self._pending():
            raise SourceError(f"no image files match {' or '.join(self.patterns)}")

    def _pending(self) -> list[str]:
        known = self._known
        names = sorted({p for pat in self.patterns for p in glob.glob(pat)
                        if p not in known and not os.path.basename(p).startswith(".")})
        return names

    def _count(self) -> int:
        pending = self._pending()
        for k, path in enumerate(pending):
            newest = k == len(pending) - 1
            try:
                frame = _decode(path)
                if self._shape is None:
                    self._shape, self._dtype = frame.shape, frame.dtype
                    with fabio.open(path) as image:
                        self._first_header = dict(image.header)
                elif frame.shape != self._shape:
                    raise BadFrameError(f"{path} is {frame.shape}, the series is {self._shape}")
            except Exception as exc:
                settled = time.time() - _mtime(path) > self.settle_time
                if newest and not settled and not isinstance(exc, BadFrameError):
                    break  # probably still being written: retry at the next poll
                if self._shape is None:
                    reason = (str(exc).strip()
                              or "no message; the file is probably truncated or corrupt")
                    raise SourceError(f"cannot read the first image {path} "
                                      f"({type(exc).__name__}: {reason}); check the file or "
                                      "start from the next one") from exc
                self._bad.add(len(self._files))
            self._files.append(path)
            self._known.add(path)
        return len(self._files)

    def _make_reader(self) -> FrameReader:
        # the reader shares the list, so files found later are readable by existing graphs
        return FilesFrameReader(self._files, shape=self._shape, dtype=self._dtype,
                                masked_values=self._masked_for(self._dtype))

    def _header_geometry(self) -> Geometry | None:
        contents = self._first_header.get("_array_data.header_contents")
        if not contents or self._shape is None:
            return None
        from ..geometry.minicbf import geometry_from_minicbf_header

        return geometry_from_minicbf_header(contents, shape=self._shape)

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
