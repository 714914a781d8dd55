"""Robust ring statistics: one histogram pass per frame, then iterative sigma clipping.

Shared by the spot finder (per-ring thresholds) and the frame statistics (background, water and
ice rings). A :class:`RingBinning` is built once per run from a per-pixel ring index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AnalyzerError
from ._kernels.binning import clipped_stats, ring_histograms, ring_histograms_int


@dataclass(frozen=True, eq=False)
class RingResult:
    """Per-ring clipped statistics of one frame, plus frame totals from the same pass."""

    mean: np.ndarray
    sigma: np.ndarray
    count: np.ndarray
    hist: np.ndarray
    ovf: np.ndarray
    n_candidates: int
    n_saturated: int
    total: float


class RingBinning:
    """Ring index map plus the histogram layout for a frame dtype.

    Parameters
    ----------
    rings : int array (y, x)
        Ring of each pixel, -1 to ignore.
    n_hist : int
        Value bins per ring; integer frames get one bin per count (exact below ``n_hist - 1``).
    clip_sigma, max_iter : float, int
        Sigma-clipping level and iteration limit.
    float_bin_width : float
        Value-bin width (photons) of the general layout, starting at ``float_vmin`` (photons).
    gain : float
        ADU per photon of the frames (the general layout's bins are in photons).

    Layouts: *counting* frames (integers, no valid value below 0, one ADU per photon) get one
    bin per count, exact, through the integer kernel; every other frame (floats, signed
    pedestal-subtracted integers, any gain) gets bins of ``float_bin_width`` photons. The
    choice depends on the dtype's kind, the valid range and the gain only, so int32 and
    float32 copies of signed frames get the same histograms, and frames and gain scaled
    together get the same statistics in photons.
    """

    def __init__(
        self,
        rings: np.ndarray,
        *,
        n_hist: int = 256,
        clip_sigma: float = 3.0,
        max_iter: int = 10,
        float_bin_width: float = 0.25,
        float_vmin: float = -2.0,
        gain: float = 1.0,
    ):
        dtype = np.int16 if rings.max(initial=0) < 2**15 else np.int32
        self.rings = rings.astype(dtype)
        self.n_rings = int(rings.max(initial=-1)) + 1
        self.n_hist = int(n_hist)
        self.clip_sigma = float(clip_sigma)
        self.max_iter = int(max_iter)
        self.float_bin_width = float(float_bin_width)
        self.float_vmin = float(float_vmin)
        self.gain = float(gain)
        if not self.gain > 0:
            raise AnalyzerError(f"detector gain must be > 0 ADU per photon, got {gain!r}")

    def counting(self, dtype: np.dtype, lo: float) -> bool:
        """Whether frames of ``dtype`` with valid values from ``lo`` use the counting layout."""
        return np.dtype(dtype).kind in "iub" and lo >= 0 and self.gain == 1.0

    def layout(self, dtype: np.dtype, lo: float = 0.0) -> tuple[float, float, float]:
        """(vmin, width, offset) of the value bins (ADU) for frames of ``dtype``."""
        if self.counting(dtype, lo):
            return 0.0, 1.0, 0.0
        return self.float_vmin * self.gain, self.float_bin_width * self.gain, 0.5

    def run(
        self,
        frame: np.ndarray,
        lo: float,
        hi: float,
        sat: float,
        cand_level: float,
        cand: np.ndarray,
        step: int = 1,
    ) -> RingResult:
        """Histogram pass + clipping for one frame; candidate indices go into ``cand``.

        ``step`` > 1 samples every ``step``-th row and column (statistics only).
        """
        vmin, width, offset = self.layout(frame.dtype, lo)
        counting = self.counting(frame.dtype, lo)
        kernel = ring_histograms_int if counting else ring_histograms
        hist, ovf = self.empty()
        nc, nsat, total = kernel(
            frame, self.rings, lo, hi, vmin, 1.0 / width, sat, cand_level, step, hist, ovf, cand
        )
        return self.finish(hist, ovf, nc, nsat, total, frame.dtype, lo)

    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed ``(hist, ovf)`` buffers for one frame."""
        n = max(self.n_rings, 1)
        return np.zeros((n, self.n_hist), np.int32), np.zeros((n, 3))

    def finish(
        self, hist, ovf, nc, nsat, total, dtype, lo: float = 0.0, bound: np.ndarray | None = None
    ) -> RingResult:
        """Sigma clipping on filled histograms -> :class:`RingResult`. ``bound[r]``: no bin of
        ring ``r`` above it holds a value (see :func:`clipped_stats`; default: any may)."""
        vmin, width, offset = self.layout(dtype, lo)
        n = hist.shape[0]
        mean, sigma, count = np.empty(n), np.empty(n), np.empty(n)
        if bound is None:
            bound = np.full(n, hist.shape[1] - 1, np.int64)
        min_excess = 1.0 if self.counting(dtype, lo) else 0.0
        clipped_stats(
            hist,
            ovf,
            vmin,
            width,
            offset,
            self.clip_sigma,
            min_excess,
            self.max_iter,
            mean,
            sigma,
            count,
            bound,
        )
        return RingResult(mean, sigma, count, hist, ovf, int(nc), int(nsat), float(total))

    def values(self, frame: np.ndarray, lo: float, hi: float, step: int = 1) -> np.ndarray:
        """Valid values (float64) of the pixels in a ring, every ``step``-th row and column."""
        v = np.asarray(frame[::step, ::step], np.float64)
        r = self.rings[::step, ::step]
        with np.errstate(invalid="ignore"):
            return v[(r >= 0) & (v >= lo) & (v <= hi)]

    def median(self, res: RingResult, dtype: np.dtype, lo: float = 0.0, exact=None) -> float:
        """Median pixel value (ADU) over all rings, from the histograms.

        When the median lies in the overflow bin (a background above the histogram's range),
        or in the general layout's first bin (below its range), the histogram cannot say where: ``exact()`` then gives the values to take the median
        of (no cap; NaN if it is not given).
        """
        vmin, width, offset = self.layout(dtype, lo)
        h = res.hist.sum(axis=0)
        n = h.sum()
        if n == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(h), (n + 1) / 2.0))
        # the first bin of the general layout also holds everything below it
        if k >= h.size - 1 or (k == 0 and not self.counting(dtype, lo)):
            if exact is None:
                return float("nan")
            values = exact()
            return float(np.median(values)) if values.size else float("nan")
        return vmin + (k + offset) * width
