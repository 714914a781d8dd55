"""Sources: each knows one kind of run (Zarr, Eiger master, HDF5/SWMR, image files, zeromq
stream, xlive run folder) and hands out lazy frames, per-frame metadata and the geometry.

Open any of them with :func:`open_source`; add new ones through the ``xlive.sources``
entry-point group (copy :mod:`xlive.sources._template`).
"""

from __future__ import annotations

from ..registry import list_sources, open_source
from .base import FrameReader, Source

__all__ = ["FrameReader", "Source", "list_sources", "open_source"]
