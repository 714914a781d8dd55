"""Run OM's peakfinder8 (PyPI ``ondamonitor``) on xlive geometry, as OM itself calls it.

The compiled function is called directly (OM's Python wrapper fails to import under NumPy 2,
see ../shared/peers.md). Arguments follow OM's ``Peakfinder8PeakDetection.find_peaks``: the frame
converted to float32, an int8 mask (1 = use), the radius map in pixels, and for fast mode a
sample of at most ``pixels_per_bin`` random pixels per integer radius. The whole frame is one
"ASIC" (peakfinder8 only uses the layout to keep peaks within a module; our mask holds the gaps).
No OM code is copied here (OM is GPL-3).
"""

from __future__ import annotations

import numpy as np


class OMPeakfinder8:
    """peakfinder8 with its usual parameters (adc_thresh 5, minimum_snr 5, 3-1000 pixels)."""

    def __init__(
        self,
        geometry,
        *,
        fast: bool = False,
        pixels_per_bin: int = 100,
        adc_thresh: float = 5.0,
        minimum_snr: float = 5.0,
        min_pixel_count: int = 3,
        max_pixel_count: int = 1000,
        local_bg_radius: int = 5,
        max_num_peaks: int = 2048,
        seed: int = 0,
    ):
        from om.algorithms._crystallography import peakfinder_8

        self._pf8 = peakfinder_8
        m = geometry.maps
        self.shape = geometry.shape
        self.mask = np.ascontiguousarray((~m.mask).astype(np.int8))
        self.radius = np.ascontiguousarray((m.radius / geometry.pixel_size).astype(np.float32))
        self.fast = fast
        self.args = (adc_thresh, minimum_snr, min_pixel_count, max_pixel_count, local_bg_radius)
        self.max_num_peaks = max_num_peaks
        self.n_stats, self.idx, self.rad = 0, None, None
        if fast:
            rint = np.rint(self.radius).astype(np.int64).ravel()
            order = np.argsort(rint, kind="mergesort")
            groups = np.split(order, np.cumsum(np.bincount(rint))[:-1])
            rng = np.random.default_rng(seed)
            idx = np.concatenate(
                [
                    g if len(g) <= pixels_per_bin else rng.choice(g, pixels_per_bin, replace=False)
                    for g in groups
                    if len(g)
                ]
            )
            self.idx = idx.astype(np.int32)
            self.rad = rint[idx].astype(np.int32)
            self.n_stats = int(idx.size)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Peaks of one frame as rows ``(x, y, intensity, npix, snr)`` (array-index coords)."""
        ny, nx = self.shape
        fs, ss, inten, _com, npix, _mx, _sig, snr = self._pf8(
            self.max_num_peaks,
            frame.astype(np.float32),
            self.mask,
            self.radius,
            self.n_stats,
            self.idx,
            self.rad,
            int(self.fast),
            nx,
            ny,
            1,
            1,
            *self.args,
        )
        return np.column_stack([fs, ss, inten, npix, snr]).astype(float).reshape(-1, 5)
