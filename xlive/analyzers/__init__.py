"""Per-frame analyzers: radial profile, spots and hits, frame statistics; the copy-me template.

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
from ..geometry.core import Geometry
from ..registry import analyzer_class, available_analyzers
from .base import Analyzer, FeatureFlag, FeatureSpec, Show
from .combined import FrameAnalyzer
from .indexing_core import IndexingParams
from .radial import RadialParams, RadialProfile
from .spot_stats import SpotStatsParams
from .spots import SpotFinder, SpotParams
from .stats import FrameStats, StatsParams

__all__ = [
    "Analyzer",
    "FeatureSpec",
    "Show",
    "FeatureFlag",
    "FrameAnalyzer",
    "RadialProfile",
    "RadialParams",
    "SpotFinder",
    "SpotParams",
    "SpotStatsParams",
    "FrameStats",
    "StatsParams",
    "default_analyzers",
    "build_analyzers",
    "analyze_frames",
    "available_analyzers",
    "analyzer_class",
    "DEFAULT_TABLES",
]

#: ``[analyzers.NAME]`` tables that tune the built-in set rather than add an analyzer
#: (``indexing`` adds indexing of the hits to the spot finder)
DEFAULT_TABLES = {
    "radial": RadialParams,
    "spots": SpotParams,
    "stats": StatsParams,
    "indexing": IndexingParams,
}


def default_analyzers(
    geometry: Geometry,
    *,
    radial: RadialParams | None = None,
    spots: SpotParams | None = None,
    stats: StatsParams | None = None,
    fused: bool = True,
    indexing=None,
) -> list[Analyzer]:
    """The built-in set: radial profile, spots (+ hits, spot features), frame statistics.

    ``fused=True`` gives one :class:`FrameAnalyzer` (one read per frame, the fast choice);
    ``fused=False`` the three separate analyzers, with the same output names. ``indexing``
    (:class:`~xlive.analyzers.indexing.IndexingParams`, or True for the defaults) indexes the
    hits after the spot finder (:class:`~xlive.analyzers.indexing.IndexedAnalyzer`).
    """
    if fused:
        out = [FrameAnalyzer(geometry, radial=radial, spots=spots, stats=stats)]
    else:
        out = [
            RadialProfile(geometry, radial),
            SpotFinder(geometry, spots),
            FrameStats(geometry, stats),
        ]
    if indexing is not None and indexing is not False:
        from .indexing import IndexedAnalyzer, Indexer, IndexingParams

        params = IndexingParams() if indexing is True else indexing
        k = 0 if fused else 1
        max_peaks = (spots or SpotParams()).max_peaks
        out[k] = IndexedAnalyzer(
            out[k], Indexer(geometry, params, max_peaks=max_peaks), budget=params.budget
        )
    return out


def build_analyzers(
    geometry: Geometry, params: dict | None = None, *, fused: bool = True
) -> list[Analyzer]:
    """The built-in set plus every analyzer switched on in ``params``.

    ``params`` maps ``[analyzers.NAME]`` table names to parameter objects, as
    :class:`~xlive.config.RunConfig` holds them: ``radial``, ``spots`` and ``stats`` tune the
    built-in set; any other name adds the analyzer registered under it (in-tree module or
    installed plugin, see :mod:`xlive.registry`), built as ``cls(geometry, params)``.
    """
    params = dict(params or {})
    builtin = {k: params.pop(k) for k in DEFAULT_TABLES if k in params}
    out = default_analyzers(geometry, **builtin, fused=fused)
    for name, p in params.items():
        cls = analyzer_class(name)
        out.append(cls(geometry) if p is None else cls(geometry, p))
    return out


def analyze_frames(
    frames: np.ndarray, geometry: Geometry, analyzers: list[Analyzer] | None = None
) -> dict[str, np.ndarray]:
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
