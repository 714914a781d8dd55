"""Per-frame analyzers: radial profile, spots and hits, frame statistics, auto-mask.

Each analyzer is built once per run from a :class:`~xlive.geometry.Geometry` and frozen
parameters, declares its outputs (:meth:`describe`) and maps a block of frames ``(n, y, x)`` to
named arrays with leading dimension ``n``. Hot loops are numba kernels beside numpy references.

Examples
--------
>>> from xlive.simulate import Simulation
>>> sim = Simulation(detector="eiger500k", seed=1)
>>> feats = analyze_frames(sim.frame(0)[0][None], sim.geometry)
>>> feats["radial_profile"].shape[0], int(feats["n_spots"][0]) >= 0
(1, True)
"""

from __future__ import annotations

import numpy as np

from ..errors import AnalyzerError
from ..geometry import Geometry
from .base import Analyzer, FeatureSpec
from .combined import FrameAnalyzer
from .mask import MaskParams, PixelStats, auto_mask
from .radial import RadialParams, RadialProfile
from .registry import available_analyzers, get_analyzer
from .spot_stats import SpotStatsParams
from .spots import SpotFinder, SpotParams
from .stats import FrameStats, StatsParams

__all__ = [
    "Analyzer", "FeatureSpec", "FrameAnalyzer", "RadialProfile", "RadialParams", "SpotFinder", "SpotParams",
    "SpotStatsParams", "FrameStats", "StatsParams", "PixelStats", "MaskParams", "auto_mask",
    "default_analyzers", "analyze_frames", "available_analyzers", "get_analyzer",
]


def default_analyzers(geometry: Geometry, *, radial: RadialParams | None = None,
                      spots: SpotParams | None = None, stats: StatsParams | None = None,
                      fused: bool = True, indexing=None,
                      indexing_budget: float | None = None) -> list[Analyzer]:
    """The built-in set: radial profile, spots (+ hits, spot features), frame statistics.

    ``fused=True`` gives one :class:`FrameAnalyzer` (one read per frame, the fast choice);
    ``fused=False`` the three separate analyzers, with the same output names. ``indexing``
    (:class:`~xlive.analyzers.indexing.IndexingParams`, or True for the defaults) indexes every
    hit after the spot finder (:class:`~xlive.analyzers.indexing.IndexedAnalyzer`), within
    ``indexing_budget`` (share of the frame analysis time) if given.
    """
    if fused:
        out = [FrameAnalyzer(geometry, radial=radial, spots=spots, stats=stats)]
    else:
        out = [RadialProfile(geometry, radial), SpotFinder(geometry, spots),
               FrameStats(geometry, stats)]
    if indexing is not None and indexing is not False:
        from .indexing import IndexedAnalyzer, Indexer, IndexingParams

        params = IndexingParams() if indexing is True else indexing
        k = 0 if fused else 1
        max_peaks = (spots or SpotParams()).max_peaks
        out[k] = IndexedAnalyzer(out[k], Indexer(geometry, params, max_peaks=max_peaks),
                                 budget=indexing_budget)
    return out


def analyze_frames(frames: np.ndarray, geometry: Geometry,
                   analyzers: list[Analyzer] | None = None) -> dict[str, np.ndarray]:
    """Run analyzers over a block of frames eagerly; one dict of numpy arrays.

    Raises :class:`~xlive.errors.AnalyzerError` if two analyzers declare the same output name.
    """
    analyzers = default_analyzers(geometry) if analyzers is None else analyzers
    out: dict[str, np.ndarray] = {}
    for a in analyzers:
        res = a(frames)
        for name, arr in res.items():
            if name in out:
                raise AnalyzerError(f"two analyzers produce {name!r}; rename one of them")
            out[name] = arr
    return out
