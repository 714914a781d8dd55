"""Spot finding (peakfinder8-class) and the per-frame features that come from the spots.

Per frame: (1) one pass builds per-ring value histograms (rings one pixel wide in radius, as
peakfinder8) and collects pixels above the ADC threshold; (2) iterative sigma clipping on the
histograms gives each ring a robust mean and sigma; (3) pixels above ``max(adc_threshold, mean +
pixel_snr * sigma)`` form 8-connected components, each measured against its local background
and kept when its integrated SNR reaches ``min_snr`` (see :mod:`xlive.analyzers._kernels.peaks`);
(4) the peak table (strongest ``max_peaks`` by SNR, NaN padded) and the spot features
(:mod:`xlive.analyzers.spot_stats`) follow from the peaks found. The first pass also gives
``total_intensity`` and ``n_saturated`` at no extra cost, so they are emitted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..conventions import D_UNITS, FRAME, ICE_D_SPACINGS, PEAK
from ..errors import AnalyzerError
from ..geometry.core import Geometry
from ._kernels.peaks import find_peaks, pixels_above
from .base import FeatureSpec, as_block, valid_range
from .rings import RingBinning
from .spot_stats import SpotStatsParams, spot_feature_specs, spot_features


@dataclass(frozen=True, kw_only=True)
class SpotParams:
    """Settings of the spot finder and the hit rule."""

    #: pixels at or below this value (counts) never seed a spot (peakfinder8's adc_thresh)
    adc_threshold: float = 5.0
    #: a pixel joins a spot above ring mean + pixel_snr * ring sigma (peakfinder8's minimum_snr)
    pixel_snr: float = 5.0
    #: minimum integrated SNR of a spot, I / sqrt(I + n_pixels * background variance)
    min_snr: float = 5.0
    #: sigma-clipping level for the ring statistics
    clip_sigma: float = 3.0
    #: ring width in pixels (radius) for the ring statistics
    ring_width: float = 1.0
    #: fewest pixels above threshold in a spot
    min_pixels: int = 1
    #: most pixels above threshold in a spot
    max_pixels: int = 1000
    #: half-width (pixels) of the box around a spot giving its local background
    local_bg_radius: int = 5
    #: a one-pixel spot holding more than this fraction of its intensity is a hot pixel
    max_single_fraction: float = 0.9
    #: rows of the peak table (strongest by SNR)
    max_peaks: int = 256
    #: most peaks measured per frame (the statistics use all of them)
    max_found: int = 8192
    #: fewest spots (off the ice rings) for a hit
    min_spots_hit: int = 15
    #: most spots for a hit (beyond: something else than a crystal)
    max_spots_hit: int = 100_000
    #: half-width (1/nm) of the ice-ring windows whose spots the hit rule ignores
    ice_ring_halfwidth: float = 0.15
    #: candidate pixels kept from the first pass (beyond: a second full pass)
    max_candidates: int = 1 << 18
    #: settings of the spot features
    stats: SpotStatsParams = field(default_factory=SpotStatsParams)

    def __post_init__(self):
        if self.ring_width <= 0 or self.max_peaks < 1 or self.min_pixels < 1:
            raise AnalyzerError("spot finder: ring_width > 0, max_peaks >= 1, min_pixels >= 1")


def ring_index(radius_px: np.ndarray, mask: np.ndarray, width: float) -> np.ndarray:
    """Ring of each pixel (``floor(radius / width)``), -1 where masked."""
    with np.errstate(invalid="ignore"):
        r = np.floor(radius_px / width)
    return np.where(mask | ~np.isfinite(r), -1, r).astype(np.int32)


class SpotFinder:
    """Spots, the peak table, ``is_hit`` and the spot-derived per-frame features.

    Examples
    --------
    >>> from xlive.simulate import Simulation
    >>> sim = Simulation(detector="eiger500k", seed=1, hit_fraction=1.0)
    >>> sf = SpotFinder(sim.geometry)
    >>> out = sf(sim.frame(0)[0][None])
    >>> bool(out["is_hit"][0])
    True
    """

    name = "spots"
    params_class = SpotParams

    def __init__(self, geometry: Geometry, params: SpotParams | None = None):
        self.geometry = geometry
        self.params = p = params or SpotParams()
        maps = geometry.maps
        self.mask = maps.mask
        radius_px = maps.radius / geometry.pixel_size
        self.binning = RingBinning(ring_index(radius_px, maps.mask, p.ring_width),
                                   clip_sigma=p.clip_sigma)
        self.d_map = maps.d.astype(np.float32)
        self.q_map = maps.q.astype(np.float32)
        sat = geometry.saturation_value
        self.saturation = float(sat) if sat is not None else np.inf

    # ------------------------------------------------------------------ declarations
    def describe(self) -> list[FeatureSpec]:
        p = self.params
        size = {PEAK: p.max_peaks}
        table = [
            FeatureSpec("peak_x", (FRAME, PEAK), "float32", "pixel",
                        "spot centroid x (array-index coordinates)", sizes=size),
            FeatureSpec("peak_y", (FRAME, PEAK), "float32", "pixel",
                        "spot centroid y (array-index coordinates)", sizes=size),
            FeatureSpec("peak_intensity", (FRAME, PEAK), "float32", "counts",
                        "background-subtracted integrated intensity", sizes=size),
            FeatureSpec("peak_npix", (FRAME, PEAK), "float32", "pixel",
                        "pixels above threshold", sizes=size),
            FeatureSpec("peak_snr", (FRAME, PEAK), "float32", "",
                        "integrated SNR I / sqrt(I + n var_bg)", sizes=size),
            FeatureSpec("peak_d", (FRAME, PEAK), "float32", D_UNITS,
                        "d-spacing at the spot", sizes=size),
        ]
        return [
            FeatureSpec("n_spots", (FRAME,), "int32", "", "spots found", fill=0),
            FeatureSpec("total_intensity", (FRAME,), "float64", "counts",
                        "sum of valid unmasked pixel values"),
            FeatureSpec("n_saturated", (FRAME,), "int32", "",
                        "unmasked pixels at or above the saturation value", fill=0),
            FeatureSpec("is_hit", (FRAME,), "bool", "",
                        "min_spots_hit <= spots off the ice rings <= max_spots_hit", fill=0),
            *table,
            *spot_feature_specs(),
        ]

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        return {}

    # ------------------------------------------------------------------ compute
    def find(self, frame: np.ndarray) -> np.ndarray:
        """Peaks of one 2-D frame: rows ``(x, y, intensity, npix, snr, background, max)``."""
        return self._find(frame)[0]

    def _find(self, frame: np.ndarray):
        p = self.params
        lo, hi = valid_range(frame.dtype)
        cand = np.empty(p.max_candidates, np.int64)
        res = self.binning.run(frame, lo, hi, self.saturation, p.adc_threshold, cand)
        return self.peaks_from_rings(frame, res, cand), res

    def peaks_from_rings(self, frame: np.ndarray, res, cand: np.ndarray) -> np.ndarray:
        """Peaks of ``frame`` given its ring statistics ``res`` and candidate buffer ``cand``."""
        p = self.params
        lo, hi = valid_range(frame.dtype)
        thr = np.maximum(p.adc_threshold, res.mean + p.pixel_snr * res.sigma)
        thr = np.where(np.isfinite(thr), thr, np.inf)
        if res.n_candidates <= cand.size:
            cand = cand[:res.n_candidates]
        else:
            cand = pixels_above(frame, self.binning.rings, thr, lo, hi)
        out = np.empty((p.max_found, 7))
        n = find_peaks(frame, self.binning.rings, thr, res.mean, res.sigma, lo, hi, cand,
                       p.min_pixels, p.max_pixels, p.local_bg_radius, p.min_snr,
                       p.max_single_fraction, out)
        return out[:min(n, p.max_found)]

    def features(self, peaks: np.ndarray, res, result: dict, k: int) -> None:
        """Write frame ``k``'s features from its peaks and ring pass into ``result``."""
        p = self.params
        ny, nx = self.geometry.shape
        result["total_intensity"][k] = res.total
        result["n_saturated"][k] = res.n_saturated
        ix = np.clip(np.rint(peaks[:, 0]).astype(np.int64), 0, nx - 1)
        iy = np.clip(np.rint(peaks[:, 1]).astype(np.int64), 0, ny - 1)
        d = self.d_map[iy, ix].astype(np.float64)
        q = self.q_map[iy, ix].astype(np.float64)
        result["n_spots"][k] = len(peaks)
        off_ice = ~_on_ice_rings(q, p.ice_ring_halfwidth)
        result["is_hit"][k] = p.min_spots_hit <= np.count_nonzero(off_ice) <= p.max_spots_hit
        order = np.argsort(-peaks[:, 4], kind="stable")[:p.max_peaks]
        m = order.size
        for name, col in (("peak_x", 0), ("peak_y", 1), ("peak_intensity", 2),
                          ("peak_npix", 3), ("peak_snr", 4)):
            result[name][k, :m] = peaks[order, col]
        result["peak_d"][k, :m] = d[order]
        for name, value in spot_features(peaks, d, self.geometry, p.stats).items():
            result[name][k] = value

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames = as_block(frames, self.geometry.shape, self.name)
        result = {s.name: s.empty(frames.shape[0]) for s in self.describe()}
        for k, frame in enumerate(frames):
            peaks, res = self._find(frame)
            self.features(peaks, res, result, k)
        return result


def _on_ice_rings(q: np.ndarray, halfwidth: float) -> np.ndarray:
    q_ice = 20.0 * np.pi / np.asarray(ICE_D_SPACINGS)
    return (np.abs(q[:, None] - q_ice[None, :]) <= halfwidth).any(axis=1)
