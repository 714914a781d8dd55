"""A run that does not exist yet: monitors are started before the detector is armed.

:class:`PendingSource` stands in for the source of a target that cannot be opened yet (the
folder, master file or store is not there, or holds nothing readable). Every ``refresh()`` tries
to open it; until then it has 0 frames and says what it waits for (``waiting_for``). Once open,
it hands everything to the real source. The live loop, the views and the notebook monitor need
nothing else: a run with no frame yet is a state they already know.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import FrameReader, Source


def target_exists(target: str) -> bool:
    """True when ``target`` is a stream address, a glob, or a path that exists."""
    target = os.fspath(target)
    if "://" in target or any(c in target for c in "*?["):
        return True
    return Path(target).exists()


class PendingSource(Source):
    """The source of ``target`` once it can be opened (0 frames until then).

    Parameters
    ----------
    target
        What :func:`~xlive.sources.open_source` will open.
    timeout
        Seconds to wait for the target from now (None: forever); past it, ``refresh()``
        raises :class:`~xlive.errors.SourceError` saying what never appeared.
    kind, **options
        Passed to :func:`~xlive.sources.open_source`.
    """

    name = "pending"

    def __init__(
        self,
        target: str | Path,
        *,
        timeout: float | None = None,
        kind: str | None = None,
        **options: Any,
    ):
        super().__init__()
        self.target = os.fspath(target)
        self.timeout = timeout
        self.started = time.time()
        self._kind = kind
        self._options = options
        self._inner: Source | None = None
        #: why the last attempt to open the target failed (None: it does not exist yet)
        self.last_error: str | None = None

    # ------------------------------------------------------------------ state
    @property
    def inner(self) -> Source | None:
        """The real source (None while waiting)."""
        return self._inner

    @property
    def waiting(self) -> bool:
        return self._inner is None

    @property
    def waiting_for(self) -> str:
        """What the source waits for, in words."""
        if self._inner is not None:
            return getattr(self._inner, "waiting_for", "")
        if self.last_error:
            return f"waiting for {self.target} to be readable ({self.last_error})"
        return f"waiting for {self.target} to appear"

    @property
    def path(self):
        return getattr(self._inner, "path", None) if self._inner is not None else self.target

    def _try_open(self) -> bool:
        from ..registry import open_source

        if not target_exists(self.target):
            self.last_error = None
            return False
        try:
            self._inner = open_source(self.target, kind=self._kind, **self._options)
        except SourceError as exc:  # there, but not readable yet (e.g. an empty folder)
            self.last_error = str(exc)
            return False
        self.last_error = None
        if self.geometry_edit is not None:
            self._inner.geometry_edit = self.geometry_edit
        return True

    # ------------------------------------------------------------------ Source API
    def refresh(self) -> int:
        if self._inner is None and not self._try_open():
            if self.timeout is not None and time.time() - self.started > self.timeout:
                raise SourceError(
                    f"{self.target} did not appear within {self.timeout:g} s"
                    + (f" (last attempt: {self.last_error})" if self.last_error else "")
                    + "; check the path, or wait longer with --timeout SECONDS"
                )
            return 0
        self._n = self._inner.refresh()
        return self._n

    def _count(self) -> int:
        return self._inner._count() if self._inner is not None else 0

    def _make_reader(self) -> FrameReader:
        return self._require().reader

    def _require(self) -> Source:
        if self._inner is None:
            raise SourceError(self.waiting_for)
        return self._inner

    @property
    def reader(self) -> FrameReader:
        return self._require().reader

    @property
    def geometry(self):
        return self._require().geometry

    @property
    def bad_frames(self) -> set[int]:
        return self._inner.bad_frames if self._inner is not None else set()

    @property
    def masked_values(self) -> tuple[float, ...]:
        return self._inner.masked_values if self._inner is not None else ()

    @property
    def finished(self) -> bool | None:
        return self._inner.finished if self._inner is not None else False

    def _header_geometry(self):
        return self._inner._header_geometry() if self._inner is not None else None

    def metadata(self) -> dict[str, np.ndarray]:
        return self._inner.metadata() if self._inner is not None else {}

    def read_frame(self, index: int) -> np.ndarray:
        return self._require().read_frame(index)

    def frames(self):
        return self._require().frames()

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()

    def __getattr__(self, name: str):
        # attributes of the real source (run_info, files, planned...) once it is open
        inner = self.__dict__.get("_inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        return (
            f"<PendingSource {self.target!r}: {self._inner!r}>"
            if self._inner
            else f"<PendingSource {self.target!r}: waiting>"
        )
