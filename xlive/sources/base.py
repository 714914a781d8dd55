"""The ``Source`` base class: frame counting, lazy frames, per-frame metadata, bad frames.

A concrete source implements four things: ``_count()`` (complete frames now, never blocking),
``_make_reader()`` (a small picklable :class:`FrameReader`), ``_header_geometry()`` and, when it
knows some, ``_native_metadata(n)``. Everything users touch (``refresh``, ``frames``,
``read_frame``, ``geometry``, ``bad_frames``) lives here, so every source behaves the same.
"""

from __future__ import annotations

import abc
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..conventions import FRAME, X, Y
from ..errors import BadFrameError, GeometryError
from ..geometry.core import Geometry

if TYPE_CHECKING:
    import xarray as xr

#: target bytes per dask chunk when the caller gives no ``chunk_frames``
_CHUNK_BYTES = 32 * 2**20
_MAX_CHUNK_FRAMES = 16
_tokens = itertools.count()


class FrameReader(abc.ABC):
    """Reads frames by index; picklable (paths and numbers only), shipped inside dask graphs.

    ``read_one`` raises :class:`~xlive.errors.BadFrameError` for a corrupt frame;
    ``read_block`` fills such frames (0 or NaN) and records their indices in ``self.bad``.
    """

    def __init__(
        self, *, shape: tuple[int, int], dtype: np.dtype, masked_values: tuple[float, ...] = ()
    ):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.masked_values = tuple(masked_values)
        self.bad: set[int] = set()

    @abc.abstractmethod
    def _read(self, index: int) -> np.ndarray:
        """Decode one frame (may raise any error; ``read_one`` turns it into BadFrameError)."""

    def read_one(self, index: int) -> np.ndarray:
        try:
            frame = np.asarray(self._read(index))
        except BadFrameError:
            raise
        except Exception as exc:  # decoder errors come in every flavour (OSError, ValueError...)
            raise BadFrameError(
                f"frame {index} cannot be read ({type(exc).__name__}: {exc}); it is marked bad "
                "and skipped by the live loop"
            ) from exc
        if frame.shape != self.shape:
            raise BadFrameError(
                f"frame {index} has shape {frame.shape}, expected {self.shape} like the first "
                "frame of the run; it is marked bad"
            )
        if self._all_masked(frame):
            raise BadFrameError(
                f"frame {index} holds only masked values ({self.masked_values} or NaN); "
                "it is marked bad"
            )
        return frame

    def _all_masked(self, frame: np.ndarray) -> bool:
        if not self.masked_values and frame.dtype.kind != "f":
            return False
        flat = frame.ravel()
        probe = flat[:: max(1, flat.size // 64)]  # cheap early exit for ordinary frames
        if not _masked(probe, self.masked_values).all():
            return False
        return bool(_masked(flat, self.masked_values).all())

    def read_block(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.shape), self.dtype)
        for k, i in enumerate(range(start, stop)):
            try:
                out[k] = self.read_one(i)
            except BadFrameError:
                out[k] = np.nan if self.dtype.kind == "f" else 0
                self.bad.add(i)
        return out


def _masked(values: np.ndarray, masked_values: tuple[float, ...]) -> np.ndarray:
    m = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    for v in masked_values:
        m |= values == v
    return m


def masked_values_for(dtype: np.dtype, *, unsigned_max: bool = True) -> tuple[float, ...]:
    """Default gap/bad-pixel values for a dtype: the maximum if unsigned (EIGER), none otherwise.

    Signed data have no default markers: pedestal-subtracted integrating detectors hold real
    negative values. Formats that mark gaps with negative values declare them (miniCBF:
    PILATUS -1/-2, through the header geometry's ``sentinels``).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "u" and unsigned_max:
        return (int(np.iinfo(dtype).max),)
    return ()


def _read_chunk(reader: FrameReader, block_info=None) -> np.ndarray:
    """The frames of one dask chunk (``block_info`` tells which, see ``dask.array.map_blocks``)."""
    (start, stop), _, _ = block_info[None]["array-location"]
    return reader.read_block(start, stop)


class Source(abc.ABC):
    """A run that may still be growing. Open one with :func:`xlive.open_source`.

    Parameters
    ----------
    chunk_frames
        Frames per dask chunk (default: about 32 MB per chunk, at most 16 frames).
    metadata
        Path of a side table (CSV or HDF5) with per-frame metadata, joined by frame index.
    geometry
        A :class:`~xlive.geometry.Geometry` that replaces the one read from the headers.
    masked_values
        Pixel values that mark gaps and bad pixels (default: the source's own rule).
    """

    #: registry name (``open_source(..., kind=name)``)
    name: ClassVar[str] = "source"
    #: masked-value rule: unsigned data mark gaps with the dtype's maximum (Eiger)
    mask_unsigned_max: ClassVar[bool] = True

    def __init__(
        self,
        *,
        chunk_frames: int | None = None,
        metadata: str | Path | None = None,
        geometry: Geometry | None = None,
        masked_values: tuple[float, ...] | None = None,
    ):
        self.chunk_frames = chunk_frames
        self._side_table_path = metadata
        self._side_table = None
        self._geometry_override = geometry
        self._masked_values_override = None if masked_values is None else tuple(masked_values)
        self._geometry: Geometry | None = None
        self._n = 0
        self._reader: FrameReader | None = None
        self._bad: set[int] = set()
        self._token = next(_tokens)

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def _count(self) -> int:
        """How many complete frames exist now (never blocks, never raises for a growing run)."""

    @abc.abstractmethod
    def _make_reader(self) -> FrameReader:
        """A picklable reader for this run (called once the frame shape is known)."""

    def _header_geometry(self) -> Geometry | None:
        """The geometry the run's own headers describe (None: they say nothing)."""
        return None

    def header_geometry(self) -> Geometry | None:
        """The geometry the run's own headers describe (None: they say nothing)."""
        return self._header_geometry()

    def override_geometry(self, geometry: Geometry) -> None:
        """Use ``geometry`` instead of the headers' (pixels masked in frame 0 are still added)."""
        self._geometry_override = geometry
        self._geometry = None

    def _native_metadata(self, n: int) -> dict[str, np.ndarray]:
        """Per-frame metadata the source itself knows, arrays of length ``n``."""
        return {}

    def close(self) -> None:
        """Release open files or sockets (a no-op for most sources)."""
        return None

    def set_geometry(self, geometry: Geometry) -> None:
        """Use ``geometry`` instead of the headers' from now on (e.g. configuration overrides)."""
        self._geometry_override = geometry
        self._geometry = None

    def frame_origin(self, index: int) -> str | None:
        """Where frame ``index`` lives, in words (``"data file 2 (x_data_000002.h5)"``), for
        fault reports; None when the run is one piece."""
        return None

    def faults(self) -> dict:
        """Faults the source itself knows (frames dropped, stream messages refused...); the
        live loop adds frames found unreadable. See :mod:`xlive.aggregate.faults`."""
        return {}

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ public API
    def refresh(self) -> int:
        """Look for new frames; return how many complete frames exist now (never blocks)."""
        self._n = max(self._n, int(self._count()))
        if self._side_table_path is not None:
            from .metadata import read_side_table

            self._side_table = read_side_table(self._side_table_path)
        return self._n

    @property
    def n_frames(self) -> int:
        """Complete frames as of the last :meth:`refresh`."""
        return self._n

    #: ``f(geometry or None, source) -> Geometry`` applied to the headers' geometry (a
    #: :class:`~xlive.geometry.plan.GeometryPlan`: geometry file, mask, configured values)
    geometry_edit = None

    #: a callable telling whether the run has ended (set by a wrapper that knows, e.g. an
    #: xlive run folder's ``complete`` flag); None: the source's own rule
    end_marker = None

    @property
    def finished(self) -> bool | None:
        """True once the run says it has ended (an end marker, its planned frame count),
        False while it says it goes on, None when it cannot tell (then only an idle time
        tells: see :class:`xlive.session.RunClock`)."""
        return self.end_marker() if self.end_marker is not None else None

    @property
    def masked_values(self) -> tuple[float, ...]:
        """Pixel values that mark gaps or bad pixels (NaN is always masked in float data)."""
        return self.reader.masked_values if self._n else ()

    def _masked_for(self, dtype: np.dtype) -> tuple[float, ...]:
        """The masked-value rule: Eiger gaps (2**16-1, 2**32-1), Pilatus gaps/bad (-1, -2)."""
        if self._masked_values_override is not None:
            return self._masked_values_override
        return masked_values_for(dtype, unsigned_max=self.mask_unsigned_max)

    @property
    def reader(self) -> FrameReader:
        if self._reader is None:
            self._reader = self._make_reader()
        return self._reader

    @property
    def bad_frames(self) -> set[int]:
        """Indices of frames found corrupt, truncated or all-masked so far."""
        return self._bad | (self.reader.bad if self._n else set())

    @property
    def geometry(self) -> Geometry:
        """Detector geometry, with the gap/bad-pixel values the format declares (``sentinels``).

        Pixels are never masked for the values they hold in some frame: a marker value is
        invalid in every frame where it appears (see :meth:`Geometry.valid_range`), and a
        real value equal to a marker of another format is kept.
        """
        if self._geometry is None:
            geom = self._geometry_override or self._header_geometry()
            if self.geometry_edit is not None:  # --geometry, --mask, [geometry] (GeometryPlan)
                geom = self.geometry_edit(geom, self)
            if geom is None:
                from ..geometry.headers import QUANTITIES, how_to_give, missing_quantities

                found = getattr(self, "header_quantities", None) or {}
                missing = missing_quantities(found) if found else list(QUANTITIES)
                raise GeometryError(
                    f"{type(self).__name__} found no complete detector geometry in the run's "
                    f"headers (missing: {', '.join(missing)}); "
                    + how_to_give(missing)
                    + "; in Python: open_source(RUN, geometry=Geometry.simple(...))"
                )
            if self._masked_values_override is not None:
                geom = geom.replace(sentinels=self._masked_values_override)
            if self._n == 0:
                return geom  # the dtype is not known before the first frame: do not cache
            if geom.sentinels is None:
                geom = geom.replace(sentinels=self.masked_values)
            self._geometry = geom
        return self._geometry

    def read_frame(self, index: int) -> np.ndarray:
        """One frame as numpy (eager, for viewers); raises BadFrameError for a corrupt frame."""
        if not 0 <= index < self._n:
            raise IndexError(f"frame {index} does not exist yet ({self._n} complete frames)")
        try:
            frame = self.reader.read_one(index)
        except BadFrameError:
            self._bad.add(index)
            raise
        # readers may decode into an immutable buffer (the workers' hot path): viewers get
        # a frame of their own
        return frame if frame.flags.writeable else frame.copy()

    def metadata(self) -> dict[str, np.ndarray]:
        """Per-frame metadata arrays (length ``n_frames``): the source's own, then side table."""
        n = self._n
        meta = {k: np.asarray(v)[:n] for k, v in self._native_metadata(n).items()}
        if self._side_table is not None:
            from .metadata import side_table_columns

            meta.update(side_table_columns(self._side_table, n))
        return meta

    def frames(self) -> xr.DataArray:
        """Lazy frames ``(frame, y, x)`` over the complete frames of the last refresh."""
        import dask  # dask.array, xarray: only for this lazy view (serve starts without)
        import dask.array as da
        import xarray as xr

        n = self._n
        reader = self.reader if n else None
        shape = reader.shape if reader else self._frame_shape_hint()
        dtype = reader.dtype if reader else self._dtype_hint()
        if n == 0:
            data = da.empty((0, *shape), dtype=dtype, chunks=(1, *shape))
        else:
            c = self.chunk_frames or max(
                1,
                min(
                    _MAX_CHUNK_FRAMES, _CHUNK_BYTES // max(1, dtype.itemsize * shape[0] * shape[1])
                ),
            )
            chunks = (tuple(min(n, s + c) - s for s in range(0, n, c)), (shape[0],), (shape[1],))
            # the reader is one key of the graph, shared by the chunk tasks
            data = da.map_blocks(
                _read_chunk,
                dask.delayed(reader, pure=False),
                chunks=chunks,
                dtype=dtype,
                meta=np.empty((0, 0, 0), dtype),
                name=f"xlive-frames-{self.name}-{self._token}-{n}-{c}",
            )
        coords: dict[str, Any] = {FRAME: np.arange(n)}
        for k, v in self.metadata().items():
            coords[k] = (FRAME, v)
        bad = np.zeros(n, bool)
        bad[[i for i in self.bad_frames if i < n]] = True
        coords["bad"] = (FRAME, bad)
        return xr.DataArray(
            data, dims=(FRAME, Y, X), coords=coords, name="frames", attrs={"source": self.name}
        )

    def _frame_shape_hint(self) -> tuple[int, int]:
        geom = self._geometry_override or self._header_geometry()
        return tuple(geom.shape) if geom is not None else (0, 0)

    def _dtype_hint(self) -> np.dtype:
        return np.dtype("float32")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._n} frames>"
