"""All built-in per-frame features from one read of each frame (the default analyzer).

:class:`FrameAnalyzer` produces exactly the outputs of :class:`~.radial.RadialProfile`,
:class:`~.spots.SpotFinder` and :class:`~.stats.FrameStats` together, but for integer frames
(up to 32 bits) one fused numba pass (:func:`~._kernels.binning.radial_ring_pass_int`)
fills the radial-profile sums, the spot finder's ring histograms and candidates and (integrated
method) its block sums; the diffuse-scattering statistics then come from
those ring statistics (rings one pixel wide, each with its mean q) instead of a third pass.
Frames are large and the kernels are memory-bound, so reading each frame once is what makes
the whole set cheap.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from ..geometry.core import Geometry
from ._kernels.binning import PixelPieces, piece_totals, radial_ring_pass_int
from ._kernels.blocks import BLOCK, block_shape
from ._kernels.runs import runs_apply
from .base import FeatureSpec, as_block, photon_frames, valid_range
from .radial import RadialParams, RadialProfile
from .spots import SpotFinder, SpotParams
from .stats import FrameStats, StatsParams


class FrameAnalyzer:
    """Radial profile, spots, hits, spot features and frame statistics in one pass per frame.

    Examples
    --------
    >>> from xlive.simulate import Simulation
    >>> sim = Simulation(detector="eiger500k", seed=1)
    >>> fa = FrameAnalyzer(sim.geometry)
    >>> out = fa(sim.frame(0)[0][None])
    >>> "radial_profile" in out and "is_hit" in out and "ice_score" in out
    True
    """

    name = "frame"
    #: configured through the [analyzers.radial], [analyzers.spots] and [analyzers.stats] tables
    params_class = None

    def __init__(
        self,
        geometry: Geometry,
        *,
        radial: RadialParams | None = None,
        spots: SpotParams | None = None,
        stats: StatsParams | None = None,
    ):
        self.geometry = geometry
        self.radial = RadialProfile(geometry, radial)
        self.spots = SpotFinder(geometry, spots)
        self.stats = FrameStats(geometry, stats)
        rings = self.spots.binning.rings
        use = rings >= 0
        n = max(self.spots.binning.n_rings, 1)
        cnt = np.bincount(rings[use], minlength=n)
        qsum = np.bincount(rings[use], weights=geometry.maps.q[use], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.ring_q = np.where(cnt > 0, qsum / cnt, np.nan)
        self._plan = self.stats.band_plan(self.ring_q)
        self._specs = self.radial.describe() + self.spots.describe() + self.stats.describe()
        #: pixels by (ring, radial bin), for the fused pass of integer frames
        self.pieces = PixelPieces.build(rings, self.radial.bins)
        #: values the fused pass counts per piece (the rest: the ring histograms directly)
        self._n_low = min(8, self.spots.binning.n_hist - 1)
        self._local = threading.local()
        #: the spot finder's block sums come from the fused pass too (integrated method)
        self._blocks = getattr(self.spots.params, "method", None) == "integrated"

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_local"]  # per-thread scratch buffers are not pickled
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def _buffers(self):
        """This thread's scratch buffers ``(sums, lost, hist, ovf, bsum, bn, counts, hall,
        cand, hmax)``, made on first use and reused for every later frame (zeroed here, except
        ``bsum``, ``bn``, ``hall`` and ``cand``, written before read, and ``hmax``, set to -1):
        a frame's pass then allocates nothing of the histograms' or the candidates' size."""
        buf = getattr(self._local, "buf", None)
        if buf is None:
            n_bins = self.radial.params.n_bins
            nb = block_shape(self.geometry.shape) if self._blocks else (1, 1)
            buf = (
                np.zeros(n_bins),
                np.zeros(n_bins),
                *self.spots.binning.empty(),
                np.zeros(nb),
                np.zeros(nb, np.int32),
                self.pieces.empty(self._n_low),
                np.zeros(self.spots.binning.n_hist, np.int64),
                np.empty(self.spots.params.max_candidates, np.int64),
                np.full(max(self.spots.binning.n_rings, 1), -1, np.int64),
            )
            self._local.buf = buf
        else:
            for a in (*buf[:4], buf[6]):
                a.fill(0)
            buf[9].fill(-1)
        return buf

    def describe(self) -> list[FeatureSpec]:
        return list(self._specs)

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        return self.radial.coords()

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames, _ = photon_frames(as_block(frames, self.geometry.shape, self.name), self.geometry)
        lo, hi = valid_range(frames.dtype, self.geometry)
        result = {s.name: s.empty(frames.shape[0]) for s in self._specs}
        rp, sf, binning = self.radial, self.spots, self.spots.binning
        for k, frame in enumerate(frames):
            # the ring statistics keep views of hist: a frame's result is used up before the
            # next frame refills the buffers
            sums, lost, hist, ovf, bsum, bn, counts, hall, cand, hmax = self._buffers()
            blocks = None
            med_res = None
            if runs_apply(frame.dtype, lo) and binning.counting(frame.dtype, lo):
                pc = self.pieces
                nc, nsat, high = radial_ring_pass_int(
                    frame,
                    pc.map,
                    pc.ring,
                    pc.bin,
                    pc.n_ring,
                    rp.weights,
                    hi,
                    sf.saturation,
                    sf.adc_level,
                    counts,
                    sums,
                    lost,
                    hist,
                    ovf,
                    hmax,
                    cand,
                    BLOCK if self._blocks else 0,
                    bsum,
                    bn,
                )
                total = high + piece_totals(
                    counts, pc.ring, pc.bin, pc.n_ring, hist, sums, hall, hmax
                )
                bound = np.maximum(hmax, self._n_low - 1)
                res = binning.finish(hist, ovf, nc, nsat, total, frame.dtype, lo, bound)
                # the median needs the rings' histograms summed only: the kernel did it
                med_res = replace(res, hist=hall[None])
                if self._blocks:
                    blocks = (bsum, bn)
            else:
                rp.bin_sums(frame, lo, hi, sums, lost)
                res = binning.run(frame, lo, hi, sf.saturation, sf.adc_level, cand)
            norm = rp.norm - lost
            with np.errstate(invalid="ignore", divide="ignore"):
                result["radial_profile"][k] = np.where(norm > 0, sums / norm, np.nan)
            sf.features(sf.peaks_from_rings(frame, res, cand, blocks), res, result, k)
            med = binning.median(
                med_res or res, frame.dtype, lo, exact=lambda f=frame: binning.values(f, lo, hi, 2)
            )
            result["background"][k] = med / sf.gain
            result["jet_score"][k], result["ice_score"][k] = self.stats.scores(
                res.mean, res.count, plan=self._plan
            )
        return result
