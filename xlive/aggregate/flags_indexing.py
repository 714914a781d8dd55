"""Flags from indexing: hits do not index, another cell than the expected one, a second cell
population, multiple lattices in many hits, indexing rate dropped.

Rules read ``agg.indexing`` (:class:`~xlive.aggregate.indexing.IndexingAggregates`) and stay
silent for runs analysed without indexing. Thresholds are in
:class:`~xlive.aggregate.flags.FlagThresholds`.
"""

from __future__ import annotations

import numpy as np

from .flag import Flag


def _ix(agg):
    ix = getattr(agg, "indexing", None)
    return ix if ix is not None and ix.tried else None


def _fmt(cell) -> str:
    a, b, c, al, be, ga = cell
    return f"{a:.1f}, {b:.1f}, {c:.1f} Å, {al:.0f}, {be:.0f}, {ga:.0f}°"


def hits_do_not_index(agg, t):
    ix = _ix(agg)
    if ix is None:
        return None
    ok = ix.recent("indexed", t.window)
    if len(ok) < t.index_min_hits:
        return None
    rate = float(np.mean(ok))
    if rate < t.index_rate_min:
        return Flag(
            "hits_do_not_index",
            "warning",
            f"Hits do not index: {rate:.0%} of the last {len(ok)} hits index. Check the "
            "geometry (distance, beam centre, wavelength) and the expected unit cell; "
            "powder, salt or ice hits do not index either.",
        )
    return None


def cell_differs(agg, t):
    ix = _ix(agg)
    if ix is None:
        return None
    um = ix.recent("unmatched", t.window)
    if len(um) < t.index_min_hits:
        return None
    frac = float(np.mean(um))
    if frac > t.cell_differs_fraction:
        pops = ix_clusters_unmatched(ix, t)
        where = f" They index to {_fmt(pops[0][1])} instead." if pops else ""
        return Flag(
            "cell_differs",
            "warning",
            f"Unit cell differs from the expected one in {frac:.0%} of recent hits.{where} "
            "Check the cell given (--cell, [indexing] cell) and the geometry; or the "
            "sample is not what was expected.",
        )
    return None


def ix_clusters_unmatched(ix, t):
    from .indexing import cell_clusters

    return cell_clusters(ix.unmatched_cells()[-t.window :], ix.params.cluster_tol)


def second_cell_population(agg, t):
    ix = _ix(agg)
    if ix is None:
        return None
    pops = ix.clusters(last=t.cell_window)
    total = sum(n for n, _ in pops)
    if total < t.index_min_hits or len(pops) < 2:
        return None
    n2, c2 = pops[1]
    if n2 / total >= t.second_cell_fraction:
        n1, c1 = pops[0]
        return Flag(
            "second_cell_population",
            "warning",
            f"A second unit-cell population: {n2 / total:.0%} of recent indexed hits "
            f"have {_fmt(c2)}, the others {_fmt(c1)}. A polymorph, an isoform or "
            "another crystal in the sample.",
        )
    return None


def multiple_lattices(agg, t):
    ix = _ix(agg)
    if ix is None:
        return None
    ok = ix.recent("indexed", t.window)
    nlat = ix.recent("n_lattices", t.window)
    if ok.sum() < max(5, t.index_min_hits // 2):
        return None
    frac = float(np.mean(nlat[ok] >= 2))
    if frac > t.multi_lattice_fraction:
        return Flag(
            "multiple_lattices",
            "warning",
            f"Multiple lattices in {frac:.0%} of recent indexed hits: several crystals "
            "in the beam at once. Dilute the sample or filter it.",
        )
    return None


def indexing_rate_dropped(agg, t):
    ix = _ix(agg)
    if ix is None or ix.tried < 2 * t.window:
        return None
    ok = ix.recent("indexed", t.window)
    run_rate = ix.rate
    recent = float(np.mean(ok))
    if run_rate >= t.index_rate_min and recent < t.index_rate_drop * run_rate:
        return Flag(
            "indexing_rate_dropped",
            "warning",
            f"Indexing rate dropped to {recent:.0%} of hits over the last {len(ok)} hits "
            f"(run: {run_rate:.0%}). Crystals changed, or the detector or beam moved.",
        )
    return None


RULES = {
    "hits_do_not_index": hits_do_not_index,
    "cell_differs": cell_differs,
    "second_cell_population": second_cell_population,
    "multiple_lattices": multiple_lattices,
    "indexing_rate_dropped": indexing_rate_dropped,
}
