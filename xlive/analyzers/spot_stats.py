"""Per-frame features from a frame's spots: resolution, low-d count, separations, lattices.

``d_min`` (Å): the resolution that 5 % of the spots exceed, ``1 / quantile(1/d, 0.95)`` over
spots with integrated SNR >= ``d_min_snr`` (NaN with fewer than ``d_min_min_spots``) — the
same definition as the simulator's truth (xlive.simulate.model), applied to the spots found.
``n_spots_4A``: spots at d <= 4 Å. ``spot_separation_median/min``: nearest-neighbour distances
between spot centroids on the detector (pixels). ``multi_lattice_score``: see
:mod:`xlive.analyzers.lattice`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..conventions import D_UNITS, FRAME
from ..errors import AnalyzerError
from ..geometry.core import Geometry
from ..validate import check_fields
from ._kernels.neighbours import nearest_distances
from .base import FeatureSpec
from .lattice import LatticeParams, multi_lattice_score, reciprocal_vectors


@dataclass(frozen=True, kw_only=True)
class SpotStatsParams:
    """Settings of the spot-derived features."""

    #: spots used by d_min have at least this integrated SNR
    d_min_snr: float = 5.0
    #: quantile of 1/d over those spots that defines d_min
    d_min_quantile: float = 0.95
    #: fewest spots for a d_min
    d_min_min_spots: int = 5
    #: settings of the multiple-lattice score
    lattice: LatticeParams = field(default_factory=LatticeParams)

    def __post_init__(self):
        check_fields(
            self,
            "analyzers.spots.stats",
            error=AnalyzerError,
            ranges={"d_min_snr": (0, None), "d_min_quantile": (0, 1), "d_min_min_spots": (1, None)},
        )


def spot_feature_specs() -> list[FeatureSpec]:
    """Declarations of the features :func:`spot_features` returns."""
    return [
        FeatureSpec(
            "d_min",
            (FRAME,),
            "float32",
            D_UNITS,
            "resolution exceeded by 5 % of the spots (1/quantile(1/d, 0.95))",
        ),
        FeatureSpec("n_spots_4A", (FRAME,), "int32", "", "spots at d <= 4 angstrom", fill=0),
        FeatureSpec(
            "spot_separation_median",
            (FRAME,),
            "float32",
            "pixel",
            "median nearest-neighbour distance between spots",
        ),
        FeatureSpec(
            "spot_separation_min",
            (FRAME,),
            "float32",
            "pixel",
            "smallest nearest-neighbour distance between spots",
        ),
        FeatureSpec(
            "multi_lattice_score",
            (FRAME,),
            "float32",
            "",
            "fraction of spots indexed by a second lattice (0: one lattice)",
        ),
    ]


def estimate_d_min(d: np.ndarray, snr: np.ndarray, p: SpotStatsParams) -> float:
    """``1 / quantile(1/d, q)`` over spots with SNR >= ``d_min_snr`` (NaN if too few)."""
    use = (snr >= p.d_min_snr) & np.isfinite(d) & (d > 0)
    if np.count_nonzero(use) < p.d_min_min_spots:
        return float("nan")
    return float(1.0 / np.quantile(1.0 / d[use], p.d_min_quantile))


def spot_features(
    peaks: np.ndarray, d: np.ndarray, geometry: Geometry, p: SpotStatsParams
) -> dict[str, float]:
    """Features of one frame from its peak rows ``(x, y, I, npix, snr, ...)`` and their ``d``."""
    out = {
        "d_min": estimate_d_min(d, peaks[:, 4], p),
        "n_spots_4A": int(np.count_nonzero(d <= 4.0)),
    }
    if len(peaks) >= 2:
        nn = nearest_distances(peaks[:, 0].copy(), peaks[:, 1].copy())
        out["spot_separation_median"] = float(np.median(nn))
        out["spot_separation_min"] = float(nn.min())
    else:
        out["spot_separation_median"] = out["spot_separation_min"] = float("nan")
    lp = p.lattice
    use = np.flatnonzero(d >= lp.d_limit)
    if use.size >= lp.min_spots:
        use = use[np.argsort(-peaks[use, 4], kind="stable")[: lp.max_spots]]
        lab = geometry.lab_positions(peaks[use, 0], peaks[use, 1])
        lab = lab[np.isfinite(lab[:, 0])]
        out["multi_lattice_score"] = multi_lattice_score(
            reciprocal_vectors(lab, geometry.wavelength), lp
        )
    else:
        out["multi_lattice_score"] = float("nan")
    return out
