"""Copy-me template for a new source (a test opens a run with it).

1. Copy this file into your package and rename ``TemplateSource``.
2. Implement ``_count`` (complete frames now, never blocking) and a picklable
   :class:`~xlive.sources.base.FrameReader` whose ``_read(i)`` returns frame i.
3. Optionally give ``_header_geometry`` and ``_native_metadata``.
4. Register it in your ``pyproject.toml``::

       [project.entry-points."xlive.sources"]
       mysource = "mypackage.mysource:TemplateSource"

   and define ``guess_can_open(target)`` so ``open_source`` picks it automatically.

This template reads a folder of ``.npy`` files, one frame per file, as a growing run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SourceError
from .base import FrameReader, Source


class NpyReader(FrameReader):
    def __init__(self, files: list[str], **kw):
        super().__init__(**kw)
        self.files = files  # shared with the source, grows in place

    def _read(self, index: int) -> np.ndarray:
        return np.load(self.files[index])


class TemplateSource(Source):
    """Frames from ``*.npy`` files in a folder (one frame per file, sorted by name)."""

    name = "npy-template"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        return Path(target).is_dir() and any(Path(target).glob("*.npy"))

    def __init__(self, target: str | Path, **options):
        super().__init__(**options)
        self.folder = Path(target)
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder} is not a folder of .npy frames")
        self._files: list[str] = []
        self.refresh()

    def _count(self) -> int:
        known = set(self._files)
        self._files.extend(str(p) for p in sorted(self.folder.glob("*.npy")) if str(p) not in known)
        return len(self._files)

    def _make_reader(self) -> FrameReader:
        first = np.load(self._files[0], mmap_mode="r")
        return NpyReader(
            self._files,
            shape=first.shape,
            dtype=first.dtype,
            masked_values=self._masked_for(first.dtype),
        )
