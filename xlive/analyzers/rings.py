"""Robust ring statistics: one histogram pass per frame, then iterative sigma clipping.

Shared by the spot finder (per-ring thresholds) and the frame statistics (background, water and
ice rings). A :class:`RingBinning` is built once per run from a per-pixel ring index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
        Value-bin width for float frames (photon units), starting at ``float_vmin``.
    """

    def __init__(self, rings: np.ndarray, *, n_hist: int = 256, clip_sigma: float = 3.0,
                 max_iter: int = 10, float_bin_width: float = 0.25, float_vmin: float = -2.0):
        dtype = np.int16 if rings.max(initial=0) < 2**15 else np.int32
        self.rings = rings.astype(dtype)
        self.n_rings = int(rings.max(initial=-1)) + 1
        self.n_hist = int(n_hist)
        self.clip_sigma = float(clip_sigma)
        self.max_iter = int(max_iter)
        self.float_bin_width = float(float_bin_width)
        self.float_vmin = float(float_vmin)

    def layout(self, dtype: np.dtype) -> tuple[float, float, float]:
        """(vmin, width, offset) of the value bins for frames of ``dtype``."""
        if np.dtype(dtype).kind in "iub":
            return 0.0, 1.0, 0.0
        return self.float_vmin, self.float_bin_width, 0.5

    def run(self, frame: np.ndarray, lo: float, hi: float, sat: float, cand_level: float,
            cand: np.ndarray, step: int = 1) -> RingResult:
        """Histogram pass + clipping for one frame; candidate indices go into ``cand``.

        ``step`` > 1 samples every ``step``-th row and column (statistics only).
        """
        vmin, width, offset = self.layout(frame.dtype)
        kernel = ring_histograms_int if frame.dtype.kind in "iu" else ring_histograms
        hist, ovf = self.empty()
        nc, nsat, total = kernel(frame, self.rings, lo, hi, vmin, 1.0 / width, sat,
                                 cand_level, step, hist, ovf, cand)
        return self.finish(hist, ovf, nc, nsat, total, frame.dtype)

    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed ``(hist, ovf)`` buffers for one frame."""
        n = max(self.n_rings, 1)
        return np.zeros((n, self.n_hist), np.int32), np.zeros((n, 3))

    def finish(self, hist, ovf, nc, nsat, total, dtype) -> RingResult:
        """Sigma clipping on filled histograms -> :class:`RingResult`."""
        vmin, width, offset = self.layout(dtype)
        n = hist.shape[0]
        mean, sigma, count = np.empty(n), np.empty(n), np.empty(n)
        min_excess = 1.0 if np.dtype(dtype).kind in "iu" else 0.0
        clipped_stats(hist, ovf, vmin, width, offset, self.clip_sigma, min_excess,
                      self.max_iter, mean, sigma, count)
        return RingResult(mean, sigma, count, hist, ovf, int(nc), int(nsat), float(total))

    def median(self, res: RingResult, dtype: np.dtype) -> float:
        """Median pixel value over all rings, from the histograms (overflow counts as high)."""
        vmin, width, offset = self.layout(dtype)
        h = res.hist.sum(axis=0)
        n = h.sum()
        if n == 0:
            return float("nan")
        k = int(np.searchsorted(np.cumsum(h), (n + 1) / 2.0))
        return vmin + (k + offset) * width
