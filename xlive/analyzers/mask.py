"""Auto-mask: hot and dead pixels from per-pixel statistics over many frames.

:class:`PixelStats` keeps running per-pixel sums (count of valid frames, sum, sum of squares,
frames at or above a "hot" level) and can be updated block by block, merged across workers
(``a + b``), and turned into a mask at any time:

* **dead**: a pixel that never counted while the pixels of its ring (same distance from the
  beam) saw a median mean of at least ``dead_level_min`` counts per frame: with Poisson
  statistics it had ``exp(-frames * level)`` chance to stay at zero.
* **hot**: a pixel whose mean exceeds ``hot_factor`` times the median mean of the pixels at the
  same distance from the beam (its ring) plus ``hot_sigma`` standard errors, *and* that is
  above its ring's level in at least ``hot_fraction`` of the frames. Bragg spots move from frame
  to frame, so they raise a pixel's mean in a few frames only; a hot pixel is high every time.
* **invalid**: a pixel holding an invalid value (gap marker, NaN) in every frame.

The result is a boolean mask (True = ignore) for :meth:`xlive.geometry.Geometry.with_mask`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.core import Geometry
from .base import as_block, in_photons, valid_range


@dataclass(frozen=True, kw_only=True)
class MaskParams:
    """Thresholds of the auto-mask."""

    #: frames needed before any pixel is judged
    min_frames: int = 20
    #: a pixel is hot when its mean exceeds hot_factor x its ring's median mean ...
    hot_factor: float = 5.0
    #: ... plus this many Poisson standard errors of that median over the frames
    hot_sigma: float = 5.0
    #: ... and it is above its ring's level + 5 sigma in at least this fraction of frames
    hot_fraction: float = 0.5
    #: dead pixels are judged only where the ring's median mean reaches this (photons/frame)
    dead_level_min: float = 3.0
    #: ring width (pixels) for the ring medians
    ring_width: float = 4.0


class PixelStats:
    """Running per-pixel statistics for the auto-mask.

    Examples
    --------
    >>> from xlive.simulate import Simulation
    >>> sim = Simulation(detector="eiger500k", seed=1, hot_pixels=5)
    >>> ps = PixelStats(sim.geometry)
    >>> ps = ps.update(np.stack([sim.frame(i)[0] for i in range(30)]))
    >>> int(ps.hot_mask().sum()) >= 5
    True
    """

    def __init__(self, geometry: Geometry, params: MaskParams | None = None):
        self.geometry = geometry
        self.params = p = params or MaskParams()
        ny, nx = geometry.shape
        self.n = np.zeros((ny, nx), np.int32)
        self.sum = np.zeros((ny, nx))
        self.sumsq = np.zeros((ny, nx))
        self.n_high = np.zeros((ny, nx), np.int32)
        self.frames = 0
        maps = geometry.maps
        with np.errstate(invalid="ignore"):
            ring = np.floor(maps.radius / geometry.pixel_size / p.ring_width)
        self.ring = np.where(np.isfinite(ring), ring, -1).astype(np.int64)
        self.static = maps.mask

    def update(self, frames: np.ndarray) -> PixelStats:
        """Add a block of frames ``(n, y, x)``; returns self."""
        frames = as_block(frames, self.geometry.shape, "PixelStats")
        frames = in_photons(frames, self.geometry)  # the rules below are Poisson, in photons
        lo, hi = valid_range(frames.dtype, self.geometry)
        for f in frames:
            v = f.astype(np.float64)
            ok = (v >= lo) & (v <= hi)
            v = np.where(ok, v, 0.0)
            self.n += ok
            self.sum += v
            self.sumsq += v * v
            level = self._ring_median(v, ok)
            sig = np.sqrt(np.maximum(level, 1.0))
            self.n_high += ok & (v > level + 5.0 * sig)
            self.frames += 1
        return self

    def __add__(self, other: PixelStats) -> PixelStats:
        out = PixelStats(self.geometry, self.params)
        for name in ("n", "sum", "sumsq", "n_high"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.frames = self.frames + other.frames
        return out

    def _ring_median(self, values: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Per-pixel map of the median of ``values`` over each ring's usable pixels."""
        use = ok & ~self.static & (self.ring >= 0)
        r, v = self.ring[use], values[use]
        n_rings = int(self.ring.max(initial=-1)) + 1
        order = np.lexsort((v, r))
        r, v = r[order], v[order]
        starts = np.searchsorted(r, np.arange(n_rings))
        ends = np.searchsorted(r, np.arange(n_rings), side="right")
        med = np.zeros(n_rings)
        has = ends > starts
        med[has] = v[(starts[has] + ends[has] - 1) // 2]
        return np.where(self.ring >= 0, med[np.maximum(self.ring, 0)], 0.0)

    @property
    def mean(self) -> np.ndarray:
        """Per-pixel mean over the frames where the pixel was valid (NaN if never)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.sum / self.n, np.nan)

    def hot_mask(self) -> np.ndarray:
        """Pixels high in most frames, far above their ring (see the module docstring)."""
        p = self.params
        if self.frames < p.min_frames:
            return np.zeros(self.geometry.shape, bool)
        mean = np.nan_to_num(self.mean)
        level = self._ring_median(mean, self.n > 0)
        se = np.sqrt(np.maximum(level, 1.0 / max(self.frames, 1)) / max(self.frames, 1))
        high = mean > p.hot_factor * level + p.hot_sigma * se
        often = self.n_high >= p.hot_fraction * np.maximum(self.n, 1)
        return high & often & (self.n > 0)

    def dead_mask(self) -> np.ndarray:
        """Pixels that never counted where their ring's pixels counted well."""
        p = self.params
        if self.frames < p.min_frames:
            return np.zeros(self.geometry.shape, bool)
        level = self._ring_median(np.nan_to_num(self.mean), self.n > 0)
        return (self.n > 0) & (self.sum == 0) & (level >= p.dead_level_min)

    def invalid_mask(self) -> np.ndarray:
        """Pixels that held an invalid value (gap marker, NaN) in every frame."""
        return (self.n == 0) & (self.frames > 0)

    def mask(self) -> np.ndarray:
        """Hot | dead | invalid pixels (True = ignore); combine with ``geometry.with_mask``."""
        return self.hot_mask() | self.dead_mask() | self.invalid_mask()


def auto_mask(frames: np.ndarray, geometry: Geometry, params: MaskParams | None = None) -> np.ndarray:
    """Mask of hot, dead and invalid pixels found in ``frames`` (one call, eager)."""
    return PixelStats(geometry, params).update(frames).mask()
