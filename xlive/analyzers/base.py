"""The analyzer contract: declare outputs (``describe``), give coordinates, compute per block.

An analyzer is built once per run from a :class:`~xlive.geometry.Geometry` and a frozen
parameter dataclass; the constructor precomputes every per-pixel map it needs, and each call
maps a block of frames ``(n, y, x)`` to named arrays with leading dimension ``n``. Calls must be
thread-safe (no shared scratch buffers) and the object pickleable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..conventions import FRAME
from ..errors import AnalyzerError
from ..geometry import Geometry


@dataclass(frozen=True)
class FeatureSpec:
    """One per-frame output: name, dims (first is ``frame``), dtype, units, fill value."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str = ""
    description: str = ""
    fill: float = math.nan
    #: sizes of the non-frame dims, e.g. ``{"q": 500}``
    sizes: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.dims or self.dims[0] != FRAME:
            raise AnalyzerError(f"feature {self.name!r}: dims must start with {FRAME!r}, got {self.dims}")
        missing = [d for d in self.dims[1:] if d not in self.sizes]
        if missing:
            raise AnalyzerError(f"feature {self.name!r}: give sizes for dims {missing}")

    def shape(self, n_frames: int) -> tuple[int, ...]:
        """Array shape for ``n_frames`` frames."""
        return (n_frames, *(self.sizes[d] for d in self.dims[1:]))

    def empty(self, n_frames: int) -> np.ndarray:
        """An array of this feature for ``n_frames`` frames, filled with ``fill``."""
        return np.full(self.shape(n_frames), self.fill, dtype=self.dtype)


@runtime_checkable
class Analyzer(Protocol):
    """What every analyzer provides (see :mod:`xlive.analyzers._template`)."""

    name: str

    def describe(self) -> list[FeatureSpec]:
        """The outputs, before anything is computed."""
        ...

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        """Coordinates of the non-frame dims: ``{name: (dim, values, attrs)}``."""
        ...

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Features of a block of frames ``(n, y, x)``; arrays with leading dimension ``n``."""
        ...


def as_block(frames: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """``frames`` as a 3-D ``(n, y, x)`` array (a single 2-D frame becomes ``n = 1``)."""
    a = np.asarray(frames)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != tuple(shape):
        raise AnalyzerError(
            f"{name}: expected frames of shape (n, {shape[0]}, {shape[1]}) matching the geometry, "
            f"got {a.shape}; check that the geometry belongs to this detector"
        )
    return a


def valid_range(dtype: np.dtype, geometry: Geometry | None = None) -> tuple[float, float]:
    """Pixel values treated as measurements: ``[lo, hi]``; others (gap markers, NaN) are skipped.

    The geometry's declared sentinels decide (:meth:`xlive.geometry.Geometry.valid_range`);
    without a geometry, the undeclared rule: unsigned integers reserve their maximum value
    (``2**32 - 1`` on EIGER), signed integers and floats are all measurements (finite values).
    """
    if geometry is not None:
        return geometry.valid_range(dtype)
    dt = np.dtype(dtype)
    if dt.kind == "u":
        return 0.0, float(np.iinfo(dt).max) - 1.0
    if dt.kind == "b":
        return 0.0, 1.0
    return -math.inf, math.inf


def in_photons(frames: np.ndarray, geometry: Geometry) -> np.ndarray:
    """``frames`` in photons for Poisson-based rules: untouched when the gain is 1 everywhere,
    else float32 divided by the gain map, invalid values as NaN."""
    if geometry.gain == 1.0:
        return frames
    lo, hi = geometry.valid_range(frames.dtype)
    f = np.asarray(frames, np.float32)
    with np.errstate(invalid="ignore"):
        f = np.where((f >= lo) & (f <= hi), f, np.float32(np.nan))
    return f / geometry.gain_map()


def photon_frames(frames: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, float]:
    """``(frames, gain)`` ready for the kernels, which take one gain (ADU per photon).

    With one gain for the whole detector the frames are returned untouched. Panels of
    different gains are converted to photons first (float32, invalid values become NaN), and
    the gain is then 1.
    """
    gain = geometry.gain
    if gain is not None:
        return frames, float(gain)
    lo, hi = geometry.valid_range(frames.dtype)
    f = frames.astype(np.float32)
    with np.errstate(invalid="ignore"):
        f[~((f >= lo) & (f <= hi))] = np.nan
    f /= geometry.gain_map()
    return f, 1.0
