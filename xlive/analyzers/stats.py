"""Per-frame statistics of the diffuse scattering: background level, water ring, ice rings.

All three come from robust (sigma-clipped) means in fine q shells, computed from one histogram
pass over every ``sample_step``-th row and column (statistics of millions of pixels do not need
every pixel; Bragg spots are clipped away):

* ``background``: median pixel value (photons: ADU over the gain) of the sampled unmasked
  pixels; read from the histograms, or from the pixels themselves when it lies above them.
* ``jet_score``: water-ring contrast ``(W / B - 1) / jet_reference``, with ``W`` the mean level in
  the water band (``water_band``, 1/nm, around the water maximum at q ≈ 20 /nm, d ≈ 3.1 Å) and
  ``B`` the level in a reference band at lower q where water scatters little. No jet gives about
  0 or below; ``jet_reference`` is the contrast a good jet gives at this beamline (default 1:
  the raw contrast), so 1 means "as expected".
* ``ice_score``: relative excess ``sum(n (P - S)) / sum(n S)`` over the hexagonal-ice rings
  (:data:`xlive.conventions.ICE_D_SPACINGS`) on the detector, ``P`` the level within
  ``ice_halfwidth`` of a ring, ``S`` that of the shells beside it and ``n`` the ring window's
  pixel count: the ice rings' extra photons over the photons expected there without ice.
  No ice gives about 0.

Total intensity and saturated-pixel counts need every pixel; the spot finder's pass provides
them (see :mod:`xlive.analyzers.spots`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conventions import FRAME, ICE_D_SPACINGS
from ..errors import AnalyzerError
from ..geometry.core import Geometry
from ..validate import check_fields
from .base import FeatureSpec, as_block, photon_frames, valid_range
from .rings import RingBinning


@dataclass(frozen=True, kw_only=True)
class StatsParams:
    """Settings of the diffuse-scattering statistics."""

    #: visit every n-th row and column for the statistics
    sample_step: int = 2
    #: width (1/nm) of the q shells; None: the q step of one pixel at the beam, at least 0.05
    q_step: float | None = None
    #: q band (1/nm) of the water ring
    water_band: tuple[float, float] = (17.0, 23.0)
    #: q band (1/nm) of the reference level for the water-ring contrast
    reference_band: tuple[float, float] = (8.0, 11.0)
    #: water-ring contrast a good jet gives (jet_score = contrast / jet_reference)
    jet_reference: float = 1.0
    #: half-width (1/nm) of an ice ring's window
    ice_halfwidth: float = 0.2
    #: gap (1/nm) between an ice ring's window and its side shells
    ice_gap: float = 0.15
    #: width (1/nm) of each side shell
    ice_side: float = 0.3
    #: fewest sampled pixels in a window or side shell for an ice ring to count
    ice_min_pixels: int = 50
    #: sigma-clipping level for the shell statistics
    clip_sigma: float = 3.0

    def __post_init__(self):
        check_fields(
            self,
            "analyzers.stats",
            error=AnalyzerError,
            ranges={
                "sample_step": (1, None),
                "q_step": (1e-06, None),
                "water_band": (0, None),
                "reference_band": (0, None),
                "jet_reference": (1e-09, None),
                "ice_halfwidth": (0, None),
                "ice_gap": (0, None),
                "ice_side": (0, None),
                "ice_min_pixels": (1, None),
                "clip_sigma": (0.1, None),
            },
        )
        if self.sample_step < 1:
            raise AnalyzerError(f"stats sample_step must be >= 1, got {self.sample_step}")
        if self.jet_reference <= 0:
            raise AnalyzerError(f"stats jet_reference must be > 0, got {self.jet_reference}")


class FrameStats:
    """``background``, ``jet_score`` and ``ice_score`` per frame (see the module docstring).

    Examples
    --------
    >>> from xlive.simulate import Simulation
    >>> sim = Simulation(detector="eiger500k", seed=1)
    >>> out = FrameStats(sim.geometry)(sim.frame(0)[0][None])
    >>> sorted(out)
    ['background', 'ice_score', 'jet_score']
    """

    name = "stats"
    params_class = StatsParams

    def __init__(self, geometry: Geometry, params: StatsParams | None = None):
        self.geometry = geometry
        self.params = p = params or StatsParams()
        maps = geometry.maps
        if p.q_step is None:
            dq_pixel = (
                4
                * np.pi
                / (geometry.wavelength / 10.0)
                * 0.5
                * geometry.pixel_size
                / geometry.distance
            )
            self.q_step = max(0.05, float(dq_pixel))
        else:
            self.q_step = float(p.q_step)
        with np.errstate(invalid="ignore"):
            shell = np.floor(maps.q / self.q_step)
        shell = np.where(maps.mask | ~np.isfinite(shell), -1, shell).astype(np.int32)
        gain = geometry.gain
        self.gain = float(gain) if gain is not None else 1.0
        self.binning = RingBinning(shell, clip_sigma=p.clip_sigma, gain=self.gain)
        self.q_shell = (np.arange(self.binning.n_rings) + 0.5) * self.q_step
        self._cand = np.empty(0, np.int64)
        self._plan = self.band_plan(self.q_shell)

    def describe(self) -> list[FeatureSpec]:
        return [
            FeatureSpec(
                "background",
                (FRAME,),
                "float32",
                "photons",
                "median pixel value (sampled unmasked pixels)",
            ),
            FeatureSpec(
                "jet_score",
                (FRAME,),
                "float32",
                "",
                "water-ring contrast W/B - 1 over its expected value",
            ),
            FeatureSpec(
                "ice_score",
                (FRAME,),
                "float32",
                "",
                "relative photon excess at the hexagonal-ice rings",
            ),
        ]

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        return {}

    def background(self, res, frame: np.ndarray, lo: float, hi: float) -> float:
        """Median pixel value in photons from a ring pass ``res`` of ``frame`` (no cap)."""
        step = self.params.sample_step
        med = self.binning.median(
            res, frame.dtype, lo, exact=lambda: self.binning.values(frame, lo, hi, step)
        )
        return med / self.gain

    def band_plan(self, q: np.ndarray) -> np.ndarray:
        """Which shells (of centres ``q``) each band of :meth:`scores` takes: a boolean
        ``(bands, shells)`` matrix, rows water, reference, then (peak, low side, high side)
        per ice ring. Depends on ``q`` only, so it is made once and reused for every frame."""
        p = self.params
        hw = max(p.ice_halfwidth, 1.5 * self.q_step)
        bands = [p.water_band, p.reference_band]
        for d in ICE_D_SPACINGS:
            q0 = 20.0 * np.pi / d
            bands += [
                (q0 - hw, q0 + hw),
                (q0 - hw - p.ice_gap - p.ice_side, q0 - hw - p.ice_gap),
                (q0 + hw + p.ice_gap, q0 + hw + p.ice_gap + p.ice_side),
            ]
        lo, hi = np.array(bands).T
        with np.errstate(invalid="ignore"):
            return (q[None, :] >= lo[:, None]) & (q[None, :] < hi[:, None])

    def scores(
        self,
        mean: np.ndarray,
        count: np.ndarray,
        q: np.ndarray | None = None,
        plan: np.ndarray | None = None,
    ) -> tuple[float, float]:
        """(jet_score, ice_score) from shell means, pixel counts and shell q (default: ours).

        ``plan`` is :meth:`band_plan` of ``q`` (made here when not given). Each band's level
        is the pixel-weighted mean of its shells with pixels and a finite mean.
        """
        p = self.params
        if plan is None:
            plan = self.band_plan(self.q_shell if q is None else q)
        ok = (count > 0) & np.isfinite(mean)
        n_shell = np.where(ok, count, 0.0)
        n = plan @ n_shell
        with np.errstate(invalid="ignore", divide="ignore"):
            level = (plan @ np.where(ok, mean * count, 0.0)) / n
        level = np.where(n > 0, level, np.nan)
        w, b = level[0], level[1]
        jet = (w / b - 1.0) / p.jet_reference if b > 0 else np.nan
        excess = 0.0
        base = 0.0
        for k in range(2, len(n), 3):
            n_peak = n[k]
            sides = [(level[s], n[s]) for s in (k + 1, k + 2) if n[s] >= p.ice_min_pixels]
            if n_peak < p.ice_min_pixels or not sides:
                continue
            side = sum(m * c for m, c in sides) / sum(c for _, c in sides)
            excess += (level[k] - side) * n_peak
            base += side * n_peak
        ice = excess / base if base > 0 else np.nan
        return float(jet), float(ice)

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames, _ = photon_frames(as_block(frames, self.geometry.shape, self.name), self.geometry)
        lo, hi = valid_range(frames.dtype, self.geometry)
        out = {s.name: s.empty(frames.shape[0]) for s in self.describe()}
        step = self.params.sample_step
        for k, frame in enumerate(frames):
            res = self.binning.run(frame, lo, hi, np.inf, np.inf, self._cand, step=step)
            out["background"][k] = self.background(res, frame, lo, hi)
            out["jet_score"][k], out["ice_score"][k] = self.scores(
                res.mean, res.count, plan=self._plan
            )
        return out
