"""Radial profile: mean intensity per q bin, as pyFAI ``integrate1d`` without pixel splitting.

The bin of every pixel and the per-bin normalisation (pixel count, or the sum of solid-angle and
polarisation factors when corrections are on) depend on the geometry only and are computed once;
per frame a single numba pass sums the valid pixel values per bin. The profile is
``sum(I) / sum(c)`` over valid pixels, with ``c = 1`` (plain mean) or ``c = solid_angle *
polarization`` — the normalisation pyFAI uses, so the two agree bin by bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conventions import D_UNITS, FRAME, Q_UNITS, Q
from ..errors import AnalyzerError
from ..geometry.core import Geometry
from ..validate import check_fields
from ._kernels.binning import bin_sums
from ._kernels.runs import PixelRuns, run_sums, runs_apply
from .base import FeatureSpec, as_block, valid_range


@dataclass(frozen=True, kw_only=True)
class RadialParams:
    """Settings of the radial profile."""

    #: number of q bins
    n_bins: int = 500
    #: (q_min, q_max) of the bins in 1/nm; None: the range of the unmasked pixels
    q_range: tuple[float, float] | None = None
    #: divide by each pixel's relative solid angle (pyFAI's ``correctSolidAngle``)
    solid_angle: bool = False
    #: polarisation factor for the correction (pyFAI's convention); None: no correction
    polarization: float | None = None

    def __post_init__(self):
        check_fields(
            self,
            "analyzers.radial",
            error=AnalyzerError,
            ranges={"n_bins": (1, None), "polarization": (-1, 1)},
        )
        if self.n_bins < 1:
            raise AnalyzerError(f"radial n_bins must be >= 1, got {self.n_bins}")
        if self.q_range is not None and not self.q_range[0] < self.q_range[1]:
            raise AnalyzerError(
                f"radial q_range must be (low, high) with low < high, got {self.q_range}"
            )


def q_bin_map(
    q: np.ndarray, mask: np.ndarray, n_bins: int, q_range: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bin index per pixel (-1: masked or outside) and the bin edges, pyFAI's histogram rule.

    Bins are ``n_bins`` equal steps over ``q_range`` (default: unmasked pixels' q range, top
    edge nudged up so the last pixel falls inside); a pixel's bin is that of its centre.
    """
    good = ~mask & np.isfinite(q)
    if not good.any():
        lo, hi = (0.0, 1.0) if q_range is None else q_range
    elif q_range is None:
        lo, hi = float(q[good].min()), float(q[good].max())
        hi = hi + max(abs(hi), 1.0) * 1e-6
    else:
        lo, hi = map(float, q_range)
    edges = np.linspace(lo, hi, n_bins + 1)
    with np.errstate(invalid="ignore"):
        idx = np.floor((q - lo) / ((hi - lo) / n_bins))
    inside = good & (idx >= 0) & (idx < n_bins)
    dtype = np.int16 if n_bins < 2**15 else np.int32
    bins = np.where(inside, idx, -1).astype(dtype)
    return bins, edges


class RadialProfile:
    """``radial_profile(frame, q)``: the mean (optionally corrected) intensity per q bin.

    Examples
    --------
    >>> from xlive.simulate import Simulation
    >>> sim = Simulation(detector="eiger500k", seed=1)
    >>> rp = RadialProfile(sim.geometry, RadialParams(n_bins=100))
    >>> rp(sim.frame(0)[0][None])["radial_profile"].shape
    (1, 100)
    """

    name = "radial"
    params_class = RadialParams

    def __init__(self, geometry: Geometry, params: RadialParams | None = None):
        self.geometry = geometry
        self.params = p = params or RadialParams()
        maps = geometry.maps
        self.bins, self.edges = q_bin_map(maps.q, maps.mask, p.n_bins, p.q_range)
        w = np.ones(geometry.shape)
        if p.solid_angle:
            w = w * maps.solid_angle
        if p.polarization is not None:
            w = w * maps.polarization(p.polarization)
        self.weights = w.astype(np.float32)
        use = self.bins >= 0
        self.norm = np.bincount(self.bins[use], weights=w[use], minlength=p.n_bins)
        #: runs of pixels sharing a bin along rows, for integer frames (:mod:`._kernels.runs`)
        self.runs = PixelRuns.from_bins(self.bins)
        self.q = 0.5 * (self.edges[1:] + self.edges[:-1])

    def describe(self) -> list[FeatureSpec]:
        units = (
            "counts/pixel"
            if not (self.params.solid_angle or self.params.polarization)
            else "counts/pixel (corrected)"
        )
        return [
            FeatureSpec(
                "radial_profile",
                (FRAME, Q),
                "float32",
                units,
                "mean intensity per q bin over unmasked pixels",
                sizes={Q: self.params.n_bins},
            )
        ]

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        with np.errstate(divide="ignore"):
            d = np.where(self.q > 0, 2 * np.pi / self.q * 10.0, np.inf)
        return {
            Q: (Q, self.q, {"units": Q_UNITS, "long_name": "scattering vector, bin centre"}),
            "d": (Q, d, {"units": D_UNITS, "long_name": "d-spacing at the bin centre"}),
        }

    def bin_sums(
        self, frame: np.ndarray, lo: float, hi: float, sums: np.ndarray, lost: np.ndarray
    ) -> None:
        """Add one frame's valid values per bin to ``sums``, invalid pixels' weights to
        ``lost``: the run kernel for integer frames of up to 32 bits, else the per-pixel one."""
        if runs_apply(frame.dtype, lo):
            r = self.runs
            run_sums(frame, self.weights, hi, r.start, r.end, r.bin, r.row_ptr, sums, lost)
        else:
            bin_sums(frame, self.bins, self.weights, lo, hi, sums, lost)

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames = as_block(frames, self.geometry.shape, self.name)
        lo, hi = valid_range(frames.dtype, self.geometry)
        n_bins = self.params.n_bins
        out = np.empty((frames.shape[0], n_bins), np.float32)
        for k, frame in enumerate(frames):
            sums, lost = np.zeros(n_bins), np.zeros(n_bins)
            self.bin_sums(frame, lo, hi, sums, lost)
            norm = self.norm - lost
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k] = np.where(norm > 0, sums / norm, np.nan)
        return {"radial_profile": out}
