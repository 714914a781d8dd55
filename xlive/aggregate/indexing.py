"""Running indexing aggregates: indexing rate (of hits, of all frames, rolling, laser on/off),
lattices per hit, and the unit-cell distribution with its clusters.

:class:`IndexingAggregates` is updated from each stored block (it is part of
:class:`~xlive.aggregate.running.RunAggregates`); it does nothing for blocks without
indexing features.
Hits a live run left unindexed (``index_tried`` False) count neither way: rates are over the
hits tried, and the rate over all frames is that times the hit rate.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from ..conventions import LASER_ON


@dataclass(frozen=True, kw_only=True)
class IndexingAggParams:
    """Windows and ranges of the indexing aggregates."""

    #: frames in the rolling window
    window: int = 200
    #: indexed lattices whose cells are kept (the latest)
    history: int = 100_000
    #: relative distance (on sorted a, b, c) within which cells are one population
    cluster_tol: float = 0.02


class IndexingAggregates:
    """Indexing rate, lattices and cells of a run, updated block by block."""

    def __init__(self, params: IndexingAggParams | None = None):
        p = self.params = params or IndexingAggParams()
        self.frames = 0
        self.hits = 0
        self.tried = 0
        self.indexed = 0
        self.multi = 0
        self.tried_by_laser = {True: 0, False: 0}
        self.indexed_by_laser = {True: 0, False: 0}
        #: per recent frame: (hit, tried, indexed, laser)
        self._recent = collections.deque(maxlen=p.window)
        #: per tried hit, in arrival order: frame, indexed, n_lattices, laser
        self.series: dict[str, collections.deque] = {
            k: collections.deque(maxlen=p.history)
            for k in ("frame", "indexed", "n_lattices", LASER_ON, "unmatched")
        }
        #: unit cells of the indexed lattices: frame, lattice, a, b, c, alpha, beta, gamma
        self._cells = collections.deque(maxlen=p.history)
        self._unmatched = collections.deque(maxlen=p.history)
        #: rolling points: frame, rate of hits, rate of frames, rate laser on, rate laser off
        self.rate_points: list[tuple[int, float, float, float, float]] = []

    @property
    def active(self) -> bool:
        """True once a block with indexing features arrived."""
        return self.tried > 0 or bool(self.rate_points)

    def update(self, block, meta: dict) -> None:
        """Add a stored :class:`~xlive.engine.block.Block` (features by name)."""
        result = block
        if "index_tried" not in result:
            return
        good = np.asarray(block.good, bool)
        if not good.any():
            return
        idx = np.asarray(block.frames)[good]
        hit = np.asarray(result["is_hit"], bool)[good]
        tried = np.asarray(result["index_tried"], bool)[good]
        ok = np.asarray(result["indexed"], bool)[good] & tried
        nlat = np.asarray(result["n_lattices"], np.int64)[good]
        laser = np.asarray(meta.get(LASER_ON, np.zeros(good.size, bool)), bool)[good]
        self.frames += idx.size
        self.hits += int(hit.sum())
        self.tried += int(tried.sum())
        self.indexed += int(ok.sum())
        self.multi += int((ok & (nlat >= 2)).sum())
        for flag in (True, False):
            self.tried_by_laser[flag] += int((tried & (laser == flag)).sum())
            self.indexed_by_laser[flag] += int((ok & (laser == flag)).sum())
        for row in zip(hit, tried, ok, laser, strict=True):
            self._recent.append(tuple(bool(v) for v in row))
        cells = np.asarray(result["unit_cell"], float)[good]
        unmatched = (
            np.asarray(result["unmatched_cell"], float)[good]
            if "unmatched_cell" in result
            else np.full((idx.size, 6), np.nan)
        )
        for k in np.flatnonzero(tried):
            self.series["frame"].append(int(idx[k]))
            self.series["indexed"].append(bool(ok[k]))
            self.series["n_lattices"].append(int(nlat[k]))
            self.series[LASER_ON].append(bool(laser[k]))
            um = bool(np.isfinite(unmatched[k]).all())
            self.series["unmatched"].append(um)
            if um:
                self._unmatched.append(unmatched[k])
            for j in range(int(nlat[k])):
                self._cells.append((int(idx[k]), j, *cells[k, j]))
        self.rate_points.append((int(idx.max()), *self.rolling_rates()))

    # ------------------------------------------------------------------ rates
    @property
    def rate(self) -> float:
        """Indexing rate of the run: indexed / tried hits (NaN before any)."""
        return self.indexed / self.tried if self.tried else float("nan")

    @property
    def rate_of_frames(self) -> float:
        """Indexed frames per frame (the hits' indexing rate times the hit rate)."""
        return self.rate * self.hits / self.frames if self.frames else float("nan")

    def rate_laser(self, on: bool) -> float:
        n = self.tried_by_laser[on]
        return self.indexed_by_laser[on] / n if n else float("nan")

    def rolling_rates(self) -> tuple[float, float, float, float]:
        """Over the recent window: rate of hits, of frames, of hits laser on and off."""
        if not self._recent:
            return (np.nan,) * 4
        r = np.array(self._recent, bool)
        hit, tried, ok, laser = r.T

        def rate(sel):
            return float(ok[sel].sum() / tried[sel].sum()) if tried[sel].any() else np.nan

        of_hits = rate(np.ones(len(r), bool))
        of_frames = of_hits * hit.mean() if np.isfinite(of_hits) else np.nan
        return of_hits, float(of_frames), rate(laser), rate(~laser)

    def recent(self, name: str, n: int | None = None) -> np.ndarray:
        """The last ``n`` values of a per-tried-hit series."""
        v = self.series[name]
        start = 0 if n is None else max(len(v) - n, 0)
        return np.array([v[i] for i in range(start, len(v))])

    # ------------------------------------------------------------------ cells
    def cells(self, last: int | None = None) -> np.ndarray:
        """Unit cells ``(n, 6)`` of the indexed lattices (the latest ``last``)."""
        c = list(self._cells)[-last:] if last else list(self._cells)
        return np.array([row[2:] for row in c], float).reshape(-1, 6)

    def cell_frames(self) -> np.ndarray:
        return np.array([row[0] for row in self._cells], np.int64)

    def unmatched_cells(self) -> np.ndarray:
        return np.array(self._unmatched, float).reshape(-1, 6)

    def median_cell(self) -> np.ndarray:
        """Median a, b, c, alpha, beta, gamma of the indexed lattices (NaN without any)."""
        c = self.cells()
        return np.median(c, axis=0) if len(c) else np.full(6, np.nan)

    def clusters(self, last: int | None = None) -> list[tuple[int, np.ndarray]]:
        """Cell populations among the indexed lattices, largest first: ``(count, median cell)``."""
        return cell_clusters(self.cells(last), self.params.cluster_tol)


def cell_clusters(cells: np.ndarray, tol: float = 0.02) -> list[tuple[int, np.ndarray]]:
    """Populations of unit cells, largest first: ``(count, median cell)``.

    Cells are compared by their sorted edge lengths (settings of one lattice differ by axis
    order) in log space, and grouped by average-linkage clustering (scipy) cut at ``tol``.
    """
    cells = np.asarray(cells, float).reshape(-1, 6)
    cells = cells[np.isfinite(cells).all(axis=1)]
    if len(cells) == 0:
        return []
    if len(cells) == 1:
        return [(1, cells[0])]
    from scipy.cluster.hierarchy import fcluster, linkage

    x = np.log(np.sort(cells[:, :3], axis=1))
    if len(x) > 2000:  # linkage is quadratic: cluster a regular subsample, assign the rest
        sub = x[:: int(np.ceil(len(x) / 2000))]
    else:
        sub = x
    labels_sub = fcluster(
        linkage(sub, method="average", metric="chebyshev"), tol, criterion="distance"
    )
    centres = np.array([np.median(sub[labels_sub == k], axis=0) for k in np.unique(labels_sub)])
    labels = np.argmin(np.abs(x[:, None, :] - centres[None]).max(axis=2), axis=1)
    out = [
        (int(np.sum(labels == k)), np.median(cells[labels == k], axis=0))
        for k in range(len(centres))
        if np.any(labels == k)
    ]
    return sorted(out, key=lambda c: -c[0])
